"""The CI legs (``--leg K/N``, tests/conftest.py): the files marked pyserini run on every leg, each other file on
exactly one, so that both Pyserinis meet every door and the rest of the suite runs once."""

import re
import subprocess
import sys
from pathlib import Path

from conftest import legs_of, share_out

TESTS = Path(__file__).resolve().parent
FILES = sorted(p.name for p in TESTS.glob("test_*.py"))
MARK = re.compile(r"^pytestmark = pytest\.mark\.pyserini\b", re.M)
MARKED = {name for name in FILES if MARK.search((TESTS / name).read_text())}
# Pyserini's modules imported, or its CLIs run, by name.
USES_PYSERINI = re.compile(r"from pyserini[. ]|import pyserini\b|[\"']pyserini\.(search|encode|index|server)")
# The harness's recovery from kills is this project's code; its run through Pyserini is test_reproduce.py's.
ONE_LEG = {"test_reproduce_recovery.py"}


def test_every_file_that_uses_pyserini_runs_on_every_leg():
    uses = {name for name in FILES if USES_PYSERINI.search((TESTS / name).read_text()) and name != Path(__file__).name}
    assert uses - ONE_LEG <= MARKED
    assert {"test_doors.py", "test_plugin.py", "test_do_no_harm.py", "test_server.py"} <= MARKED


def test_the_other_files_are_shared_out_one_leg_each_by_their_seconds():
    seconds = {"a": 100.0, "b": 60.0, "c": 50.0, "d": 10.0}
    legs = share_out(seconds, 2, seconds)
    assert sorted(legs) == sorted(seconds) and set(legs.values()) == {0, 1}
    assert legs == {"a": 0, "b": 1, "c": 1, "d": 0}  # 110 s and 110 s
    assert share_out(["new", "a", "d"], 2, seconds) == {"a": 0, "new": 1, "d": 1}  # new: the median file, 55 s
    # the second leg spends 40 s more on its marked files: c goes to the first (150 s against 40 + 70 s)
    assert share_out(seconds, 2, seconds, start=[0.0, 40.0]) == {"a": 0, "b": 1, "c": 0, "d": 1}


def test_a_leg_collects_the_marked_files_and_its_share_of_the_others():
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-n0", "-p", "no:cacheprovider",
                                "--leg", "2/2"], cwd=TESTS.parent, capture_output=True, text=True, timeout=300)
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    files = {line.split("::")[0].removeprefix("tests/") for line in collected.stdout.splitlines() if "::" in line}
    skipped = set(re.findall(r"SKIPPED \[\d+\] tests/(test_\w+\.py)", collected.stdout))  # a whole file skipped here
    others = [f"tests/{name}" for name in FILES if name not in MARKED]
    second = {path.removeprefix("tests/") for path, leg in legs_of(others, 2).items() if leg == 1}
    assert files | skipped == MARKED | second
    assert second and len(second) < len(others)
