#!/usr/bin/env bash
# Set-up (if needed), the lint step (ruff, configured in pyproject.toml) and the whole offline test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m ruff check .
exec .venv/bin/python -m pytest "$@"
