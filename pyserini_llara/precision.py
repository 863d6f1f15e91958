"""Which floating-point precision is fast on a device: the one place that decides what ``auto`` means.

Half precision is not always faster. On a CPU with native bf16 (AVX-512 BF16, AMX) a bf16
matmul runs ~7x faster than fp32; on an AVX2-only CPU (AMD Zen 1-3, older Intel, most cloud
VMs) torch has no bf16 kernel and falls back to a generic loop 25-70x slower than fp32.
torch itself sends bf16 matmuls to oneDNN only when ``torch.ops.mkldnn._is_mkldnn_bf16_supported()``;
where that holds but the CPU merely emulates bf16 (AVX-512 without BF16), a micro-benchmark of
a few milliseconds, run once per process, settles it. CUDA: bf16 where the card has it, else fp16.
"""

from __future__ import annotations

import functools
import logging
import platform
import time
from pathlib import Path

logger = logging.getLogger(__name__)

PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")
# Not a precision but a promise: a LLaRA query encoder given it takes the precision of the index it searches.
INDEX_PRECISION = "index"
MIXED_PRECISIONS: tuple[str, ...] = ("auto", "no", "bf16", "fp16")
_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}
_TO_MIXED = {"float32": "no", "bfloat16": "bf16", "float16": "fp16"}
_FROM_MIXED = {mixed: dtype for dtype, mixed in _TO_MIXED.items()}
# A low precision must beat fp32 by this much in the micro-benchmark to count as fast.
MIN_SPEEDUP = 1.3

_said: set[tuple] = set()


def normalize(name: str) -> str:
    """A precision name or alias -> one of PRECISIONS; a ValueError names the choices."""
    name = _ALIASES.get(str(name).lower(), str(name).lower())
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}")
    return name


def _device_type(device) -> str:
    return str(device).split(":", 1)[0]


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), for headers that say where a figure was measured."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_capability() -> str:
    """torch's CPU kernel level (DEFAULT, AVX2, AVX512, ...), for logs and benchmark headers."""
    import torch

    return torch.backends.cpu.get_cpu_capability()


def _matmul_seconds(dtypes, size: int = 256, repeats: int = 5) -> dict:
    """Best-of-``repeats`` seconds of one ``size``-cube matmul per dtype, on one thread, rounds interleaved.

    One thread: on a loaded machine a second thread is preempted and the timing measures the
    scheduler (~12 ms instead of ~0.1 ms here). Interleaved rounds: a slow spell hits every dtype.
    """
    import torch

    pairs = {dtype: (torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)) for dtype in dtypes}
    best = dict.fromkeys(dtypes, float("inf"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for a, b in pairs.values():
            a @ b
        for _ in range(repeats):
            for dtype, (a, b) in pairs.items():
                start = time.perf_counter()
                a @ b
                best[dtype] = min(best[dtype], time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return best


def _onednn_supports(dtype_name: str) -> bool:
    import torch

    check = {"bfloat16": torch.ops.mkldnn._is_mkldnn_bf16_supported,
             "float16": torch.ops.mkldnn._is_mkldnn_fp16_supported}[dtype_name]
    return bool(check())


@functools.cache
def cpu_speedup(dtype_name: str) -> float:
    """How many times faster a matmul runs in ``dtype_name`` than in fp32 on this CPU (0 without a oneDNN kernel)."""
    import torch

    if not _onednn_supports(dtype_name):
        return 0.0
    low = getattr(torch, dtype_name)
    seconds = _matmul_seconds((torch.float32, low))
    return seconds[torch.float32] / seconds[low]


def cpu_is_fast(dtype_name: str) -> bool:
    return cpu_speedup(dtype_name) >= MIN_SPEEDUP


def is_fast(dtype_name: str, device) -> bool:
    """Whether ``dtype_name`` runs faster than fp32 on ``device`` (False where that is not known)."""
    kind = _device_type(device)
    if dtype_name == "float32":
        return False
    if kind == "cuda":
        import torch

        return dtype_name == "float16" or torch.cuda.is_bf16_supported()
    return kind == "cpu" and cpu_is_fast(dtype_name)


def fast_low_precision(device) -> str | None:
    """The low precision that runs faster than fp32 on ``device``, or None where none does (or none is known)."""
    if is_fast("bfloat16", device):
        return "bfloat16"
    return "float16" if _device_type(device) == "cuda" else None


def describe(device) -> str:
    """One line on the device and what ``auto`` picks there, e.g. for a demo's header."""
    kind = _device_type(device)
    chosen = fast_low_precision(device) or "float32"
    if kind == "cpu":
        speedup = cpu_speedup("bfloat16")
        bf16 = f"bf16 matmul {speedup:.1f}x fp32" if speedup else "no bf16 kernel"
        return f"{cpu_name()}, {cpu_capability()} ({bf16}): auto = {chosen}"
    if kind == "cuda":
        import torch

        return f"{torch.cuda.get_device_name(device)}: auto = {chosen}"
    return f"{device}: auto = {chosen}"


def _once(key: tuple, level: int, message: str, *args) -> None:
    if key not in _said:
        _said.add(key)
        logger.log(level, message, *args)


def resolve_dtype(requested: str, device) -> str:
    """``auto`` -> the fast low precision of ``device``, else float32; an explicit choice is kept.

    An explicit low precision that is slow on the device is honoured with a one-line warning.
    """
    requested = normalize(requested)
    if requested == "auto":
        chosen = fast_low_precision(device) or "float32"
        _once(("auto", str(device), chosen), logging.INFO, "precision auto on %s -> %s", device, chosen)
        return chosen
    if requested != "float32" and _device_type(device) in ("cpu", "cuda") and not is_fast(requested, device):
        _once(("slow", str(device), requested), logging.WARNING,
              "%s is slower than float32 on %s (%s); pass auto or float32 for speed", requested, device,
              describe(device))
    return requested


def resolve_training_dtype(requested: str, device) -> str:
    """The dtype of the weights a training run updates: ``auto`` -> float32, an explicit choice kept.

    float32 master weights whatever the device: AdamW's updates at the usual learning rates
    (1e-5 to 3e-4 of a weight) are below bf16's resolution (2^-8 relative), so bf16 weights
    would drop most of them. The speed of low precision comes from autocast
    (``resolve_mixed_precision``), which runs the matmuls in bf16 where that is fast.
    """
    if normalize(requested) == "auto":
        return "float32"
    return resolve_dtype(requested, device)


def pyserini_half(device) -> str:
    """What Pyserini's ``--fp16`` asks for: the device's fast low precision, or float32 (said once) where none
    is fast."""
    fast = fast_low_precision(device)
    if fast is None:
        _once(("fp16-flag", str(device)), logging.WARNING,
              "--fp16: no low precision is faster than float32 on %s (%s); encoding in float32", device,
              describe(device))
    return fast or "float32"


def resolve_mixed_precision(requested: str, device) -> str:
    """accelerate's ``mixed_precision`` (no / bf16 / fp16) for ``requested``, ``auto`` resolved per device."""
    check_mixed_precision(requested)
    requested = str(requested).lower()
    dtype = resolve_dtype("auto" if requested == "auto" else _FROM_MIXED[requested], device)
    return _TO_MIXED[dtype]


def check_mixed_precision(requested: str) -> None:
    """A ValueError naming the choices for anything but auto / no / bf16 / fp16."""
    if str(requested).lower() not in MIXED_PRECISIONS:
        raise ValueError(f"unknown mixed_precision {requested!r}; choose one of {', '.join(MIXED_PRECISIONS)}")
