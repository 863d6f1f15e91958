#!/usr/bin/env bash
# EBAE/EBAR adaptation of LLaMA-2-7B on Wikipedia (the release: full fine-tuning, lr 1e-5, 1 epoch, bf16,
# warmup 0.1, DeepSpeed ZeRO-1, gradient checkpointing, 8 GPUs). Skip it with ADAPTED=BAAI/LLARA-pretrain.
# WIKI: a Wikipedia dump (enwiki-latest-pages-articles.xml.bz2) or any text accepted by adaptation.prepare.
source "$(dirname "$0")/env.sh"
if [[ "$ADAPTED" == BAAI/* ]]; then echo "starting from the released $ADAPTED: no adaptation"; exit 0; fi
WIKI=${WIKI:?set WIKI to a Wikipedia dump, e.g. enwiki-latest-pages-articles.xml.bz2}

accelerate launch --config_file examples/accelerate/deepspeed_zero1.yaml --num_processes "$NUM_GPUS" \
  -m adaptation.pretrain \
  --model_name_or_path "$BASE_MODEL" \
  --train_data "$WIKI" \
  --output_dir "$ADAPTED" \
  --learning_rate 1e-5 --num_train_epochs 1 --warmup_ratio 0.1 \
  --per_device_train_batch_size 8 \
  --mixed_precision bf16 --gradient_checkpointing \
  --save_steps 1000 --logging_steps 10
