"""The gradient-cached contrastive step: the gradients of the un-chunked step, with LoRA, dropout and DDP with
cross-device negatives."""

import os

import pytest
import torch

from adaptation.data.collators import ContrastiveCollator
from adaptation.embeddings import GradCache, _RandomState, embed
from adaptation.finetune import ContrastiveObjective, FinetuneTrainingArguments
from adaptation.training import apply_lora
from pyserini_llara.modeling import load_model

WORDS = "the llama is a domesticated camelid used as a pack animal insurance covers the cost of damage".split()
GROUP = 3


def groups(count: int, offset: int = 0):
    text = lambda i, n: " ".join(WORDS[(i * 5 + j) % len(WORDS)] for j in range(n))  # noqa: E731
    return [(text(i, 3 + i), [text(i + k, 4 + 7 * ((i + k) % 5)) for k in range(GROUP)])
            for i in range(offset, offset + count)]


def lora_model(path: str, dropout: float = 0.0):
    """The tiny model with LoRA, its B matrices random (at their zero init, A would get no gradient)."""
    model, tokenizer = load_model(path, dtype="float32")
    torch.manual_seed(0)
    model = apply_lora(model, tokenizer, FinetuneTrainingArguments(output_dir="unused", lora_r=4, lora_alpha=8,
                                                                   lora_dropout=dropout))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return model.train(), ContrastiveCollator(tokenizer, query_max_len=48, passage_max_len=80)


def gradients(model, loss) -> dict[str, torch.Tensor]:
    model.zero_grad()
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}


def assert_same(got: dict, expected: dict, atol: float = 1e-5):
    assert got.keys() == expected.keys()
    assert max(g.abs().max().item() for g in expected.values()) > 1e-3, "gradients that could not differ"
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=atol, rtol=0, msg=name)


@pytest.mark.parametrize("chunks", [(1, 2), (3, 5), (4, 32)])
def test_gradients_equal_the_unchunked_step(tiny_llara, chunks):
    model, collator = lora_model(str(tiny_llara))
    batch = collator(groups(4))
    plain = ContrastiveObjective(0.05, GROUP, cross_device=False)(model, batch)
    expected = gradients(model, plain["loss"])
    cached = ContrastiveObjective(0.05, GROUP, cross_device=False, grad_cache=GradCache(*chunks))(model, batch)
    torch.testing.assert_close(cached["loss"], plain["loss"], atol=1e-6, rtol=0)
    assert_same(gradients(model, cached["loss"]), expected)


def _chunked_step(model, batch, chunks, grad_cache: bool):
    torch.manual_seed(7)
    if grad_cache:
        return ContrastiveObjective(0.05, GROUP, cross_device=False, grad_cache=GradCache(*chunks))(model, batch)
    queries, passages = embed(model, batch, "query", chunks[0]), embed(model, batch, "passage", chunks[1])
    from adaptation.contrastive import contrastive_loss

    return contrastive_loss(queries, passages, temperature=0.05, group_size=GROUP, cross_device=False)


def test_dropout_draws_the_same_masks_when_a_chunk_runs_again(tiny_llara, monkeypatch):
    """With dropout, the cached step equals the same chunks run once with a graph; without restoring the random
    state before the second run, it would not (the control below), so this test can fail."""
    model, collator = lora_model(str(tiny_llara), dropout=0.5)
    batch = collator(groups(4))
    expected = gradients(model, _chunked_step(model, batch, (2, 5), grad_cache=False)["loss"])
    assert_same(gradients(model, _chunked_step(model, batch, (2, 5), grad_cache=True)["loss"]), expected)
    monkeypatch.setattr(_RandomState, "restored", lambda self: torch.random.fork_rng(devices=[]))
    wrong = gradients(model, _chunked_step(model, batch, (2, 5), grad_cache=True)["loss"])
    assert max((wrong[n] - expected[n]).abs().max().item() for n in expected) > 1e-3


class _Accelerator:
    """What the cached step asks of accelerate's Accelerator."""

    @staticmethod
    def no_sync(model):
        return model.no_sync()


def _rank(rank: int, world: int, path: str, init_file: str, result_file: str):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model, collator = lora_model(path)
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        batch = collator(groups(2, offset=2 * rank))
        objective = ContrastiveObjective(0.05, GROUP, cross_device=True, grad_cache=GradCache(1, 2))
        out = objective(ddp, batch, _Accelerator())
        out["loss"].backward()  # DDP averages the gradients over the processes
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
        torch.save({"loss": out["loss"].detach(), "grads": grads}, f"{result_file}.{rank}")
        dist.barrier()
    except BaseException:
        dist.destroy_process_group()
        raise
    # gloo's teardown aborts now and then (see test_finetune_contrastive); the results are on disk.
    os._exit(0)


def test_under_ddp_with_cross_device_negatives_equals_one_process_on_the_whole_batch(tiny_llara, tmp_path):
    import torch.multiprocessing as mp

    world = 2
    mp.spawn(_rank, args=(world, str(tiny_llara), str(tmp_path / "init"), str(tmp_path / "result")), nprocs=world,
             join=True)
    model, collator = lora_model(str(tiny_llara))
    plain = ContrastiveObjective(0.05, GROUP, cross_device=False)(model, collator(groups(4)))
    expected = gradients(model, plain["loss"])
    for rank in range(world):
        got = torch.load(tmp_path / f"result.{rank}")
        torch.testing.assert_close(got["loss"], plain["loss"].detach(), atol=1e-6, rtol=0)
        assert_same(got["grads"], expected)
