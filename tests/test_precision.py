"""`auto` precision: bf16 only where the device runs it natively, fp32 otherwise; explicit slow choices warn once."""

import logging
import os
import subprocess
import sys

import pytest
import torch

from pyserini_llara import precision


@pytest.fixture
def cpu(monkeypatch):
    """A CPU whose oneDNN bf16 support and matmul timings the test sets."""
    precision.cpu_speedup.cache_clear()
    precision._said.clear()
    state = {"onednn": True, "seconds": {torch.float32: 1.0, torch.bfloat16: 0.2, torch.float16: 0.2}}
    monkeypatch.setattr(precision, "_onednn_supports", lambda name: state["onednn"])
    monkeypatch.setattr(precision, "_matmul_seconds", lambda dtypes, *a, **k: {d: state["seconds"][d] for d in dtypes})
    yield state
    precision.cpu_speedup.cache_clear()
    precision._said.clear()


def test_native_bf16_cpu_gets_bf16(cpu):
    assert precision.fast_low_precision("cpu") == "bfloat16"
    assert precision.resolve_dtype("auto", "cpu") == "bfloat16"
    assert precision.resolve_mixed_precision("auto", "cpu") == "bf16"


def test_avx2_only_cpu_gets_fp32(cpu):
    cpu["onednn"] = False  # what torch reports on AVX2-only CPUs
    assert precision.fast_low_precision("cpu") is None
    assert precision.resolve_dtype("auto", "cpu") == "float32"
    assert precision.resolve_mixed_precision("auto", "cpu") == "no"


def test_emulated_bf16_that_is_not_faster_counts_as_slow(cpu):
    cpu["seconds"][torch.bfloat16] = 1.1  # AVX-512 without BF16: oneDNN emulates it
    assert precision.resolve_dtype("auto", "cpu") == "float32"


def test_explicit_slow_choice_is_kept_with_one_warning(cpu, caplog):
    cpu["onednn"] = False
    with caplog.at_level(logging.WARNING, logger="pyserini_llara.precision"):
        assert precision.resolve_dtype("bf16", "cpu") == "bfloat16"
        assert precision.resolve_mixed_precision("bf16", "cpu") == "bf16"
        assert precision.resolve_dtype("float32", "cpu") == "float32"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "bfloat16 is slower than float32" in warnings[0].getMessage()


def test_explicit_fast_choice_does_not_warn(cpu, caplog):
    with caplog.at_level(logging.WARNING, logger="pyserini_llara.precision"):
        assert precision.resolve_dtype("bfloat16", "cpu") == "bfloat16"
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("bf16_card,expected", [(True, "bfloat16"), (False, "float16")])
def test_cuda_gets_bf16_where_the_card_has_it_else_fp16(monkeypatch, caplog, bf16_card, expected):
    precision._said.clear()
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_card)
    assert precision.resolve_dtype("auto", "cuda:0") == expected
    assert precision.resolve_mixed_precision("auto", "cuda") == {"bfloat16": "bf16", "float16": "fp16"}[expected]
    with caplog.at_level(logging.WARNING, logger="pyserini_llara.precision"):
        assert precision.resolve_dtype("float16", "cuda:1") == "float16"
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("onednn", [True, False], ids=["native-bf16", "avx2-only"])
def test_training_weights_auto_is_float32_on_every_device(cpu, caplog, monkeypatch, onednn):
    """Master weights stay fp32 (AdamW's updates vanish in bf16); autocast gives the speed."""
    cpu["onednn"] = onednn
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert precision.resolve_training_dtype("auto", "cpu") == "float32"
    assert precision.resolve_training_dtype("auto", "cuda:0") == "float32"
    with caplog.at_level(logging.WARNING, logger="pyserini_llara.precision"):
        assert precision.resolve_training_dtype("bf16", "cpu") == "bfloat16"
    assert bool([r for r in caplog.records if r.levelno == logging.WARNING]) == (not onednn)


def test_the_micro_benchmark_leaves_the_thread_count_alone():
    threads = torch.get_num_threads()
    seconds = precision._matmul_seconds((torch.float32,), size=32, repeats=2)
    assert seconds[torch.float32] > 0 and torch.get_num_threads() == threads


@pytest.mark.parametrize("bad", ["float64", "int8", ""])
def test_unknown_precisions_name_the_choices(bad):
    with pytest.raises(ValueError, match="auto, float32, bfloat16, float16"):
        precision.resolve_dtype(bad, "cpu")
    with pytest.raises(ValueError, match="auto, no, bf16, fp16"):
        precision.resolve_mixed_precision(bad or "x", "cpu")


def test_without_a_bf16_kernel_auto_is_fp32_on_this_very_cpu():
    """oneDNN limited to AVX2 reproduces an AVX2-only CPU for real: no bf16 kernel, so auto must be fp32."""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    code = ("from pyserini_llara import precision as p; "
            "print(p.cpu_speedup('bfloat16'), p.resolve_dtype('auto', 'cpu'), "
            "p.resolve_mixed_precision('auto', 'cpu'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0.0", "float32", "no"]
