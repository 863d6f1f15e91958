#!/usr/bin/env bash
# Fine-tune a LLaRA-adapted model on one BEIR dataset's train split with BM25 hard negatives (how the
# release's BEIR model got its negatives), then evaluate on its test split: nDCG@10 and R@100.
#   bash examples/beir/finetune_eval.sh [DATASET] [ADAPTED_MODEL]
#   bash examples/beir/finetune_eval.sh scifact BAAI/LLARA-pretrain
# Datasets with a train split in ir-datasets (beir/DATASET/train): scifact, nfcorpus, fiqa, hotpotqa, fever.
# One GPU is enough for scifact (809 training queries, 5k documents); more: accelerate launch, see 04_finetune.sh
# of the MS MARCO recipe.
set -euo pipefail

DATASET=${1:-scifact}
ADAPTED=${2:-BAAI/LLARA-pretrain}
WORK=${WORK:-work/$DATASET}
MODEL=${MODEL:-runs/llara-$DATASET}
mkdir -p "$WORK" runs

# 1. BM25 negatives: 15 per query from the top 200, never a judged positive.
python -m adaptation.mine --dataset "beir/$DATASET/train" --retriever bm25 --depth 200 --num_negatives 15 \
  --threads 8 --output "$WORK/train.jsonl"

# 2. Contrastive fine-tuning with the release's settings (LoRA only, r 64 / alpha 16, lr 3e-4 on the release's
#    schedule, groups of 16). Batch: the release's README runs 8 GPUs x 1 query with cross-device negatives, i.e.
#    8 queries and 128 passages per step; 8 queries on one GPU is that same step. When memory allows, a larger
#    --per_device_train_batch_size gives more in-batch negatives and fewer steps. Temperature: the release's
#    default 0.02 (its README example: 0.01).
accelerate launch --config_file examples/accelerate/single_gpu.yaml -m adaptation.finetune \
  --model_name_or_path "$ADAPTED" --train_data "$WORK/train.jsonl" --output_dir "$MODEL" \
  --train_group_size 16 --query_max_len 64 --passage_max_len 160 --temperature 0.02 \
  --per_device_train_batch_size 8 --num_train_epochs 1 --warmup_ratio 0.1 \
  --gradient_checkpointing --logging_steps 5   # --mixed_precision auto: bf16 autocast, fp16 on cards without bf16

bash "$(dirname "$0")/evaluate.sh" "$DATASET" "$MODEL"
