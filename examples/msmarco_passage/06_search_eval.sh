#!/usr/bin/env bash
# Search the 6,980 dev queries (Pyserini's msmarco-passage-dev-subset topics) and score MRR@10 and R@1000.
# Expected values: the reproduction matrix (README.md, row msmarco-passage/dev/llara-passage).
source "$(dirname "$0")/env.sh"

python -m pyserini.search.faiss \
  --index "$INDEX" \
  --topics msmarco-passage-dev-subset \
  --encoder "llara:$FINETUNED" --device cuda:0 --fp16 \
  --batch-size 128 --threads 16 --hits 1000 \
  --output "$RUN"

ir_measures msmarco-passage/dev/small "$RUN" RR@10 R@1000
