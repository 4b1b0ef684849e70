"""bootstrap.sh: it waits for another package manager instead of failing, and says what it
is doing during the install."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.terminal import in_terminal

BOOTSTRAP = Path(__file__).resolve().parents[1] / "bootstrap.sh"


def bash(script: str, path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``script`` run with bootstrap.sh's functions, and ``path`` first on PATH."""
    return subprocess.run(
        ["bash", "-c", f'source "{BOOTSTRAP}"; {script}'],
        env={**os.environ, "PATH": f"{path}:{os.environ['PATH']}", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def fake(directory: Path, name: str, body: str) -> None:
    script = directory / name
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)


def test_the_script_parses() -> None:
    assert subprocess.run(["bash", "-n", str(BOOTSTRAP)], check=False).returncode == 0


def test_every_apt_get_waits_for_the_lock() -> None:
    """An install with apt-get's defaults fails at once while unattended-upgrades runs."""
    calls = [
        line.strip()
        for line in BOOTSTRAP.read_text().splitlines()
        if "apt-get" in line and not line.strip().startswith("#")
    ]
    assert calls, "the script installs system packages with apt-get"
    for call in calls:
        assert "DPkg::Lock::Timeout" in call or re.search(r"apt-get -qq update", call), call
    updates = [call for call in calls if "update" in call]
    assert updates == ["until output=$(as_root apt-get -qq update 2>&1); do"], (
        "apt-get update goes through apt_update, which retries on the lists lock"
    )


@pytest.mark.skipif(os.getuid() != 0, reason="as_root would go through sudo, which resets PATH")
def test_apt_update_retries_while_another_apt_holds_the_lock(tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    fake(
        tmp_path,
        "apt-get",
        f'echo x >> "{attempts}"\n'
        f'[ "$(wc -l < "{attempts}")" -ge 3 ] && exit 0\n'
        'echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 1 (apt)"\n'
        "exit 100",
    )
    fake(tmp_path, "sleep", "exit 0")
    done = bash("apt_update", tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(attempts.read_text().splitlines()) == 3
    assert done.stderr.count("holds the apt lock; waiting") == 1, done.stderr


@pytest.mark.skipif(os.getuid() != 0, reason="as_root would go through sudo, which resets PATH")
def test_apt_update_gives_up_after_the_timeout_and_on_other_errors(tmp_path: Path) -> None:
    fake(tmp_path, "apt-get", 'echo "E: Could not get lock /var/lib/apt/lists/lock"; exit 100')
    fake(tmp_path, "sleep", "exit 0")
    waited = bash("SECONDS=0; apt_update", tmp_path, APT_LOCK_TIMEOUT="0")
    assert waited.returncode == 1
    assert "Could not get lock" in waited.stderr
    fake(tmp_path, "apt-get", 'echo "E: The repository is not signed."; exit 100')
    broken = bash("apt_update", tmp_path)
    assert broken.returncode == 1
    assert "not signed" in broken.stderr
    assert "waiting" not in broken.stderr, "only a held lock is waited for"


@pytest.mark.skipif(os.getuid() != 0, reason="as_root would go through sudo, which resets PATH")
def test_apt_install_says_what_it_installs_and_passes_the_lock_timeout(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    fake(tmp_path, "apt-get", f'echo "$*" >> "{calls}"')
    done = bash("apt_install chromium", tmp_path, APT_LOCK_TIMEOUT="42")
    assert done.returncode == 0, done.stderr
    assert done.stderr == "bootstrap: installing chromium with apt\n"
    assert calls.read_text().splitlines() == [
        "-qq update",
        "-o DPkg::Lock::Timeout=42 install -y -qq chromium",
    ]


def test_the_install_says_each_step_and_keeps_pips_lines_out_of_a_log(tmp_path: Path) -> None:
    """About a minute of silence looked like a hang; each phase now has its line."""
    calls = tmp_path / "calls"
    fake(
        tmp_path,
        "python",
        'if [ "$2" = venv ]; then mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; exit 0; fi\n'
        f'[ "$2" = pip ] || exit 0\necho "$*" >> "{calls}"\n'
        # pip -q prints nothing; the main install, without -q, a line per package.
        'case "$*" in *-q*) ;; *) printf "Collecting a\\nCollecting b\\n" ;; esac',
    )
    venv = tmp_path / "venv"
    done = subprocess.run(
        ["bash", "-c", f'source "{BOOTSTRAP}"; install'],
        cwd=BOOTSTRAP.parent,
        env={**os.environ, "PYTHON": str(tmp_path / "python"), "VENV": str(venv)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    steps = done.stderr.splitlines()
    assert steps[:3] == [
        f"bootstrap: creating the virtual environment {venv}",
        "bootstrap: upgrading pip",
        steps[2],
    ]
    assert re.fullmatch(
        r"bootstrap: installing Bastion and its dependencies \(\d+ pinned in constraints.txt; .*\)",
        steps[2],
    )
    assert re.fullmatch(r"bootstrap: installed in \d+ s", steps[3])
    assert len(steps) == 4, "pip's lines are counted on a terminal, dropped in a log"
    assert done.stdout == ""
    assert "-c constraints.txt -e .[dev]" in calls.read_text()
    assert (venv / ".installed").exists()


def test_on_a_terminal_pips_lines_become_a_counter() -> None:
    script = f'source "{BOOTSTRAP}"; printf "Collecting a\\nx\\nCollecting b\\n" | pip_progress'
    shown = in_terminal(["bash", "-c", script], stream="stderr")
    assert shown == "\r  packages collected: 1\r  packages collected: 2\n"
