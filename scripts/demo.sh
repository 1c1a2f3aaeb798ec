#!/usr/bin/env bash
# One command from a fresh clone to a running demo: sets up .venv, then `medtrack demo`.
# Extra arguments go to `medtrack demo` (e.g. --duration 60 --port 8080).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/medtrack demo "$@"
