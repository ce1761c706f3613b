#!/usr/bin/env bash
# tagweigh quick start. Needs only Python >= 3.10 (and Node >= 18 for the MicroPython VM tests).
#   ./dev.sh demo [args]   set up .venv and run the simulator demo (no hardware needed)
#   ./dev.sh test [args]   set up .venv, the MicroPython VM (npm) and test services, then run pytest
#   ./dev.sh setup         only set up .venv
set -euo pipefail
cd "$(dirname "$0")"
VENV=${TAGWEIGH_VENV:-.venv}

setup_python() {
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q --upgrade pip
    fi
    "$VENV/bin/pip" install -q -e ".[dev]"
}

setup_node() {
    if command -v npm >/dev/null 2>&1; then
        npm ci --silent --no-audit --no-fund
    else
        echo "dev.sh: npm not found: MicroPython VM tests will be skipped (they run when CI=true)" >&2
    fi
}

# System packages some tests use for real: a Mosquitto broker, Graphviz (wiring diagram) and
# headless Chromium (operator page tests, driven by Playwright with this binary).
# Installed only when running as root (CI, a fresh container); otherwise those tests skip.
setup_system() {
    local want=()
    command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || want+=(mosquitto)
    command -v dot >/dev/null 2>&1 || want+=(graphviz)
    command -v chromium >/dev/null 2>&1 || want+=(chromium)
    [ ${#want[@]} -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
    else
        echo "dev.sh: not root, not installing ${want[*]}: tests that need them will skip" >&2
    fi
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    demo)  setup_python; exec "$VENV/bin/tagweigh" demo "$@" ;;
    test)  setup_python; setup_node; setup_system; exec "$VENV/bin/python" -m pytest -n 2 "$@" ;;
    setup) setup_python ;;
    *) echo "usage: ./dev.sh demo|test|setup [args]" >&2; exit 2 ;;
esac
