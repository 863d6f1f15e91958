"""A tiny random LLaMA with a tokenizer trained on the fly: the offline stand-in for a LLaRA checkpoint."""

from __future__ import annotations

import inspect
from pathlib import Path

CORPUS = [
    "The llama is a domesticated South American camelid, used as a pack animal.",
    "Dense retrieval encodes queries and passages into vectors and searches by inner product.",
    "Insurance covers the cost of damage to a car after an accident, minus the deductible.",
    "Wikipedia is a free online encyclopedia written by volunteers around the world.",
    "What is a llama? How does life insurance work? Who writes Wikipedia articles?",
    "summarize the above passage within eight words: predict the following passage",
    "0 1 2 3 4 5 6 7 8 9 , . ! ? \" ' ( ) : ; - the a an of to in is and for on with",
]


def train_tokenizer(with_llara_tokens: bool = True, add_bos: bool = True):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 5, trainer=trainer)
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                           special_tokens=[("<s>", tok.token_to_id("<s>"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    if with_llara_tokens:
        # Added out of name order, as in the released tokenizers (<s9> gets the first new id).
        order = [f"<s{i}>" for i in range(9, 17)] + [f"<s{i}>" for i in range(1, 9)]
        fast.add_special_tokens({"additional_special_tokens": order})
    return fast


def build_tiny_llama(path: Path, *, with_llara_tokens: bool = True, add_bos: bool = True, seed: int = 0,
                     hidden_size: int = 64, layers: int = 2) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = train_tokenizer(with_llara_tokens, add_bos)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_bert(path: Path, *, hidden_size: int = 32) -> Path:
    """A tiny random BERT with a WordPiece vocabulary of CORPUS: a model of Pyserini's own encoders
    (``--encoder-class auto``) that builds offline."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    words = sorted({w.strip(".,!?\"'():;").lower() for line in CORPUS for w in line.split()} - {""})
    chars = sorted({c for line in CORPUS for c in line.lower() if not c.isspace()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars), *words]
    (path / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    vocab_argument = "vocab" if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters else "vocab_file"
    tokenizer = BertTokenizerFast(**{vocab_argument: str(path / "vocab.txt")})  # transformers 5 renamed it
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                        num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=128,
                        initializer_range=1.0)  # wide weights: texts get distinct vectors, runs no ties
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_family(path: Path, model_type: str, seed: int = 0, **config) -> Path:
    """A tiny random causal LM of any transformers decoder family, with the LLaRA tokenizer: 2 layers, hidden 64."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    tokenizer = train_tokenizer()
    sizes = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=1024,
                 bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=None,
                 tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **{**sizes, **config}))
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
