"""The reproduction matrix: every row a command line, its expected scores and a pass/fail, as Pyserini's 2CR.

``matrix.yaml`` holds the rows (``matrix``); a row becomes the exact commands it runs, the ones
``--dry-run`` prints (``plan``); they run, the scores that the ``ir_measures`` CLI prints are
compared with the expected values, and the outcome is appended to a JSONL file (``run``,
``results``); ``tables`` shows the matrix and the outcomes, ``cli`` is the command line.
Indexes are cached under the work directory by model, corpus and encoding settings
(``pyserini_llara.index --resume`` continues an interrupted build), and the queries are encoded
once per model, topics and query settings into Pyserini's encoded-queries format, which every
search over those topics reads (another index type, a re-run) without loading the model again.
Run files and exported topics are reused too, so a rerun after a failure picks up where it stopped;
each step only while its completion record (``pyserini_llara.completion``) proves it by content.

    python -m pyserini_llara.reproduce --list
    python -m pyserini_llara.reproduce --row beir/scifact/llara-beir --dry-run
    python -m pyserini_llara.reproduce --group demo
"""

from .cli import main
from .matrix import MatrixError, Measurement, Row, load_matrix, select, with_model
from .plan import Step, plan
from .results import Outcome, judge, latest_results
from .run import StepError, parse_scores, run_rows, run_steps
from .tables import list_table, outcome_table, sources

__all__ = ["MatrixError", "Measurement", "Outcome", "Row", "Step", "StepError", "judge", "latest_results",
           "list_table", "load_matrix", "main", "outcome_table", "parse_scores", "plan", "run_rows", "run_steps",
           "select", "sources", "with_model"]
