# Shared settings of the MS MARCO passage recipe; every step sources this file.
# Run the steps from the repository root: bash examples/msmarco_passage/01_data.sh, 02_..., 05_...
set -euo pipefail

export WORK=${WORK:-work/msmarco}              # data, indexes and runs (keep "beir"/"cacm" out of this path:
                                               # Pyserini picks another topic reader for such paths)
export NUM_GPUS=${NUM_GPUS:-8}
# The base LLM adapted by step 02; skip step 02 by setting ADAPTED=BAAI/LLARA-pretrain (the released adapted model).
export BASE_MODEL=${BASE_MODEL:-meta-llama/Llama-2-7b-hf}
export ADAPTED=${ADAPTED:-runs/llara-pretrain}
export FINETUNED=${FINETUNED:-runs/llara-passage}
export CORPUS=$WORK/corpus.jsonl               # MS MARCO passages WITH titles (about 4 MRR@10 points over no titles)
export INDEX=$WORK/index.llara-passage
export RUN=$WORK/run.dev-subset.llara-passage.txt
mkdir -p "$WORK" runs
