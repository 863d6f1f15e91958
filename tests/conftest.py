import json
import os
import runpy
import statistics
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# xdist's workers share the cores: each worker, and each process its tests start, gets its share of threads (unless
# OMP_NUM_THREADS says otherwise). Two workers of two threads each on a 2-core Ice Lake Xeon made a CI leg ~1.5x
# slower: OpenMP threads beyond the cores spin against each other.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1  # macOS: none
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // WORKERS)))
# Pyserini 2.x reads catalogues from the network at import: every interpreter of the tests gets them offline.
OFFLINE_SITE = str(Path(__file__).parent / "offline_site")
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [OFFLINE_SITE, os.environ.get("PYTHONPATH")]))
runpy.run_path(os.path.join(OFFLINE_SITE, "sitecustomize.py"))

from tiny import build_tiny_llama  # noqa: E402

# What each test file took (seconds, setup and teardown included): the files the CI legs share out, and the files
# marked pyserini on each leg (they run on every leg); refreshed by running each leg with --store-leg-seconds.
LEG_SECONDS = Path(__file__).with_name("leg_seconds.json")


def pytest_addoption(parser):
    parser.addoption("--leg", metavar="K/N", help="one of N CI legs: the files marked pyserini, and the K-th of N "
                     "shares of the other files, balanced by leg_seconds.json")
    parser.addoption("--store-leg-seconds", action="store_true",
                     help="write the seconds of this run's files to leg_seconds.json (those of the files marked "
                     "pyserini only with --leg, as that leg's)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end tests that start processes (Pyserini's CLIs, torchrun), "
                            "several seconds each: -m 'not slow' leaves them out")
    config.addinivalue_line("markers", "pyserini: a file whose tests go through Pyserini: it runs on every CI leg "
                            "(each Pyserini the pins allow); the other files share the legs out (--leg)")
    if config.getoption("--store-leg-seconds"):
        config.pluginmanager.register(LegSeconds())


class LegSeconds:
    """Adds up each test file's seconds as reports arrive (on the controller: every worker's), written at the end."""

    def __init__(self):
        self.seconds, self.marked = Counter(), set()

    def pytest_runtest_logreport(self, report):
        file = report.nodeid.split("::")[0]
        self.seconds[file] += report.duration
        if "pyserini" in report.keywords:
            self.marked.add(file)

    def pytest_sessionfinish(self, session):
        if hasattr(session.config, "workerinput"):
            return
        known, root, leg = leg_seconds(), session.config.rootpath, session.config.getoption("--leg")
        seconds = {f: round(s, 1) for f, s in self.seconds.items()}
        shared = {f: s for f, s in {**known["shared"], **seconds}.items() if f not in self.marked}
        if leg:
            known["marked"][leg] = {f: s for f, s in seconds.items() if f in self.marked}
        known = {"marked": {leg: dict(sorted(files.items())) for leg, files in sorted(known["marked"].items())},
                 "shared": {f: s for f, s in sorted(shared.items()) if (root / f).exists()}}  # not deleted files
        LEG_SECONDS.write_text(json.dumps(known, indent=1) + "\n")


def leg_seconds() -> dict:
    return json.loads(LEG_SECONDS.read_text()) if LEG_SECONDS.exists() else {"marked": {}, "shared": {}}


def file_seconds(leg: str | None) -> dict[str, float]:
    """Each file's seconds: the shared files', and the marked files' on this leg (without one, on any leg)."""
    known = leg_seconds()
    return {**known["shared"], **(known["marked"].get(leg) or next(iter(known["marked"].values()), {}))}


def share_out(files, legs: int, seconds: dict[str, float], start=None) -> dict[str, int]:
    """Each file's leg: the slowest first, each to the leg with the fewest seconds so far, counting from ``start``
    (what each leg spends anyway); a file ``seconds`` lacks counts as the median file."""
    typical = statistics.median(seconds.values()) if seconds else 1.0
    load, leg_of = list(start or [0.0] * legs), {}
    for file in sorted(files, key=lambda f: (-seconds.get(f, typical), f)):
        leg_of[file] = load.index(min(load))
        load[leg_of[file]] += seconds.get(file, typical)
    return leg_of


def legs_of(files, legs: int) -> dict[str, int]:
    """The files that are not marked pyserini, shared out by leg_seconds.json: the same on every leg."""
    known = leg_seconds()
    marked = [sum(known["marked"].get(f"{k + 1}/{legs}", {}).values()) for k in range(legs)]
    return share_out(files, legs, known["shared"], marked)


def pytest_collection_modifyitems(config, items):
    """The slowest files first (by leg_seconds.json): xdist (``--no-loadscope-reorder``) hands them out in this
    order, so no worker starts a long file when the other is nearly done. With --leg, only this leg's tests."""
    name = {item: item.path.relative_to(config.rootpath).as_posix() for item in items}
    seconds = file_seconds(config.getoption("--leg"))
    typical = statistics.median(seconds.values()) if seconds else 1.0
    items.sort(key=lambda item: (-seconds.get(name[item], typical), name[item]))
    if config.getoption("--leg"):
        leg, legs = (int(n) for n in config.getoption("--leg").split("/"))
        leg_of = legs_of({name[i] for i in items if not i.get_closest_marker("pyserini")}, legs)
        keep, drop = [], []
        for item in items:
            (keep if item.get_closest_marker("pyserini") or leg_of[name[item]] == leg - 1 else drop).append(item)
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def tiny_llara(tmp_path_factory) -> Path:
    """Directory of a tiny random LLaMA whose tokenizer has the LLaRA tokens, out of name order."""
    return build_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llara")


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """The same kind of model without the LLaRA tokens: an unadapted base LLM."""
    return build_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-base", with_llara_tokens=False)
