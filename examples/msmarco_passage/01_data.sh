#!/usr/bin/env bash
# MS MARCO passage with titles (Tevatron's copy: fields docid, title, text), as the release fine-tunes and encodes.
# The judged training queries and the dev queries/qrels come through ir-datasets and Pyserini later on.
# Needs: pip install datasets  (network access to the Hugging Face hub)
source "$(dirname "$0")/env.sh"

if [ ! -s "$CORPUS" ]; then
  python - <<PY
from datasets import load_dataset

corpus = load_dataset("Tevatron/msmarco-passage-corpus", split="train")   # 8,841,823 passages
corpus.to_json("$CORPUS", lines=True, force_ascii=False)
PY
fi
wc -l "$CORPUS"
