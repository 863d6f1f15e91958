import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from adaptation.data.collators import ContrastiveCollator
from adaptation.embeddings import embed
from adaptation.finetune import FinetuneArguments, FinetuneTrainingArguments, finetune, main, parser, prepare
from adaptation.training import train
from pyserini_llara.encoding import LlaraEncoder
from pyserini_llara.modeling import load_model
from pyserini_llara.template import SPECIAL_TOKENS

TEXTS = [
    "The llama is a domesticated South American camelid, used as a pack animal.",
    "Dense retrieval encodes queries and passages into vectors and searches by inner product.",
    "Insurance covers the cost of damage to a car after an accident, minus the deductible.",
    "Wikipedia is a free online encyclopedia written by volunteers around the world.",
    "Life insurance pays a sum to the family of the insured person.",
    "Faiss searches vectors by inner product with flat or compressed indexes.",
]
QUERIES = ["what is a llama", "how does dense retrieval work", "what does car insurance cover",
           "who writes wikipedia", "what is life insurance", "how does faiss search"]


@pytest.fixture
def train_file(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"query": q, "pos": [{"title": "", "text": TEXTS[i]}],
                                        "neg": [t for j, t in enumerate(TEXTS) if j != i][:3]}) + "\n"
                            for i, q in enumerate(QUERIES)))
    return path


def _args(model, train_file, output_dir, **training):
    defaults = dict(output_dir=str(output_dir), per_device_train_batch_size=2, max_steps=3, logging_steps=1,
                    learning_rate=1e-3, lora_r=4, lora_alpha=8, save_steps=2, mixed_precision="no")
    return (FinetuneArguments(model_name_or_path=str(model), train_data=str(train_file), train_group_size=3,
                              query_max_len=48, passage_max_len=64, temperature=0.05),
            FinetuneTrainingArguments(**{**defaults, **training}))


def test_embed_matches_the_encoder_and_chunking_changes_nothing(tiny_llara):
    model, tokenizer = load_model(str(tiny_llara), dtype="float32")
    passages = [t[:n] for t, n in zip(TEXTS * 2, (90, 12, 60, 85, 5, 40, 70, 20, 88, 33, 51, 9))]
    collator = ContrastiveCollator(tokenizer, query_max_len=48, passage_max_len=64)
    batch = collator([("q", passages)])
    reference = LlaraEncoder(model, tokenizer).encode_passages(passages, max_text_tokens=collator.passage_budget)
    one_pass = embed(model, batch, "passage")
    np.testing.assert_allclose(one_pass.detach().numpy(), reference, atol=1e-5)  # training sees what search sees
    grads = []
    for chunk_size in (0, 5):
        model.zero_grad()
        vectors = embed(model, batch, "passage", chunk_size)
        torch.testing.assert_close(vectors, one_pass, atol=1e-5, rtol=0)
        (vectors * torch.arange(vectors.numel()).reshape(vectors.shape)).sum().backward()
        grads.append(model.layers[0].self_attn.q_proj.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], atol=1e-4, rtol=1e-4)
    assert len(set(batch["passage_attention_mask"].sum(dim=1).tolist())) > 4  # the lengths did differ


def _embeddings(encoder):
    return np.concatenate([encoder.encode_queries(QUERIES), encoder.encode_passages(TEXTS)])


@pytest.mark.slow
@pytest.mark.parametrize("use_lora", [True, False])
def test_output_loads_and_encodes_like_the_trained_model(tiny_llara, train_file, tmp_path, use_lora):
    args, training = _args(tiny_llara, train_file, tmp_path / "out", use_lora=use_lora)
    model, tokenizer, dataset, collator, objective, card = prepare(args, training)
    before = _embeddings(LlaraEncoder(model, tokenizer))
    out = train(model, tokenizer, dataset, collator, objective, training, card=card)
    model.eval()
    in_memory = _embeddings(LlaraEncoder(model, tokenizer))
    loaded = _embeddings(LlaraEncoder.from_pretrained(str(out), dtype="float32"))
    np.testing.assert_allclose(loaded, in_memory, atol=1e-5)
    assert np.abs(in_memory - before).max() > 1e-3  # it trained
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3] and all(0 <= m["accuracy"] <= 1 for m in metrics)


@pytest.mark.slow
@pytest.mark.parametrize("train_rows", [False, True], ids=["default", "lora_train_llara_tokens"])
def test_placeholder_rows_stay_as_adapted_unless_asked(tiny_llara, train_file, tmp_path, train_rows):
    """The release fine-tunes LoRA only; training the <s1>..<s16> rows is an option."""
    args, training = _args(tiny_llara, train_file, tmp_path / "out", **({"lora_train_llara_tokens": True}
                                                                         if train_rows else {}))
    assert training.lora_train_llara_tokens is train_rows
    before, tokenizer = load_model(str(tiny_llara))
    after, _ = load_model(str(finetune(args, training)))
    ids = tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    others = [i for i in range(len(tokenizer)) if i not in ids]
    old, new = before.get_input_embeddings().weight, after.get_input_embeddings().weight
    torch.testing.assert_close(new[others], old[others], rtol=0, atol=0)
    assert torch.equal(new[ids], old[ids]) is not train_rows
    assert not torch.allclose(after.layers[0].self_attn.q_proj.weight, before.layers[0].self_attn.q_proj.weight)


class _Interrupt(RuntimeError):
    pass


@pytest.mark.slow
def test_interrupted_and_resumed_equals_uninterrupted(tiny_llara, train_file, tmp_path):
    # 4 steps of 2 over 6 queries: the resumed run crosses an epoch boundary, and LoRA dropout draws random numbers.
    args, whole = _args(tiny_llara, train_file, tmp_path / "whole", max_steps=4)
    train(*prepare(args, whole)[:5], whole)

    args, broken = _args(tiny_llara, train_file, tmp_path / "broken", max_steps=4)
    model, tokenizer, dataset, collator, objective, _ = prepare(args, broken)
    calls = 0

    def crash_on_third_step(model, batch, accelerator):
        nonlocal calls
        calls += 1
        if calls == 3:
            raise _Interrupt
        return objective(model, batch, accelerator)

    with pytest.raises(_Interrupt):
        train(model, tokenizer, dataset, collator, crash_on_third_step, broken)
    assert (tmp_path / "broken" / "checkpoints" / "step-2").is_dir()
    train(*prepare(args, broken)[:5], broken)  # resumes from step 2

    a = load_file(tmp_path / "whole" / "model.safetensors")
    b = load_file(tmp_path / "broken" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)
    losses = [[json.loads(line)["loss"] for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
              for run in ("whole", "broken")]
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)


def test_cli_rejects_bad_data(tiny_llara, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"query": "q", "pos": ["p"], "neg": []}) + "\n")
    with pytest.raises(SystemExit, match="bad.jsonl, line 1: query 'q' has no negative passage"):
        main(["--model_name_or_path", str(tiny_llara), "--train_data", str(bad), "--output_dir", str(tmp_path / "o")])


def test_cli_defaults_are_the_release_fine_tuning_ones():
    args, training = parser().parse_args_into_dataclasses(
        args=["--model_name_or_path", "m", "--train_data", "t", "--output_dir", "o"])
    assert (training.learning_rate, training.use_lora, training.lora_r, training.lora_alpha,
            training.lora_dropout) == (3e-4, True, 64, 16, 0.1)
    assert (args.train_group_size, args.query_max_len, args.passage_max_len, args.temperature) == (16, 64, 160, 0.02)
    assert (training.lora_train_llara_tokens, training.per_device_train_batch_size, training.num_train_epochs,
            training.warmup_ratio, training.lr_scheduler_type) == (False, 1, 1.0, 0.1, "log_warmup_linear_decay")
    _, full = parser().parse_args_into_dataclasses(
        args=["--model_name_or_path", "m", "--train_data", "t", "--output_dir", "o", "--use_lora", "False"])
    assert full.use_lora is False


def test_grad_cache_flags_train_as_the_plain_step(tiny_llara, train_file, tmp_path, monkeypatch):
    """Tevatron's flag names, through the training loop and accelerate's backward: the optimizer gets the plain
    step's gradients, and the runs log the same losses."""
    flags = ["--model_name_or_path", str(tiny_llara), "--train_data", str(train_file), "--train_group_size", "3",
             "--query_max_len", "48", "--passage_max_len", "64", "--temperature", "0.05",
             "--per_device_train_batch_size", "3", "--max_steps", "2", "--logging_steps", "1",
             "--learning_rate", "1e-3", "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0",
             "--mixed_precision", "no"]
    seen = []
    adamw_step = torch.optim.AdamW.step

    def recording_step(self, *args, **kwargs):
        seen[-1].append([p.grad.clone() for group in self.param_groups for p in group["params"]])
        return adamw_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", recording_step)
    for run, extra in (("plain", []), ("cached", ["--grad_cache", "--gc_q_chunk_size", "1", "--gc_p_chunk_size", "2"])):
        args, training = parser().parse_args_into_dataclasses(args=[*flags, "--output_dir", str(tmp_path / run),
                                                                    *extra])
        assert training.grad_cache is bool(extra)
        seen.append([])
        finetune(args, training)
    plain, cached = seen
    assert len(plain) == len(cached) == 2
    for a, b in zip(plain[0], cached[0]):  # the first step, from the same weights
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
    losses = [[json.loads(line)["loss"] for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
              for run in ("plain", "cached")]
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)


def test_grad_cache_refuses_what_it_cannot_run(tiny_llara, train_file, tmp_path, monkeypatch):
    args, training = _args(tiny_llara, train_file, tmp_path / "o", grad_cache=True)
    with pytest.raises(ValueError, match="drop --passage_chunk_size"):
        prepare(FinetuneArguments(**{**args.__dict__, "passage_chunk_size": 4}), training)
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(ValueError, match="not under DeepSpeed or FSDP"):
        prepare(args, training)
    with pytest.raises(ValueError, match="gc_p_chunk_size must be >= 1"):
        FinetuneTrainingArguments(output_dir="o", gc_p_chunk_size=0)
