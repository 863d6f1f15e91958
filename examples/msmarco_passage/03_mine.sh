#!/usr/bin/env bash
# Hard negatives as the release: 15 per query sampled from the top 200 of an existing dense retriever
# (here Pyserini's prebuilt BGE-base index), never a judged positive.
# BM25 instead (the release's BEIR model): drop the search and pass `--retriever bm25 --index msmarco-v1-passage`.
source "$(dirname "$0")/env.sh"
TRAIN=msmarco-passage/train/judged

python - <<PY
import ir_datasets

with open("$WORK/train-queries.tsv", "w") as out:
    for query in ir_datasets.load("$TRAIN").queries_iter():
        out.write(f"{query.query_id}\t{' '.join(query.text.split())}\n")
PY

# about 500k queries against 8.8M vectors: give it a GPU (faiss-gpu in place of faiss-cpu: README, "Searching on GPUs") or hours of CPU.
python -m pyserini.search.faiss \
  --index msmarco-v1-passage.bge-base-en-v1.5 \
  --topics "$WORK/train-queries.tsv" \
  --encoder BAAI/bge-base-en-v1.5 --l2-norm \
  --query-prefix "Represent this sentence for searching relevant passages:" \
  --device cuda:0 --faiss-device cuda:0 --batch-size 512 --threads 16 \
  --hits 200 --output "$WORK/run.train.bge-base.txt"

python -m adaptation.mine \
  --dataset "$TRAIN" --corpus "$CORPUS" \
  --run "$WORK/run.train.bge-base.txt" --depth 200 --num_negatives 15 --seed 42 \
  --output "$WORK/train.jsonl"
