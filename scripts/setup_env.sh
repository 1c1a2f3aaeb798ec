#!/usr/bin/env bash
# Create/refresh the project's virtual environment (.venv) and fetch the face detector models.
# Usage: scripts/setup_env.sh [EXTRAS]   e.g. scripts/setup_env.sh test,train,mqtt
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if [ -n "$extras" ]; then
    .venv/bin/python -m pip install -q -e ".[$extras]"
else
    .venv/bin/python -m pip install -q -e .
fi
.venv/bin/python scripts/fetch_face_detector.py
