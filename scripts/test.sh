#!/usr/bin/env bash
# One command from a fresh clone to the full test suite.
# As root it installs the Debian packages the integration tests use (mosquitto broker, chromium
# browser, espeak-ng, shellcheck, systemd-analyze); as another user those tests skip if absent.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
apt_pkgs=(mosquitto chromium chromium-driver espeak-ng shellcheck systemd)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ -z "${MEDTRACK_NO_APT:-}" ]; then
    missing=()
    for p in "${apt_pkgs[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi
bash scripts/setup_env.sh test,train,mqtt
mkdir -p artifacts
.venv/bin/ruff check edge scripts tests
exec .venv/bin/python -m pytest -ra "$@"
