#!/usr/bin/env bash
# Index a BEIR corpus with a LLaRA model, search its test queries, report nDCG@10 and R@100.
#   bash examples/beir/evaluate.sh [DATASET] [MODEL]
#   bash examples/beir/evaluate.sh nfcorpus BAAI/LLARA-beir     # the released BEIR model, zero-shot
# examples/README.md lists the nDCG@10 an independent re-run reported for BAAI/LLARA-beir.
set -euo pipefail

DATASET=${1:-scifact}
MODEL=${2:-BAAI/LLARA-beir}
WORK=${WORK:-work/$DATASET}                 # no "beir" in this path (see finetune_eval.sh)
DEVICE=${DEVICE:-cuda:0}
NAME=$(basename "$MODEL")
mkdir -p "$WORK"

python -m pyserini_llara.index --corpus "beir/$DATASET" --output "$WORK/index.$NAME" \
  --encoder "llara:$MODEL" --device "$DEVICE" --batch-size 64 --overwrite   # --dtype auto: bf16 or fp16 on GPUs

python - <<PY
import ir_datasets

with open("$WORK/queries.test.tsv", "w") as out:
    for query in ir_datasets.load("beir/$DATASET/test").queries_iter():
        out.write(f"{query.query_id}\t{' '.join(query.text.split())}\n")
PY

python -m pyserini.search.faiss --index "$WORK/index.$NAME" --topics "$WORK/queries.test.tsv" \
  --encoder "llara:$MODEL" --device "$DEVICE" --fp16 --batch-size 64 --threads 8 --hits 1000 \
  --remove-query --output "$WORK/run.test.$NAME.txt"

ir_measures "beir/$DATASET/test" "$WORK/run.test.$NAME.txt" nDCG@10 R@100
