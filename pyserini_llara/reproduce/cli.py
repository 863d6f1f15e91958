"""``python -m pyserini_llara.reproduce``: list, dry-run or run rows of the matrix."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .matrix import MatrixError, load_matrix, select, with_model
from .plan import plan
from .results import RESULTS_FILE, latest_results
from .run import run_rows
from .tables import list_table, outcome_table

DEFAULT_WORK_DIR = "reproduction"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pyserini_llara.reproduce",
        description="Run rows of the reproduction matrix: build or reuse the index, search with Pyserini's CLI, "
                    "score with ir_measures, and compare with the expected values (pass/fail).",
        epilog="A row is unverified until a run measures it; every run appends its outcome to --results. "
               "Exit status: 0 when every row passed or had nothing to compare with, 1 otherwise.")
    parser.add_argument("--list", action="store_true",
                        help="show the matrix (or the rows of --row / --group): expected and measured values, status")
    parser.add_argument("--row", action="append", default=[], metavar="ID", help="run this row (repeatable)")
    parser.add_argument("--group", action="append", default=[], metavar="NAME",
                        help="run every row of this group, e.g. beir, msmarco-passage, demo, gpu (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands the rows run, run nothing")
    parser.add_argument("--markdown", action="store_true", help="with --list: a Markdown table, as in README.md")
    parser.add_argument("--model", help="run the LLaRA rows with this model instead (e.g. a recipe's output "
                                        "directory); they are then measured, not judged")
    parser.add_argument("--matrix", help="a matrix YAML file of your own (default: the one in the package)")
    parser.add_argument("--work-dir", default=DEFAULT_WORK_DIR,
                        help=f"indexes, topics, runs and results (default ./{DEFAULT_WORK_DIR})")
    parser.add_argument("--results", help=f"JSONL file the outcomes are appended to (default WORK_DIR/{RESULTS_FILE})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not (args.list or args.row or args.group):
        parser.error("give --list, --row ID or --group NAME")
    work = Path(args.work_dir)
    results = Path(args.results) if args.results else work / RESULTS_FILE
    try:
        rows = load_matrix(args.matrix)
        if args.list:
            shown = select(rows, args.row, args.group) if args.row or args.group else rows.values()
            print(list_table(shown, latest_results(results), markdown=args.markdown))
            return 0
        chosen = select(rows, args.row, args.group)
        if args.model:
            chosen = [with_model(row, args.model) for row in chosen]
        if args.dry_run:
            for row in chosen:
                print(f"# {row.id}" + (f": the mean of {', '.join(row.parts)}" if row.kind == "mean" else ""))
                for step in plan(row, work):
                    print(step)
            return 0
        outcomes = run_rows(chosen, work, results, log=lambda line: print(line, flush=True))
    except MatrixError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to continue (finished steps are kept)", file=sys.stderr)
        return 130
    print("\n" + outcome_table(outcomes))
    print(f"\noutcomes appended to {results}")
    return 0 if all(o.status in ("pass", "measured") for o in outcomes) else 1

