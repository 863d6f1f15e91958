#!/usr/bin/env bash
# EBAE/EBAR adaptation of LLaMA-2-7B on Wikipedia, as the release's README runs it: full fine-tuning, lr 1e-5,
# 1 epoch, bf16, DeepSpeed ZeRO-1, gradient checkpointing, 8 GPUs x 1 example per step (a global batch of 8),
# rows of 128 tokens with the template (--cutoff_len: 89 of text on LLaMA-2), stop words out of the targets,
# warmup 0.1 on the release's schedule (DeepSpeed's WarmupDecayLR: log warmup, then linear decay; the default
# --lr_scheduler_type). All but the batch are the defaults, written out here.
# When memory allows, --per_device_train_batch_size 8 (a global batch of 64: 8x fewer steps, each on 8x the
# data) trains faster; the release's README calls its run an example and defers to its paper for the full data.
# Skip this step with ADAPTED=BAAI/LLARA-pretrain.
# WIKI: the release's data (the Hugging Face dataset cfli/pretrain_wiki: JSONL with input / output_summarize /
# output_predict, ~500-word chunks of Wikipedia), used as is; or a Wikipedia dump
# (enwiki-latest-pages-articles.xml.bz2) or any text adaptation.prepare accepts, cut into --chunk_tokens
# chunks (650 tokens: about the release's 500 words; ignored for release-format JSONL).
source "$(dirname "$0")/env.sh"
if [[ "$ADAPTED" == BAAI/* ]]; then echo "starting from the released $ADAPTED: no adaptation"; exit 0; fi
WIKI=${WIKI:?set WIKI to the release JSONL (cfli/pretrain_wiki) or a Wikipedia dump}

accelerate launch --config_file examples/accelerate/deepspeed_zero1.yaml --num_processes "$NUM_GPUS" \
  -m adaptation.pretrain \
  --model_name_or_path "$BASE_MODEL" \
  --train_data "$WIKI" --chunk_tokens 650 \
  --output_dir "$ADAPTED" \
  --windows release --cutoff_len 128 --remove_stopwords True \
  --learning_rate 1e-5 --num_train_epochs 1 --warmup_ratio 0.1 --lr_scheduler_type log_warmup_linear_decay \
  --per_device_train_batch_size 1 \
  --mixed_precision bf16 --gradient_checkpointing \
  --save_steps 1000 --logging_steps 10
