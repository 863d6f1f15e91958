import math
import os

import pytest
import torch
import torch.nn.functional as F

from adaptation.contrastive import contrastive_loss, info_nce


def test_info_nce_hand_checked():
    # Two queries, groups of two: q0's positive is p0, q1's is p2; every other passage is a negative.
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    passages = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    # q0 scores [1, 0, 0, 1] -> -log(e / (2e + 2)); q1 scores [0, 1, 1, 0], the same.
    expected = -math.log(math.e / (2 * math.e + 2))
    assert info_nce(queries, passages, temperature=1.0, group_size=2).item() == pytest.approx(expected)
    # Temperature divides every score: at 0.5, q0 scores [2, 0, 0, 2].
    expected_half = -math.log(math.e ** 2 / (2 * math.e ** 2 + 2))
    assert info_nce(queries, passages, temperature=0.5, group_size=2).item() == pytest.approx(expected_half)


def test_in_batch_negatives_count():
    # A passage of another query's group that matches q0 perfectly must raise q0's loss.
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    alone = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, -1.0]])
    rival = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    assert info_nce(queries, rival, 1.0, 2) > info_nce(queries, alone, 1.0, 2)


def test_accuracy_and_group_check():
    queries = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=-1)
    passages = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, 0.6]])
    out = contrastive_loss(queries, passages, temperature=0.02, group_size=2)
    assert out["accuracy"].item() == pytest.approx(0.5)  # q0 ranks its p0 first; q1 ranks p1 above its p2
    with pytest.raises(ValueError, match="group size 3"):
        info_nce(queries, passages, 1.0, 3)


ROWS, GROUP, DIM, FEATURES = 4, 3, 5, 7


def _problem():
    generator = torch.Generator().manual_seed(0)
    encoder = torch.nn.Linear(FEATURES, DIM)
    with torch.no_grad():
        encoder.weight.copy_(torch.randn(DIM, FEATURES, generator=generator))
        encoder.bias.copy_(torch.randn(DIM, generator=generator))
    queries = torch.randn(ROWS, FEATURES, generator=generator)
    passages = torch.randn(ROWS * GROUP, FEATURES, generator=generator)
    return encoder, queries, passages


def _loss_and_grads(encoder, queries, passages):
    out = contrastive_loss(F.normalize(encoder(queries), dim=-1), F.normalize(encoder(passages), dim=-1),
                           temperature=0.05, group_size=GROUP)
    out["loss"].backward()
    return out["loss"].detach(), [p.grad.clone() for p in encoder.parameters()]


def _rank(rank: int, world: int, init_file: str, result_file: str):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        encoder, queries, passages = _problem()
        share = ROWS // world
        loss, grads = _loss_and_grads(encoder, queries[rank * share:(rank + 1) * share],
                                      passages[rank * share * GROUP:(rank + 1) * share * GROUP])
        for grad in grads:  # what data-parallel training does to gradients
            dist.all_reduce(grad)
            grad /= world
        torch.save({"loss": loss, "grads": grads}, f"{result_file}.{rank}")
        dist.barrier()
    except BaseException:
        dist.destroy_process_group()
        raise
    # gloo's teardown aborts now and then (SIGABRT in destroy_process_group or at exit, about 1 run in 20
    # with torch 2.13 on CPU); both results are on disk, so leave without it.
    os._exit(0)


def test_cross_device_equals_single_process(tmp_path):
    import torch.multiprocessing as mp

    world = 2
    mp.spawn(_rank, args=(world, str(tmp_path / "init"), str(tmp_path / "result")), nprocs=world, join=True)
    encoder, queries, passages = _problem()
    loss, grads = _loss_and_grads(encoder, queries, passages)
    for rank in range(world):
        got = torch.load(tmp_path / f"result.{rank}")
        assert torch.allclose(got["loss"], loss, atol=1e-6)
        for mine, reference in zip(got["grads"], grads):
            assert torch.allclose(mine, reference, atol=1e-5), (mine - reference).abs().max()
