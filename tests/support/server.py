"""Run ``bastion serve`` as a real process and wait for it to answer."""

from __future__ import annotations

import datetime
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

BASTION = [sys.executable, "-m", "bastion"]
START_TIMEOUT = 30.0


def bastion(
    args: list[str], env: dict[str, str], timeout: float = 60, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BASTION, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        input=stdin,
    )


@contextmanager
def serving(
    args: list[str], env: dict[str, str], url: str, *, verify: bool | ssl.SSLContext = True
) -> Iterator[subprocess.Popen[str]]:
    with serving_together([(args, url)], env, verify=verify) as (process,):
        yield process


@contextmanager
def serving_together(
    servers: list[tuple[list[str], str]],
    env: dict[str, str],
    *,
    verify: bool | ssl.SSLContext = True,
) -> Iterator[list[subprocess.Popen[str]]]:
    """``bastion serve`` with each ``(args, url)``, all started at once so that their
    start-ups overlap; each is waited for until it answers at its url, and all are stopped
    together."""
    processes: list[subprocess.Popen[str]] = []
    try:
        for args, _ in servers:
            processes.append(
                subprocess.Popen(
                    [*BASTION, "serve", *args],
                    env={**os.environ, **env},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        deadline = time.monotonic() + START_TIMEOUT
        for process, (_, url) in zip(processes, servers, strict=True):
            _wait_until_serving(process, url, verify, deadline)
        yield processes
    finally:
        interrupt(*processes)


def _wait_until_serving(
    process: subprocess.Popen[str], url: str, verify: bool | ssl.SSLContext, deadline: float
) -> None:
    while True:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"server exited with {process.returncode}:\n{output}")
        try:
            httpx.get(f"{url}/healthz", verify=verify, timeout=1)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def interrupt(*processes: subprocess.Popen[Any]) -> None:
    """Ctrl-C, as a person stops a server; killed if it has not stopped 15 s later. Several
    processes are interrupted at once and stop side by side."""
    for process in processes:
        process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 15
    for process in processes:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
