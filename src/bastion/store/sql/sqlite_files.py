"""The SQLite database file and its companions, private to the user Bastion runs as.

The database holds password hashes and sealed keys, so it is created 0600 in a data
directory created 0700. The file is created before SQLite opens it rather than by
changing the umask around the connection: the umask belongs to the whole process (other
threads create files meanwhile, and the driver opens connections on a thread of its
own), whereas SQLite gives the ``-wal``, ``-shm`` and ``-journal`` files it creates the
database file's own mode, so one file created right keeps them all private.

An existing file or directory is never changed: its owner may have a reason, and
``bastion check`` warns when either is readable by anyone else.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from sqlalchemy.engine import make_url

from bastion.errors import ConfigProblem

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700
COMPANIONS = ("-wal", "-shm", "-journal")


def database_path(url: str) -> Path | None:
    """The file of an SQLite URL; None for PostgreSQL or an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def create_private_database(path: Path) -> None:
    """The data directory (0700) and an empty database file (0600), unless they exist."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=DIRECTORY_MODE)
    # An empty file is an empty SQLite database; an existing file is kept as it is.
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))


def permission_warnings(url: str) -> list[ConfigProblem]:
    """The database file, its companions and its directory, where others may read them.

    A directory that does not hold the database yet is not judged: the file Bastion
    creates there is private whatever the directory's mode.
    """
    path = database_path(url)
    if path is None or not path.exists():
        return []
    found: list[ConfigProblem] = []
    for candidate, wanted in (
        (path.parent, DIRECTORY_MODE),
        (path, FILE_MODE),
        *((Path(f"{path}{suffix}"), FILE_MODE) for suffix in COMPANIONS),
    ):
        try:
            mode = stat.S_IMODE(candidate.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            found.append(
                ConfigProblem(
                    "database.url",
                    f"{candidate} has mode {mode:04o}: others on this machine can read "
                    "password hashes and sealed keys; run `chmod "
                    f"{wanted:o} {candidate}`",
                )
            )
    return found
