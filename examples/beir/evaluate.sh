#!/usr/bin/env bash
# Index a BEIR corpus with a LLaRA model, search its test queries, report nDCG@10 and R@100: the BEIR rows of the
# reproduction matrix (pyserini_llara/reproduce/matrix.yaml), run for any model.
#   bash examples/beir/evaluate.sh [DATASET] [MODEL]
#   bash examples/beir/evaluate.sh nfcorpus                        # BAAI/LLARA-beir, judged against its expected value
#   bash examples/beir/evaluate.sh scifact runs/llara-scifact      # your model: measured, not judged
#   bash examples/beir/evaluate.sh cqadupstack                     # the mean of the 12 CQADupStack forums
# DATASET: trec-covid nfcorpus nq hotpotqa fiqa arguana webis-touche2020 cqadupstack quora dbpedia-entity scidocs
# fever climate-fever scifact (the row's ir-datasets ids are in the matrix; `--dry-run` prints the commands).
set -euo pipefail

DATASET=${1:-scifact}
MODEL=${2:-BAAI/LLARA-beir}
WORK=${WORK:-work/reproduction}

ARGS=(--row "beir/$DATASET/llara-beir" --work-dir "$WORK")
if [ "$MODEL" != BAAI/LLARA-beir ]; then ARGS+=(--model "$MODEL"); fi
python -m pyserini_llara.reproduce "${ARGS[@]}"
