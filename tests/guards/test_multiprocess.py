"""Several server processes sharing Redis admit the configured number of requests.

Three ``bastion serve`` processes, one PostgreSQL and one Redis; a route with one
global limit of 20 per hour (burst 20). Sixty requests spread over the three are
answered with exactly 20 admissions: the refill over the few seconds the test takes is
20/3600 per second, so the stated tolerance is +1 at most.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import httpx

from tests.conftest import write_config
from tests.support.recorder import Recorder
from tests.support.server import bastion, serving_together
from tests.support.services import free_port, unique_name
from tests.support.upstream import serve_in_thread

CONFIG = """
[hot_state]
key_prefix = "{prefix}:"
[[gateway.upstreams]]
name = "api"
url = "{url}"
[[gateway.routes]]
methods = ["GET"]
path = "/feed"
upstream = "api"
auth = "public"
limits = [{{ name = "global", by = ["global"], rate = 20, window = "1h" }}]
"""


def test_three_processes_admit_the_configured_number(
    tmp_path: Path, postgres_url: str, redis_url: str, master_key_b64: str
) -> None:
    recorder = Recorder()
    env = {
        "BASTION_MASTER_KEY": master_key_b64,
        "BASTION_CONFIG": "",
        "BASTION_DATABASE_URL": postgres_url.replace("+asyncpg", ""),
        "BASTION_REDIS_URL": redis_url,
    }
    with serve_in_thread(recorder) as url:
        config = write_config(tmp_path, CONFIG.format(url=url, prefix=unique_name("mp")))
        assert bastion(["db", "upgrade", "-c", str(config)], env).returncode == 0
        ports = [free_port() for _ in range(3)]
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        servers = [
            (["-c", str(config), "--port", str(port)], base)
            for port, base in zip(ports, bases, strict=True)
        ]
        # The first creates the signing key (an empty key ring is filled by the first
        # server to start); the other two then start side by side.
        with serving_together(servers[:1], env), serving_together(servers[1:], env):
            statuses = [
                httpx.get(f"{base}/api/feed", timeout=10).status_code
                for base, _ in zip(itertools.cycle(bases), range(60), strict=False)
            ]
    admitted = statuses.count(200)
    assert 20 <= admitted <= 21, statuses
    assert statuses.count(429) == 60 - admitted
    assert recorder.count(b"/feed") == admitted
    # Every process admitted some: the counter is shared, not split.
    assert all(200 in statuses[i::3] for i in range(3))
