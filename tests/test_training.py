"""The shared training loop: exact resume, NaN guard, LoRA, export round trip into the plugin's encoder, logs."""

import json
import math
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file

from adaptation.data.collators import PretrainCollator
from adaptation.objective import PretrainObjective
from adaptation.training import (
    RELEASE_SCHEDULE,
    CheckpointError,
    NonFiniteLossError,
    TrainingArguments,
    apply_lora,
    last_checkpoint,
    make_scheduler,
    run_definition,
    train,
)
from pyserini_llara.encoding import LlaraEncoder
from pyserini_llara.modeling import load_model
from pyserini_llara.template import SPECIAL_TOKENS
from tiny import CORPUS

DATA = [{"input": CORPUS[i % 5], "output_summarize": CORPUS[i % 5], "output_predict": CORPUS[(i + 1) % 5]}
        for i in range(10)]
PASSAGES = ["A llama carries packs.", "Dense retrieval uses vectors and inner products.", "Car insurance."]


class Interrupted(RuntimeError):
    pass


def run(tiny_llara, output_dir, fail_after_batches=None, nan_at_batch=None, **overrides):
    """Train the tiny model on DATA with the pretraining objective; returns (model, tokenizer, output_dir)."""
    model, tokenizer = load_model(str(tiny_llara), causal_lm=True, dtype="float32")
    collator = PretrainCollator(tokenizer)
    objective = PretrainObjective(collator.n_summarize, collator.n_predict)
    calls = 0

    def compute_loss(model, batch, accelerator):
        nonlocal calls
        calls += 1
        if fail_after_batches is not None and calls > fail_after_batches:
            raise Interrupted("killed")
        parts = objective(model, batch, accelerator)
        if calls == nan_at_batch:
            parts["loss"] = parts["loss"] * float("nan")
        return parts

    settings = dict(output_dir=str(output_dir), max_steps=6, save_steps=2, per_device_train_batch_size=2,
                    gradient_accumulation_steps=2, learning_rate=1e-3, warmup_ratio=0.2, logging_steps=1, seed=7,
                    mixed_precision="no")
    args = TrainingArguments(**{**settings, **overrides})
    out = train(model, tokenizer, DATA, collator, compute_loss, args, card={"base model": str(tiny_llara)})
    return model, tokenizer, out


def encoder_embeddings(model, tokenizer):
    body = model.get_decoder() if hasattr(model, "get_decoder") else model
    return LlaraEncoder(body.eval(), tokenizer).encode_passages(PASSAGES)


@pytest.mark.parametrize("use_lora", [False, True], ids=["full", "lora"])
def test_interrupted_and_resumed_run_equals_uninterrupted(tiny_llara, tmp_path, use_lora):
    # 10 examples / batch 2 = 5 batches per epoch, accumulation 2: steps 1-3 in epoch 0 (the last one a
    # single batch), steps 4-6 in epoch 1. The run dies in batch 8 (epoch 1), after the step-4 checkpoint.
    lora = dict(use_lora=True, lora_r=4, lora_alpha=8, lora_dropout=0.1, lora_target_modules="q_proj,v_proj") \
        if use_lora else {}
    lora["save_steps"] = 4
    straight, _, _ = run(tiny_llara, tmp_path / "straight", **lora)
    with pytest.raises(Interrupted):
        run(tiny_llara, tmp_path / "resumed", fail_after_batches=8, **lora)
    assert last_checkpoint(tmp_path / "resumed").name == "step-4"
    resumed, _, _ = run(tiny_llara, tmp_path / "resumed", **lora)
    expected, actual = straight.state_dict(), resumed.state_dict()
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=1e-6, msg=name)
    steps = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    again = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in again] == [s["step"] for s in steps] == list(range(1, 7))
    assert [s["loss"] for s in again] == pytest.approx([s["loss"] for s in steps], rel=1e-5)
    assert [s["lr"] for s in again] == pytest.approx([s["lr"] for s in steps])
    # Training moved the weights (so equality above is not trivial).
    initial, _ = load_model(str(tiny_llara), causal_lm=True, dtype="float32")
    assert not torch.equal(initial.state_dict()["model.layers.0.self_attn.q_proj.weight"],
                           expected["model.layers.0.self_attn.q_proj.weight"])


def test_nan_loss_stops_and_names_a_checkpoint_whose_weights_and_loss_were_finite(tiny_llara, tmp_path):
    # Batch 7 is in step 4, whose loss comes from the weights of step 3: step-3 is set aside, step-2 named.
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at step 4 .*step 3 on\) were renamed \*\.nonfinite; "
                                                 r"a rerun resumes from .*step-2, whose weights and loss were finite"):
        run(tiny_llara, tmp_path / "run", nan_at_batch=7, save_steps=1, save_total_limit=0)
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names == ["step-1", "step-2", "step-3.nonfinite"]
    assert last_checkpoint(tmp_path / "run").name == "step-2"
    assert not (tmp_path / "run" / "model.safetensors").exists()
    run(tiny_llara, tmp_path / "run", save_steps=1, save_total_limit=0)  # the rerun resumes and finishes
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_exploded_weights_are_not_named_good_and_a_lower_learning_rate_resumes(tiny_llara, tmp_path):
    """lr 1e30: step 2's update makes the weights ~1e29 (still finite) and step 3's loss is NaN."""
    with pytest.raises(NonFiniteLossError, match=r"at step 3 .*a rerun resumes from .*step-1, whose weights"):
        run(tiny_llara, tmp_path / "run", learning_rate=1e30, save_steps=1, save_total_limit=0,
            lr_scheduler_type="linear")
    step1 = load_file(str(tmp_path / "run" / "checkpoints" / "step-1" / "model.safetensors"))
    assert max(float(t.abs().max()) for t in step1.values()) < 10  # what the rerun starts from
    run(tiny_llara, tmp_path / "run", save_steps=1, save_total_limit=0, lr_scheduler_type="linear",
        allow_changed_arguments=True)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 7)) and all(math.isfinite(r["loss"]) for r in rows)


def test_resume_refuses_changed_arguments_unless_allowed(tiny_llara, tmp_path):
    with pytest.raises(Interrupted):
        run(tiny_llara, tmp_path / "run", fail_after_batches=6, lr_scheduler_type="linear")  # step-2 is the last
    with pytest.raises(CheckpointError, match=r"other arguments \(learning_rate: 0.001 in the checkpoint, 0.002 now; "
                                              r"per_device_train_batch_size: 2 in the checkpoint, 1 now; seed: 7 in "
                                              r"the checkpoint, 8 now\).*--allow_changed_arguments"):
        run(tiny_llara, tmp_path / "run", learning_rate=2e-3, per_device_train_batch_size=1, seed=8,
            lr_scheduler_type="linear")
    run(tiny_llara, tmp_path / "run", learning_rate=2e-3, lr_scheduler_type="linear", allow_changed_arguments=True)
    rows = {json.loads(line)["step"]: json.loads(line) for line in
            (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()}
    # 6 steps, 2 of warmup, linear decay: the new peak 2e-3 scales the schedule from step 3 on.
    assert [rows[step]["lr"] for step in (2, 3, 6)] == pytest.approx([1e-3, 2e-3 * 3 / 4, 0.0])


def test_only_arguments_that_change_what_a_run_computes_define_it():
    def definition(**changes):
        return run_definition(TrainingArguments(**{"output_dir": "a", **changes}), processes=1,
                              stage={"train_data": ["x.jsonl"], "lm_weight": 1.0})

    same = definition(output_dir="b", save_steps=7, save_total_limit=9, logging_steps=3, gradient_checkpointing=True,
                      dataloader_num_workers=2, overwrite_output_dir=True, allow_changed_arguments=True)
    assert same == definition()
    for changes in ({"learning_rate": 1e-4}, {"max_steps": 9}, {"warmup_ratio": 0.0}, {"seed": 1},
                    {"gradient_accumulation_steps": 2}, {"mixed_precision": "bf16"}, {"use_lora": True}):
        assert definition(**changes) != definition(), changes
    assert run_definition(TrainingArguments(output_dir="a"), processes=2) != run_definition(
        TrainingArguments(output_dir="a"), processes=1)


class Payload:
    """Unpickling it creates a file: the sign that code from the checkpoint ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def interrupted_run(tiny_llara, tmp_path_factory):
    output = tmp_path_factory.mktemp("interrupted") / "run"
    with pytest.raises(Interrupted):
        run(tiny_llara, output, fail_after_batches=6)
    return output


@pytest.mark.parametrize("name", ["custom_checkpoint_0.pkl", "random_states_0.pkl", "optimizer.bin"])
def test_a_malicious_pickle_in_a_checkpoint_runs_no_code(interrupted_run, tiny_llara, tmp_path, name):
    output = shutil.copytree(interrupted_run, tmp_path / "run")
    marker = tmp_path / "code-ran"
    torch.save(Payload(marker), output / "checkpoints" / "step-2" / name)
    with pytest.raises(CheckpointError, match=f"step-2.*{name}|{name}.*step-2|cannot load .*step-2"):
        run(tiny_llara, output)
    assert not marker.exists()


def test_export_round_trip_full_and_logs(tiny_llara, tmp_path):
    model, tokenizer, out = run(tiny_llara, tmp_path / "run", save_total_limit=1)
    loaded = LlaraEncoder.from_pretrained(str(out), dtype="float32")
    assert loaded.tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == \
        tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    assert loaded.tokenizer.padding_side == "left"
    torch.testing.assert_close(torch.from_numpy(loaded.encode_passages(PASSAGES)),
                               torch.from_numpy(encoder_embeddings(model, tokenizer)), atol=1e-5, rtol=1e-5)
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-6"]  # save_total_limit
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"step", "lr", "loss", "lm", "ebae", "ebar", "tokens", "tokens_per_s"} <= set(rows[-1])
    assert rows[-1]["tokens"] > 0 and rows[-1]["loss"] < rows[0]["loss"]
    assert (out / "loss.png").stat().st_size > 1000
    card = (out / "README.md").read_text()
    assert str(tiny_llara) in card and "**steps**: 6" in card and "ebae" in card
    assert json.loads((out / "training_args.json").read_text())["max_steps"] == 6


def test_lora_merged_and_adapter_only_exports(tiny_llara, tmp_path):
    lora = dict(use_lora=True, lora_r=4, lora_alpha=8, lora_dropout=0.0, max_steps=3, save_steps=3)
    model, tokenizer, out = run(tiny_llara, tmp_path / "merged", **lora)
    assert not (out / "adapter_config.json").exists()
    loaded = LlaraEncoder.from_pretrained(str(out), dtype="float32")
    torch.testing.assert_close(torch.from_numpy(loaded.encode_passages(PASSAGES)),
                               torch.from_numpy(encoder_embeddings(model, tokenizer)), atol=1e-5, rtol=1e-5)
    # The LLaRA token rows were trained (peft trainable tokens) and merged into the embeddings.
    initial, _ = load_model(str(tiny_llara), causal_lm=True, dtype="float32")
    ids = tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    other = [i for i in range(len(tokenizer)) if i not in ids][:16]
    trained = model.get_input_embeddings().weight
    assert not torch.allclose(trained[ids], initial.get_input_embeddings().weight[ids])
    assert torch.equal(trained[other], initial.get_input_embeddings().weight[other])

    model, tokenizer, out = run(tiny_llara, tmp_path / "adapter", save_adapter_only=True, **lora)
    assert (out / "adapter_config.json").exists() and not (out / "model.safetensors").exists()
    loaded = LlaraEncoder.from_pretrained(str(out), dtype="float32")
    torch.testing.assert_close(torch.from_numpy(loaded.encode_passages(PASSAGES)),
                               torch.from_numpy(encoder_embeddings(model, tokenizer)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("fast,expected", [(None, "no"), ("bfloat16", "bf16")])
def test_auto_mixed_precision_is_the_devices_and_is_recorded(tiny_llara, tmp_path, monkeypatch, fast, expected):
    """auto: bf16 autocast where the CPU runs it natively, none elsewhere; the output records what ran."""
    from pyserini_llara import precision

    monkeypatch.setattr(precision, "fast_low_precision", lambda device: fast)
    _, _, out = run(tiny_llara, tmp_path / "run", mixed_precision="auto", max_steps=1, save_steps=1)
    assert json.loads((out / "training_args.json").read_text())["mixed_precision"] == expected
    state = json.loads((out / "checkpoints" / "step-1" / "trainer_state.json").read_text())
    assert state["args"]["mixed_precision"] == expected
    autocast = "no autocast" if expected == "no" else "bf16 autocast"
    assert f"**precision**: float32 weights, {autocast}" in (out / "README.md").read_text()


def test_bf16_gradient_checkpointing_and_finished_run_rerun(tiny_llara, tmp_path):
    _, _, out = run(tiny_llara, tmp_path / "run", mixed_precision="bf16", gradient_checkpointing=True, max_steps=2)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    # Rerunning a finished run only re-exports (gradient checkpointing may change); overwrite_output_dir starts over.
    run(tiny_llara, tmp_path / "run", mixed_precision="bf16", max_steps=2, fail_after_batches=0)
    with pytest.raises(Interrupted):
        run(tiny_llara, tmp_path / "run", max_steps=2, fail_after_batches=0, overwrite_output_dir=True)


def test_apply_lora_on_a_transformer_body(tiny_llara):
    body, tokenizer = load_model(str(tiny_llara), dtype="float32")
    args = TrainingArguments(output_dir="unused", use_lora=True, lora_r=2)
    peft_model = apply_lora(body, tokenizer, args)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any("lora_A" in n for n in trainable) and any("token_adapter" in n for n in trainable)
    with pytest.raises(ValueError, match="lora_target_modules"):
        apply_lora(load_model(str(tiny_llara), dtype="float32")[0], tokenizer,
                   TrainingArguments(output_dir="unused", use_lora=True, lora_target_modules="nonexistent"))


def test_argument_validation(tiny_llara, tmp_path):
    with pytest.raises(ValueError, match="mixed_precision"):
        TrainingArguments(output_dir="x", mixed_precision="fp8")
    with pytest.raises(ValueError, match="save_adapter_only needs use_lora"):
        TrainingArguments(output_dir="x", save_adapter_only=True)
    model, tokenizer = load_model(str(tiny_llara), causal_lm=True, dtype="float32")
    with pytest.raises(ValueError, match="empty"):
        train(model, tokenizer, [], list, lambda *a: {}, TrainingArguments(output_dir=str(tmp_path)))


def deepspeed_warmup_decay_lrs(lr: float, warmup: int, total: int) -> list[float]:
    """DeepSpeed's WarmupDecayLR (warmup_type log, min lr 0) restated: the lr of each optimizer step in turn.

    The engine sets the min lr at construction (iteration -1) and calls step() after each optimizer step.
    """
    warmup = max(2, warmup)
    iteration, used = -1, []
    for _ in range(total):
        if iteration < 0:
            gamma = 0.0
        elif iteration < warmup:
            gamma = (1.0 / math.log(warmup)) * math.log(iteration + 1)
        else:
            gamma = max(0.0, float(total - iteration) / float(max(1.0, total - warmup)))
        used.append(lr * gamma)
        iteration += 1
    return used


@pytest.mark.parametrize("warmup,total", [(5, 50), (1, 10), (0, 7), (30, 300)])
def test_default_schedule_is_the_release_deepspeed_warmup_decay(warmup, total):
    assert TrainingArguments(output_dir="unused").lr_scheduler_type == RELEASE_SCHEDULE
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
    scheduler = make_scheduler(RELEASE_SCHEDULE, optimizer, warmup, total)
    used = []
    for _ in range(total):
        used.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert used == pytest.approx(deepspeed_warmup_decay_lrs(3e-4, warmup, total), abs=1e-12)
