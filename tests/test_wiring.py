"""The composition root's own decisions: the development master key."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bastion import wiring
from bastion.config import DEV_MASTER_KEY_FILENAME, load_settings
from tests.conftest import write_config


def test_concurrent_starts_agree_on_one_development_key(tmp_path: Path) -> None:
    """Several workers starting at once must not each make (or half-read) a key file."""
    settings = load_settings(write_config(tmp_path), {})
    with ThreadPoolExecutor(max_workers=16) as pool:
        keys = list(pool.map(lambda _: wiring.master_key(settings), range(64)))
    assert len(set(keys)) == 1
    files = [p.name for p in (tmp_path / "data").iterdir()]
    assert files == [DEV_MASTER_KEY_FILENAME], "no temporary files are left behind"
