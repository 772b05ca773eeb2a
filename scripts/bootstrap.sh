#!/usr/bin/env bash
# Idempotent set-up used by `make demo` and `make test`: a .venv pinned by requirements.lock, the
# package itself (editable) and FFmpeg's shared libraries (torchcodec decodes `datasets` audio with them).
# A no-op when nothing changed: the stamp file names the hash of the lock and of pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV=.venv

ensure_ffmpeg() {
    if ldconfig -p 2>/dev/null | grep -q 'libavcodec\.so'; then
        return 0
    fi
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
        echo "bootstrap: installing FFmpeg's libraries (apt package 'ffmpeg')"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
    else
        echo "bootstrap: FFmpeg's shared libraries (libavcodec) are missing." >&2
        echo "  Install them, e.g. 'sudo apt-get install ffmpeg' (Debian/Ubuntu) or 'brew install ffmpeg', then re-run." >&2
        exit 1
    fi
}

ensure_venv() {
    "$PYTHON" - <<'PY' || { echo "bootstrap: Python >= 3.11 is required (set PYTHON=...)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
    local want
    want="$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
    if [ -f "$VENV/.bootstrap-stamp" ] && [ "$(cat "$VENV/.bootstrap-stamp")" = "$want" ]; then
        return 0
    fi
    echo "bootstrap: installing the pinned environment into $VENV (first run takes a few minutes)"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    # The lock pins every package; torch is pinned so pip never pulls a newer multi-GB build.
    "$VENV/bin/python" -m pip install -q -r requirements.lock
    "$VENV/bin/python" -m pip install -q --no-deps --config-settings editable_mode=compat -e .
    echo "$want" > "$VENV/.bootstrap-stamp"
}

# `--test` also brings Debian's headless Chromium and its driver, which the Space's browser test drives.
ensure_chromium() {
    if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
        return 0
    fi
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
        echo "bootstrap: installing Chromium and ChromeDriver for the browser test (apt packages 'chromium chromium-driver')"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
    else
        echo "bootstrap: the browser test needs Chromium: install 'chromium' and 'chromium-driver' (the test is skipped without them)" >&2
    fi
}

ensure_ffmpeg
ensure_venv
if [ "${1:-}" = "--test" ]; then
    ensure_chromium
fi
