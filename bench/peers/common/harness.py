"""What the peer benchmarks record about the Bastion they run (standard library only)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def checkout_commit(repo: Path) -> str:
    """Short commit of the checkout, with ``-dirty`` when its tracked files differ from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "?"
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += "-dirty"
    return commit


def bastion_python(bastion_bin: str) -> str | None:
    """The interpreter that runs ``bastion_bin``: BASTION_PYTHON, else the ``python`` beside
    it (a venv's console script), else its ``#!`` line; None for a shell wrapper."""
    if os.environ.get("BASTION_PYTHON"):
        return os.environ["BASTION_PYTHON"]
    beside = Path(bastion_bin).parent / "python"
    if beside.exists():
        return str(beside)
    try:
        with open(bastion_bin, "rb") as f:
            first = f.readline().decode(errors="replace").strip()
    except OSError:
        return None
    if first.startswith("#!") and "python" in first:
        return first[2:].split()[0]
    return None


def bastion_versions(bastion_bin: str, repo: Path) -> list[str]:
    """Lines for a report: the binary, the checkout's commit, Bastion's own versions."""
    lines = [
        f"bastion: {bastion_bin}",
        f"checkout commit: {checkout_commit(repo)}",
        subprocess.run(
            [bastion_bin, "--version"], capture_output=True, text=True, check=False
        ).stdout.strip(),
    ]
    python = bastion_python(bastion_bin)
    if python:
        packages = [
            "uvicorn",
            "uvloop",
            "httptools",
            "starlette",
            "joserfc",
            "cryptography",
            "aiohttp",
            "orjson",
            "pydantic",
            "SQLAlchemy",
            "aiosqlite",
            "asyncpg",
            "redis",
        ]
        code = (
            "import sys; from importlib.metadata import version as v\n"
            "print('python', sys.version.split()[0])\n"
            f"for p in {packages!r}:\n"
            "    try: print(p + '==' + v(p))\n"
            "    except Exception: pass\n"
        )
        lines.append(
            subprocess.run(
                [python, "-c", code], capture_output=True, text=True, check=False
            ).stdout.strip()
        )
    return lines
