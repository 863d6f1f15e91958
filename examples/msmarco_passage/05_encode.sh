#!/usr/bin/env bash
# Encode the 8.8M passages on NUM_GPUS GPUs, one shard per GPU, then merge the shards into one flat index.
# A shard interrupted midway continues with the same command plus --resume. Precision: --dtype auto (bf16 on
# A100/H100, fp16 on older cards); meta.json records it.
source "$(dirname "$0")/env.sh"

for ((i = 0; i < NUM_GPUS; i++)); do
  CUDA_VISIBLE_DEVICES=$i python -m pyserini_llara.index \
    --corpus "$CORPUS" --output "$INDEX.shard-$i" \
    --encoder "llara:$FINETUNED" --device cuda --batch-size 256 \
    --shard-id "$i" --shard-num "$NUM_GPUS" &
done
wait

python -m pyserini_llara.index merge --shards "$INDEX".shard-* --output "$INDEX"
