#!/usr/bin/env bash
# Contrastive fine-tuning as the release: LoRA r 64 / alpha 16 / dropout 0.1 on q,k,v,o,gate,up,down (the
# defaults), lr 3e-4, 1 epoch, groups of 1 positive + 15 negatives, in-batch and cross-device negatives,
# query 64 / passage 160 tokens with the template, temperature 0.01 (the release's example; default 0.02).
# Batch: 8 GPUs x 16 queries x 16 passages = 2,048 passages per step; lower the per-device batch (and raise
# --gradient_accumulation_steps, which does not add negatives) if it does not fit.
source "$(dirname "$0")/env.sh"

accelerate launch --config_file examples/accelerate/multi_gpu.yaml --num_processes "$NUM_GPUS" \
  -m adaptation.finetune \
  --model_name_or_path "$ADAPTED" \
  --train_data "$WORK/train.jsonl" \
  --output_dir "$FINETUNED" \
  --train_group_size 16 --query_max_len 64 --passage_max_len 160 --temperature 0.01 \
  --learning_rate 3e-4 --num_train_epochs 1 --warmup_ratio 0.1 \
  --per_device_train_batch_size 16 \
  --mixed_precision bf16 --gradient_checkpointing \
  --save_steps 500 --logging_steps 10
