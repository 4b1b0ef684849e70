#!/usr/bin/env bash
# One entry point for a fresh Debian machine with Python 3.11:
#   ./bootstrap.sh demo   install everything, run Bastion on the embedded default
#   ./bootstrap.sh test   install everything, run lint, type checks and the test suite
#   ./bootstrap.sh lock   refresh constraints.txt from pyproject.toml (needs PyPI)
#
# Installs take exact versions from constraints.txt (the lock file) while the ranges stay
# in pyproject.toml, so the tests and the demo run on the versions the suite passed on.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
LOCK=constraints.txt

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "bootstrap: need root to run: $*" >&2; exit 1; fi
}

ensure_python() {
  if ! "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
    echo "bootstrap: Python 3.11 or newer is required as '$PYTHON'" >&2; exit 1
  fi
  # Debian splits venv and ensurepip out of the interpreter package.
  if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    as_root apt-get update -qq
    as_root apt-get install -y -qq python3-venv
  fi
}

install() {
  ensure_python
  local stamp="$VENV/.installed"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$LOCK" -nt "$stamp" ]; then
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -c "$LOCK" -e '.[dev]'
    touch "$stamp"
  fi
}

lock() {
  # uv resolves for every platform and Python >= 3.11 at once (markers in the file) and
  # keeps existing pins unless asked: pass --upgrade, or --upgrade-package NAME.
  ensure_python
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q 'uv>=0.9,<1'
  "$VENV/bin/uv" pip compile pyproject.toml --all-extras --universal --python-version 3.11 \
    --custom-compile-command './bootstrap.sh lock' --quiet --output-file "$LOCK" "$@"
}

ensure_chromium() {
  # The browser tests drive the system Chromium; browsers are never downloaded.
  if [ ! -x /usr/bin/chromium ]; then
    # A subshell, so a missing sudo does not end the whole script.
    if (as_root apt-get update -qq && as_root apt-get install -y -qq chromium); then :; else
      echo "bootstrap: could not install chromium; the browser tests will skip (fail in CI)" >&2
    fi
  fi
}

ensure_axe() {
  # The page tests inject axe-core (npm) into Chromium; the lock file pins its version.
  local axe=tests/e2e/axe
  [ -f "$axe/node_modules/axe-core/axe.min.js" ] && return 0
  if ! command -v npm >/dev/null; then
    if (as_root apt-get update -qq && as_root apt-get install -y -qq nodejs npm); then :; else
      echo "bootstrap: could not install npm; the accessibility tests will skip (fail in CI)" >&2
      return 0
    fi
  fi
  npm ci --prefix "$axe" --no-audit --no-fund --loglevel=error
}

case "${1:-}" in
  install) install ;;
  lock) shift; lock "$@" ;;
  demo) install; shift; exec "$VENV/bin/bastion" demo "$@" ;;
  test)
    install
    ensure_chromium
    ensure_axe
    "$VENV/bin/ruff" check src tests bench examples
    "$VENV/bin/ruff" format --check src tests bench examples
    "$VENV/bin/mypy"
    shift
    exec "$VENV/bin/pytest" "$@"
    ;;
  *) echo "usage: $0 demo|test|install|lock" >&2; exit 2 ;;
esac
