"""LLaRA adaptation: EBAE/EBAR pretraining and contrastive fine-tuning."""
