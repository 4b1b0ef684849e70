"""Running a program with its output on a pseudo-terminal, as a person at a screen sees it."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios
from collections.abc import Mapping
from typing import Literal


def in_terminal(
    argv: list[str],
    *,
    env: Mapping[str, str] | None = None,
    columns: int = 80,
    stream: Literal["stdout", "stderr"] = "stdout",
) -> str:
    """What ``argv`` shows on a terminal ``columns`` wide; the other stream is discarded.

    Fails unless the program exits 0. Line ends are LF again (the terminal writes CR LF).
    """
    main, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    process = subprocess.Popen(
        argv,
        env=None if env is None else {**env, "TERM": "xterm"},
        stdin=subprocess.DEVNULL,
        stdout=secondary if stream == "stdout" else subprocess.DEVNULL,
        stderr=secondary if stream == "stderr" else subprocess.DEVNULL,
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the terminal closes when the process ends
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert process.wait(timeout=60) == 0
    return b"".join(chunks).decode().replace("\r\n", "\n")
