"""Requests per second of Bastion's HTTP shell under uvicorn and granian.

The baseline is a bare ASGI app (one fixed response, no middleware) under uvicorn,
measured in the same run. Load comes from ``wrk`` on loopback (Debian package ``wrk``).
Each server gets one worker; wrk gets the other core.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bastion.config import encode_master_key

DURATION = os.environ.get("BENCH_SECONDS", "5")
CONNECTIONS = os.environ.get("BENCH_CONNECTIONS", "64")


@contextmanager
def running(command: list[str], env: dict[str, str], url: str) -> Iterator[None]:
    process = subprocess.Popen(
        command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {command}") from None
                time.sleep(0.1)
        yield
    finally:
        process.terminate()
        process.wait(timeout=15)


def wrk(url: str) -> float:
    output = subprocess.run(
        [shutil.which("wrk") or "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{DURATION}s", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    return float(match.group(1))


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: `apt-get install wrk` (make bench installs it)")
    work = Path(tempfile.mkdtemp(prefix="bastion-bench-"))
    (work / "bastion.toml").write_text('data_dir = "data"\n')
    env = {
        "BASTION_CONFIG": str(work / "bastion.toml"),
        "BASTION_MASTER_KEY": encode_master_key(secrets.token_bytes(32)),
    }
    subprocess.run(
        [sys.executable, "-m", "bastion", "db", "upgrade"],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    port = "18765"
    url = f"http://127.0.0.1:{port}/healthz"
    python = [sys.executable, "-m"]
    quiet = ["--log-level", "warning"]
    cases = [
        (
            "bare ASGI app, uvicorn (baseline)",
            [*python, "uvicorn", "bench.bare_app:app", "--port", port, *quiet, "--no-access-log"],
        ),
        (
            "bastion, uvicorn",
            [
                *python,
                "uvicorn",
                "bastion.wiring:create_app",
                "--factory",
                "--port",
                port,
                *quiet,
                "--no-access-log",
                "--no-server-header",
            ],
        ),
    ]
    if importlib.util.find_spec("granian") is not None:
        cases += [
            (
                "bare ASGI app, granian",
                [
                    *python,
                    "granian",
                    "--interface",
                    "asgi",
                    "--port",
                    port,
                    "--log-level",
                    "warning",
                    "bench.bare_app:app",
                ],
            ),
            (
                "bastion, granian",
                [
                    *python,
                    "granian",
                    "--interface",
                    "asgi",
                    "--factory",
                    "--port",
                    port,
                    "--log-level",
                    "warning",
                    "bastion.wiring:create_app",
                ],
            ),
        ]
    else:
        print("(granian rows skipped: `pip install granian`)")
    results: list[tuple[str, float]] = []
    for name, command in cases:
        with running(command, env, url):
            wrk(url)  # warm-up
            results.append((name, wrk(url)))
    baseline = results[0][1]
    print(f"wrk -t1 -c{CONNECTIONS} -d{DURATION}s GET /healthz, one server worker")
    print(f"{'server':<38} {'req/s':>10} {'vs baseline':>12}")
    for name, rps in results:
        print(f"{name:<38} {rps:>10,.0f} {rps / baseline:>12.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
