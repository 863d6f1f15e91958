#!/usr/bin/env bash
# Set-up (if needed) and the main job: LLaRA on InsuranceQA, offline, on CPU. Flags go to the pipeline (--help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${VENV:-.venv}/bin/python" examples/insuranceqa_pipeline.py "$@"
