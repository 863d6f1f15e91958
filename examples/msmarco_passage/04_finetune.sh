#!/usr/bin/env bash
# Contrastive fine-tuning as the release's README runs it: LoRA r 64 / alpha 16 / dropout 0.1 on q,k,v,o,gate,
# up,down and nothing else (the <s1>..<s16> rows stay as adapted), lr 3e-4, 1 epoch, warmup 0.1 on the release's
# schedule (DeepSpeed's WarmupDecayLR: log warmup, then linear decay), groups of 1 positive + 15 negatives,
# in-batch and cross-device negatives, query 64 / passage 160 tokens with the template, temperature 0.01 (the
# README's; the release's default is 0.02), 8 GPUs x 1 query per step: 8 queries and 128 passages per step.
# The release's README fine-tunes in fp16 under DeepSpeed ZeRO-1 (which only shards the optimizer state); bf16
# with DDP here needs no loss scaling (--mixed_precision fp16 is the README's precision).
# When memory allows, --per_device_train_batch_size 16 (128 queries and 2,048 passages per step: 16x fewer
# steps, each with 16x the in-batch negatives) trains faster. --gradient_accumulation_steps adds no negatives.
# The release's cross-device gather lets gradients flow through each GPU's own embeddings only, which makes its
# gradient 1/NUM_GPUS of this one; Adam does not see the scale, gradient clipping does: --max_grad_norm "$NUM_GPUS"
# clips as the release's 1.0 did.
source "$(dirname "$0")/env.sh"

accelerate launch --config_file examples/accelerate/multi_gpu.yaml --num_processes "$NUM_GPUS" \
  -m adaptation.finetune \
  --model_name_or_path "$ADAPTED" \
  --train_data "$WORK/train.jsonl" \
  --output_dir "$FINETUNED" \
  --train_group_size 16 --query_max_len 64 --passage_max_len 160 --temperature 0.01 \
  --learning_rate 3e-4 --num_train_epochs 1 --warmup_ratio 0.1 --lr_scheduler_type log_warmup_linear_decay \
  --per_device_train_batch_size 1 \
  --mixed_precision bf16 --gradient_checkpointing --max_grad_norm "$NUM_GPUS" \
  --save_steps 500 --logging_steps 10
