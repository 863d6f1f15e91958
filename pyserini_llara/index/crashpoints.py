"""Named points of a build or a merge, where the crash-recovery tests kill the process as a crash would.

Callers look ``reached`` up on this module at every call, so a test can replace it.
"""

from __future__ import annotations

import os

# Set to a stage name (e.g. build:chunk), the process exits there at once (os._exit: no cleanup runs).
CRASH_ENV = "PYSERINI_LLARA_CRASH_AT"


def reached(stage: str) -> None:
    if os.environ.get(CRASH_ENV) == stage:
        os._exit(137)
