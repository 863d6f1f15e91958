#!/usr/bin/env bash
# Set-up (if needed), the lint step (ruff, configured in pyproject.toml) and the whole offline test suite,
# in the venv of scripts/setup.sh (PYTHON and VENV as there). Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV=${VENV:-.venv}
"$VENV/bin/python" -m ruff check .
exec "$VENV/bin/python" -m pytest "$@"
