#!/usr/bin/env bash
# Hard negatives from a dense retriever, as the release's README says of BAAI/LLARA-passage ("the hard negatives
# come from dense retriever"; BAAI/LLARA-beir's come from BM25). The release names neither the retriever, nor the
# depth, nor the count: its toy data has 30 negatives per query, of which each group of 16 samples 15. Here: 15 per
# query (what a group of 16 uses) from the top 200 of Pyserini's prebuilt BGE-base index, never a judged positive.
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
