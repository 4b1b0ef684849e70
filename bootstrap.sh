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
# Seconds to wait for another package manager (unattended-upgrades on a fresh machine).
APT_LOCK_TIMEOUT=${APT_LOCK_TIMEOUT:-600}

step() { echo "bootstrap: $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "bootstrap: need root to run: $*" >&2; exit 1; fi
}

apt_update() {
  # DPkg::Lock::Timeout covers dpkg's lock only: apt-get update (apt 2.6) fails at once on
  # the lists lock, so it is retried while another apt holds that lock.
  local deadline=$((SECONDS + APT_LOCK_TIMEOUT)) output said=""
  until output=$(as_root apt-get -qq update 2>&1); do
    if [[ $output != *"Could not get lock"* ]] || ((SECONDS >= deadline)); then
      printf '%s\n' "$output" >&2
      return 1
    fi
    [ -n "$said" ] || step "another package manager holds the apt lock; waiting up to ${APT_LOCK_TIMEOUT}s"
    said=yes
    sleep 5
  done
}

apt_install() {
  step "installing $* with apt"
  apt_update
  as_root apt-get -o DPkg::Lock::Timeout="$APT_LOCK_TIMEOUT" install -y -qq "$@"
}

pip_progress() {
  # pip's own "Collecting" lines, counted on one line of a terminal: a sign of life during
  # the long install. Elsewhere (CI, a log) they are dropped; the step lines remain.
  if [ -t 2 ]; then
    awk '/^Collecting /{n++; printf "\r  packages collected: %d", n > "/dev/stderr"; fflush("/dev/stderr")}
         END{if (n) printf "\n" > "/dev/stderr"}'
  else
    cat >/dev/null
  fi
}

ensure_python() {
  if ! "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
    echo "bootstrap: Python 3.11 or newer is required as '$PYTHON'" >&2; exit 1
  fi
  # Debian splits venv and ensurepip out of the interpreter package.
  if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    apt_install python3-venv
  fi
}

install() {
  ensure_python
  local stamp="$VENV/.installed"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$LOCK" -nt "$stamp" ]; then
    local started=$SECONDS pinned
    pinned=$(grep -c '^[A-Za-z0-9]' "$LOCK")
    if [ ! -x "$VENV/bin/python" ]; then
      step "creating the virtual environment $VENV"
      "$PYTHON" -m venv "$VENV"
    fi
    step "upgrading pip"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    step "installing Bastion and its dependencies ($pinned pinned in $LOCK; about a minute the first time)"
    # Unbuffered, so that pip's lines reach the counter as they are written.
    PYTHONUNBUFFERED=1 "$VENV/bin/python" -m pip install --progress-bar off -c "$LOCK" -e '.[dev]' |
      pip_progress
    touch "$stamp"
    step "installed in $((SECONDS - started)) s"
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
    if (apt_install chromium); then :; else
      echo "bootstrap: could not install chromium; the browser tests will skip (fail in CI)" >&2
    fi
  fi
}

ensure_axe() {
  # The page tests inject axe-core (npm) into Chromium; the lock file pins its version.
  local axe=tests/e2e/axe
  [ -f "$axe/node_modules/axe-core/axe.min.js" ] && return 0
  if ! command -v npm >/dev/null; then
    if (apt_install nodejs npm); then :; else
      echo "bootstrap: could not install npm; the accessibility tests will skip (fail in CI)" >&2
      return 0
    fi
  fi
  step "installing axe-core for the accessibility tests"
  npm ci --prefix "$axe" --no-audit --no-fund --loglevel=error
}

# Sourced (tests/test_bootstrap.py): the functions only.
if [[ ${BASH_SOURCE[0]} != "$0" ]]; then return 0; fi

case "${1:-}" in
  install) install ;;
  lock) shift; lock "$@" ;;
  demo) install; shift; exec "$VENV/bin/bastion" demo "$@" ;;
  test)
    install
    ensure_chromium
    ensure_axe
    step "checking lint, formatting and types"
    "$VENV/bin/ruff" check src tests bench examples
    "$VENV/bin/ruff" format --check src tests bench examples
    "$VENV/bin/mypy"
    shift
    step "running the tests (about nine and a half minutes on two cores)"
    exec "$VENV/bin/pytest" "$@"
    ;;
  *) echo "usage: $0 demo|test|install|lock" >&2; exit 2 ;;
esac
