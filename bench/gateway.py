"""HTTP load through Bastion's gateway against a bare proxy and the upstream, in one run.

Targets, each a separate server process with one worker, all on 127.0.0.1:

- the upstream directly (bench.upstream_app; it must be far faster than any proxy);
- a bare reverse proxy with no checks (bench.bare_proxy): the baseline;
- Bastion's full pipeline on ``GET /api/users/{user_id}/items``: bearer token
  (signature cached, denylist consulted), scope, BOLA ``param_claims`` (user_id = sub),
  response allowlist (drops ``secret``), token-exchange credential for the upstream;
- Bastion on a public route (no caller: routing, middleware and the proxy call only),
  which splits the pipeline's cost from the shell's;
- the full pipeline with a DPoP-bound token (RFC 9449): a fresh proof on every request,
  made beforehand (one per request, fed to wrk by a Lua script), so the row shows what
  checking a proof costs beside the bearer row, against one ES256 verification timed in
  the same run. Needs wrk; the proofs' window is widened to 5 minutes so a run never
  outlives them.

Each target gets a saturating run (``BENCH_CONNECTIONS``, throughput and its p50/p99)
and a one-connection run (per-request latency without queueing; under saturation
Little's law makes p50 ≈ connections / throughput, so it repeats the throughput ratio).
Load comes from ``wrk --latency`` when installed, else from a bounded Python load
generator in this process (much slower; it then caps the fast targets).

The servers that serve the bare proxy and Bastion come from ``BENCH_SERVERS`` (comma
separated, default ``serve,uvicorn,granian``; ``all`` adds ``uvicorn-h11``):

- ``serve``: ``bastion serve`` as shipped (uvicorn, httptools, uvloop, access log on
  through the redacting filter); the bare proxy gets the same ``uvicorn.run`` keywords;
- ``uvicorn``: the uvicorn CLI with httptools and uvloop, access log off;
- ``uvicorn-h11``: the same with the pure-Python h11 parser;
- ``granian``: granian's ASGI interface, uvloop, one runtime thread, access log off.

With two or more CPUs (and ``taskset``), the proxy under test is pinned to CPU 1 and
the load generator and the upstream share CPU 0, so the proxy has a core to itself; ``BENCH_PIN=0``
turns pinning off. Run: ``.venv/bin/python -m bench.gateway``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric import ec

from bastion.config import encode_master_key
from bastion.crypto import jws
from bastion.oauth.clients import hash_secret
from bastion.oauth.dpop import access_token_hash
from bench import upstream_app

SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
# Another checkout's src directory, measured beside this one (e.g. the commit before).
COMPARE_SRC = os.environ.get("BENCH_COMPARE_SRC", "")
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
WARMUP_SECONDS = 2
SERVERS = os.environ.get("BENCH_SERVERS", "serve,uvicorn,granian")
PIN = os.environ.get("BENCH_PIN", "1") != "0"
LOADGEN = os.environ.get("BENCH_LOADGEN", "wrk")  # "python" forces the fallback

UPSTREAM_PORT = 18771
PROXY_PORT = 18772
BASTION_PORT = 18773
CLIENT_ID = "bench-app"
CLIENT_SECRET = "bench-secret-" + secrets.token_urlsafe(32)
AUDIENCE = "https://api.bench"
SCOPE = "items:read"
FULL_PATH = f"/api/users/{CLIENT_ID}/items"
GUARDED_PATH = f"/api/guarded/users/{CLIENT_ID}/items"
PUBLIC_PATH = "/api/public/items"
UPSTREAM_PATH = f"/users/{CLIENT_ID}/items"
UPSTREAM_BODY = json.loads(upstream_app.BODY)
SHAPED = [{"id": 1, "title": "first"}, {"id": 2, "title": "second"}]

CONFIG = """\
environment = "development"
issuer = "http://127.0.0.1:@BASTION_PORT@"
data_dir = "@DATA_DIR@"

[server]
host = "127.0.0.1"
port = @BASTION_PORT@

[oauth]
access_token_lifetime = "1h"
# Proofs are made before each load run, so they must stay fresh for the run's length.
dpop = { proof_max_age = "5m" }

[[oauth.clients]]
client_id = "@CLIENT_ID@"
name = "bench.gateway load generator"
type = "confidential"
grant_types = ["client_credentials"]
scopes = ["@SCOPE@"]
resources = ["@AUDIENCE@"]
secret_sha256 = "@SECRET_SHA256@"

[gateway]
prefix = "/api"
audience = "@AUDIENCE@"

# credential defaults to token_exchange: a 60-second internal token per subject, cached.
[[gateway.upstreams]]
name = "items"
url = "http://127.0.0.1:@UPSTREAM_PORT@"

[[gateway.routes]]
name = "my-items"
methods = ["GET"]
path = "/users/{user_id}/items"
upstream = "items"
auth = "bastion"
scopes = ["@SCOPE@"]
objects = { param_claims = { user_id = "sub" } }
response = { allow = ["/*/id", "/*/title"] }

# The same route with the guards on: a per-user and a per-address rate limit (quotas
# far above the load, so every request is admitted and each pays for two decisions).
[[gateway.routes]]
name = "my-items-guarded"
methods = ["GET"]
path = "/guarded/users/{user_id}/items"
upstream_path = "/users/{user_id}/items"
upstream = "items"
auth = "bastion"
scopes = ["@SCOPE@"]
objects = { param_claims = { user_id = "sub" } }
response = { allow = ["/*/id", "/*/title"] }
limits = [
  { name = "per-user", by = ["user"], rate = 1000000000, window = "1s" },
  { name = "per-ip", by = ["ip"], rate = 1000000000, window = "1s", visible = false },
]

[[gateway.routes]]
name = "public-items"
methods = ["GET"]
path = "/public/items"
upstream_path = "/users/public/items"
upstream = "items"
auth = "public"
"""


@dataclass(frozen=True)
class Load:
    rps: float
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class Row:
    name: str
    saturated: Load
    single: Load


# --- processes -------------------------------------------------------------------------


def pinning() -> bool:
    return PIN and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def pinned(command: list[str], cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu), *command] if pinning() else command


@contextmanager
def running(
    command: list[str], env: dict[str, str], url: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A server subprocess, answered once before yielding, terminated after.

    Its output goes to a file, as a deployed server's would (access logs included).
    """
    with log.open("ab") as output:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"server did not start: {command}\n{tail}") from None
                time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def server_command(server: str, app: str, port: int, *, factory: bool = False) -> list[str]:
    python = [sys.executable, "-m"]
    where = ["--host", "127.0.0.1", "--port", str(port)]
    if server == "serve":
        if app == "bench.bare_proxy:app":
            return [*python, "bench.bare_proxy", *where]
        return [*python, "bastion", "serve", *where]
    if server in ("uvicorn", "uvicorn-h11"):
        http = "h11" if server == "uvicorn-h11" else "httptools"
        return [
            *python,
            "uvicorn",
            app,
            *(["--factory"] if factory else []),
            *where,
            "--http",
            http,
            "--loop",
            "uvloop",
            "--lifespan",
            "on",
            "--timeout-keep-alive",
            "5",
            "--no-access-log",
            "--no-server-header",
            "--log-level",
            "warning",
        ]
    if server == "granian":
        return [
            *python,
            "granian",
            "--interface",
            "asgi",
            *(["--factory"] if factory else []),
            *where,
            "--workers",
            "1",
            "--runtime-threads",
            "1",
            "--loop",
            "uvloop",
            "--no-ws",
            "--log-level",
            "warning",
            app,
        ]
    raise ValueError(f"unknown server {server!r}")


def upstream_command() -> list[str]:
    # The fastest server available, so that the upstream is never the bottleneck.
    if importlib.util.find_spec("granian") is not None:
        return server_command("granian", "bench.upstream_app:app", UPSTREAM_PORT)
    return server_command("uvicorn", "bench.upstream_app:app", UPSTREAM_PORT)


# --- load ------------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise RuntimeError(f"unexpected wrk duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> Load:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if rps is None or p50 is None or p99 is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    if "Non-2xx or 3xx responses" in output:
        raise RuntimeError(f"refused or failed requests under load:\n{output}")
    return Load(float(rps.group(1)), _duration_ms(p50.group(1)), _duration_ms(p99.group(1)))


def wrk(url: str, headers: Sequence[str], connections: int, seconds: int) -> Load:
    command = [shutil.which("wrk") or "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    command += ["--latency", *(a for h in headers for a in ("-H", h)), url]
    output = subprocess.run(
        pinned(command, 0), capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    return parse_wrk(output)


async def _python_load(url: str, headers: Sequence[str], connections: int, seconds: int) -> Load:
    fields = dict(h.split(": ", 1) for h in headers)
    latencies: list[float] = []
    failures = 0
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, headers=fields) as session:
        start = time.perf_counter()
        deadline = start + seconds

        async def worker() -> None:
            nonlocal failures
            while (began := time.perf_counter()) < deadline:
                async with session.get(url) as response:
                    await response.read()
                    failures += response.status >= 400
                latencies.append(time.perf_counter() - began)

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - start
    if failures or not latencies:
        raise RuntimeError(f"{failures} failed requests under load on {url}")
    cuts = statistics.quantiles(latencies, n=100)
    return Load(len(latencies) / elapsed, cuts[49] * 1000, cuts[98] * 1000)


def uses_wrk() -> bool:
    return LOADGEN == "wrk" and shutil.which("wrk") is not None


def load(url: str, headers: Sequence[str], connections: int, seconds: int) -> Load:
    if uses_wrk():
        return wrk(url, headers, connections, seconds)
    if not pinning():
        return asyncio.run(_python_load(url, headers, connections, seconds))
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})  # where wrk would run
    try:
        return asyncio.run(_python_load(url, headers, connections, seconds))
    finally:
        os.sched_setaffinity(0, cpus)


def measure(name: str, url: str, headers: Sequence[str] = ()) -> Row:
    load(url, headers, CONNECTIONS, WARMUP_SECONDS)
    saturated = load(url, headers, CONNECTIONS, SECONDS)
    single = load(url, headers, 1, SECONDS)
    print(
        f"  {name}: {saturated.rps:,.0f} req/s, p50 {saturated.p50_ms:.2f} ms;"
        f" one connection p50 {single.p50_ms:.3f} ms",
        flush=True,
    )
    return Row(name, saturated, single)


# --- checks ----------------------------------------------------------------------------


class ProofMaker:
    """A device key and the DPoP proofs it signs (RFC 9449 §4.2), for the DPoP row."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        numbers = self.key.public_key().public_numbers()
        jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": jws.b64url(numbers.x.to_bytes(32, "big")),
            "y": jws.b64url(numbers.y.to_bytes(32, "big")),
        }
        self.header = jws.b64url(orjson.dumps({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}))

    def proof(self, htm: str, htu: str, access_token: str | None = None) -> str:
        claims = {"jti": secrets.token_urlsafe(16), "htm": htm, "htu": htu, "iat": int(time.time())}
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        return jws.sign_compact(self.header, claims, self.key, "ES256")


# Hands each request the next proof of a file (one per line): proofs are single use.
WRK_PROOFS = """\
local proofs, token, i = {}, nil, 0
function init(args)
  token = args[2]
  for line in io.lines(args[1]) do proofs[#proofs + 1] = line end
end
function request()
  i = i + 1
  return wrk.format(nil, nil, {["Authorization"] = "DPoP " .. token, ["DPoP"] = proofs[i]})
end
"""


def write_proofs(work: Path, maker: ProofMaker, url: str, token: str, count: int) -> Path:
    """A file of ``count`` fresh proofs for GET ``url`` with ``token``, one per line."""
    path = work / "proofs"
    path.write_text("\n".join(maker.proof("GET", url, token) for _ in range(count)) + "\n")
    return path


def scripted_wrk(
    work: Path, script: str, url: str, args: Sequence[str], connections: int, seconds: int
) -> str:
    """wrk's output for a run driven by a Lua ``script`` given ``args``, pinned like every
    load here."""
    (work / "script.lua").write_text(script)
    command = [shutil.which("wrk") or "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    command += ["--latency", "-s", str(work / "script.lua"), url, "--", *args]
    return subprocess.run(
        pinned(command, 0), capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout


def dpop_load(url: str, token: str, maker: ProofMaker, connections: int, seconds: int) -> Load:
    """wrk with a new proof per request; more proofs than any run here can use (a
    missing one would be a 401, which fails the run)."""
    work = Path(tempfile.mkdtemp(prefix="bastion-bench-dpop-"))
    try:
        count = (20_000 if connections > 1 else 5_000) * seconds
        proofs = write_proofs(work, maker, url, token, count)
        args = [str(proofs), token]
        return parse_wrk(scripted_wrk(work, WRK_PROOFS, url, args, connections, seconds))
    finally:
        shutil.rmtree(work, ignore_errors=True)


# The paced comparison: both routes at the same offered rate, well below either one's
# saturation, so that neither gets the other's batching (a saturated event loop serves
# several requests per wake-up and per system call, so CPU per request falls with load
# and a slower route would look dearer than it is). Each connection waits this long
# between requests: at most ~1,500 req/s over 32 connections.
PACED_DELAY_MS = 20
PACED_ROUNDS = 3
WRK_PACED = """\
local proofs, scheme, token, i = {}, nil, nil, 0
function init(args)
  scheme, token = args[1], args[2]
  if args[3] then for line in io.lines(args[3]) do proofs[#proofs + 1] = line end end
end
function delay() return @DELAY@ end
function request()
  i = i + 1
  return wrk.format(nil, nil, {["Authorization"] = scheme .. " " .. token, ["DPoP"] = proofs[i]})
end
""".replace("@DELAY@", str(PACED_DELAY_MS))


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def paced_cost(pid: int, url: str, token: str, maker: ProofMaker | None) -> float:
    """The server's CPU per request, in µs, at the paced rate; DPoP when ``maker``."""
    work = Path(tempfile.mkdtemp(prefix="bastion-bench-paced-"))
    try:
        args = ["Bearer", token]
        if maker is not None:
            rate = CONNECTIONS * 1000 // PACED_DELAY_MS
            proofs = write_proofs(work, maker, url, token, rate * SECONDS)
            args = ["DPoP", token, str(proofs)]
        began = cpu_seconds(pid)
        output = scripted_wrk(work, WRK_PACED, url, args, CONNECTIONS, SECONDS)
        used = cpu_seconds(pid) - began
        if "Non-2xx" in output:
            raise RuntimeError(f"paced run answered errors:\n{output}")
        found = re.search(r"(\d+) requests in", output)
        if found is None:
            raise RuntimeError(f"unexpected wrk output:\n{output}")
        return used / int(found.group(1)) * 1e6
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclass(frozen=True)
class PacedCosts:
    bearer_us: float  # medians of PACED_ROUNDS alternating rounds
    dpop_us: float


def paced_costs(pid: int, url: str, bearer: str, bound: str, maker: ProofMaker) -> PacedCosts:
    costs: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(PACED_ROUNDS):
        costs[False].append(paced_cost(pid, url, bearer, None))
        costs[True].append(paced_cost(pid, url, bound, maker))
    return PacedCosts(statistics.median(costs[False]), statistics.median(costs[True]))


def measure_dpop(name: str, url: str, token: str, maker: ProofMaker) -> Row:
    dpop_load(url, token, maker, CONNECTIONS, WARMUP_SECONDS)
    saturated = dpop_load(url, token, maker, CONNECTIONS, SECONDS)
    single = dpop_load(url, token, maker, 1, SECONDS)
    print(
        f"  {name}: {saturated.rps:,.0f} req/s, p50 {saturated.p50_ms:.2f} ms;"
        f" one connection p50 {single.p50_ms:.3f} ms",
        flush=True,
    )
    return Row(name, saturated, single)


def es256_verify_us() -> float:
    """One ES256 verification with ``cryptography``, in microseconds (this process)."""
    maker = ProofMaker()
    compact = jws.parse_compact(maker.proof("GET", "https://bench.invalid/x"))
    key = jws.public_key(compact.header["jwk"])
    rounds = 2_000
    began = time.process_time()
    for _ in range(rounds):
        assert jws.signed_by(key, "ES256", compact.signing_input, compact.signature)
    return (time.process_time() - began) / rounds * 1e6


def access_token(base: str, maker: ProofMaker | None = None) -> str:
    """A client-credentials token; bound to ``maker``'s key when given (RFC 9449 §5)."""
    headers = {} if maker is None else {"DPoP": maker.proof("POST", f"{base}/token")}
    response = httpx.post(
        f"{base}/token",
        auth=(CLIENT_ID, CLIENT_SECRET),
        data={"grant_type": "client_credentials", "scope": SCOPE, "resource": AUDIENCE},
        headers=headers,
        timeout=10,
    )
    response.raise_for_status()
    token = response.json()["access_token"]
    assert isinstance(token, str)
    return token


def expect(url: str, headers: Sequence[str], body: object) -> None:
    fields = dict(h.split(": ", 1) for h in headers)
    response = httpx.get(url, headers=fields, timeout=5)
    if response.status_code != 200 or response.json() != body:
        raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")


# --- report ----------------------------------------------------------------------------


def report(
    rows: Sequence[Row],
    baselines: dict[str, Row],
    verify_us: float,
    paced: dict[str, PacedCosts],
) -> None:
    print()
    print(
        ("wrk -t1 --latency" if uses_wrk() else "Python load generator (aiohttp)")
        + f", {CONNECTIONS} connections and 1 connection, {SECONDS}s each;"
        " one server worker; loopback"
        + (" (proxy on CPU 1; load generator and upstream on CPU 0)" if pinning() else "")
    )
    head = f"{'target':<46} {'req/s':>8} {'p50':>7} {'p99':>7} {'vs bare':>8} {'p50 +ms':>8}"
    print(f"{head} | {'c1 p50':>7} {'c1 p99':>7} {'c1 +ms':>7}")
    for row in rows:
        s, c = row.saturated, row.single
        bare = next((b for key, b in baselines.items() if row.name.endswith(f"({key})")), None)
        if bare is None:
            ratio = added = single_added = "-"
        else:
            ratio = f"{s.rps / bare.saturated.rps:.2f}"
            added = f"{s.p50_ms - bare.saturated.p50_ms:+.2f}"
            single_added = f"{c.p50_ms - bare.single.p50_ms:+.3f}"
        print(
            f"{row.name:<46} {s.rps:>8,.0f} {s.p50_ms:>7.2f} {s.p99_ms:>7.2f} {ratio:>8}"
            f" {added:>8} | {c.p50_ms:>7.3f} {c.p99_ms:>7.3f} {single_added:>7}"
        )
    print("(latencies in ms; 'c1' = one connection, no queueing)")
    for server, bare in baselines.items():
        full = next(r for r in rows if r.name == f"bastion full pipeline ({server})")
        kept = full.saturated.rps / bare.saturated.rps
        single = full.single.p50_ms - bare.single.p50_ms
        loaded = full.saturated.p50_ms - bare.saturated.p50_ms
        print(
            f"target under {server}: throughput {kept:.2f} of the bare proxy"
            f" ({'met' if kept >= 0.7 else 'MISSED'}: >= 0.70);"
            f" p50 added {single:.3f} ms on one connection"
            f" ({'met' if single < 1.0 else 'MISSED'}: < 1 ms),"
            f" {loaded:.2f} ms at {CONNECTIONS} connections"
        )
        dpop = next((r for r in rows if r.name == f"bastion full pipeline, DPoP ({server})"), None)
        if dpop is not None:
            extra_us = 1e6 / dpop.saturated.rps - 1e6 / full.saturated.rps
            other_us = extra_us - verify_us
            print(
                f"DPoP under {server}: {dpop.saturated.rps / full.saturated.rps:.2f} of the bearer"
                f" route; {extra_us:.0f} µs more per request on the gateway's core, of which one"
                f" ES256 verification is {verify_us:.0f} µs: other {other_us:.0f} µs"
                f" ({'met' if other_us <= 30 else 'MISSED'}: <= 30 µs)"
            )
        cost = paced.get(f"bastion full pipeline, DPoP ({server})")
        if cost is not None:
            extra_us = cost.dpop_us - cost.bearer_us
            print(
                f"DPoP under {server}, both routes paced at the same rate"
                f" (<= {CONNECTIONS * 1000 // PACED_DELAY_MS:,} req/s), server CPU per request:"
                f" bearer {cost.bearer_us:.0f} µs, DPoP {cost.dpop_us:.0f} µs, extra"
                f" {extra_us:.0f} µs = one ES256 verification ({verify_us:.0f} µs alone)"
                f" + {extra_us - verify_us:.0f} µs"
            )


def main() -> None:
    servers = [s.strip() for s in SERVERS.split(",") if s.strip()]
    if servers == ["all"]:
        servers = ["serve", "uvicorn", "uvicorn-h11", "granian"]
    if "granian" in servers and importlib.util.find_spec("granian") is None:
        print("(granian rows skipped: `pip install granian`)")
        servers.remove("granian")
    if LOADGEN == "wrk" and shutil.which("wrk") is None:
        print("(wrk missing, using the Python load generator: `apt-get install wrk`)")
    work = Path(tempfile.mkdtemp(prefix="bastion-bench-gateway-"))
    try:
        run(work, servers)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, servers: Sequence[str]) -> None:
    config = CONFIG
    for key, value in {
        "BASTION_PORT": str(BASTION_PORT),
        "UPSTREAM_PORT": str(UPSTREAM_PORT),
        "DATA_DIR": str(work / "data"),
        "CLIENT_ID": CLIENT_ID,
        "SCOPE": SCOPE,
        "AUDIENCE": AUDIENCE,
        "SECRET_SHA256": hash_secret(CLIENT_SECRET),
    }.items():
        config = config.replace(f"@{key}@", value)
    (work / "bastion.toml").write_text(config)
    env = {
        "BASTION_CONFIG": str(work / "bastion.toml"),
        "BASTION_MASTER_KEY": encode_master_key(secrets.token_bytes(32)),
        "BENCH_UPSTREAM_URL": f"http://127.0.0.1:{UPSTREAM_PORT}",
    }
    migrated = subprocess.run(
        [sys.executable, "-m", "bastion", "db", "upgrade"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    if migrated.returncode != 0:
        raise RuntimeError(f"bastion db upgrade failed:\n{migrated.stdout}{migrated.stderr}")
    logs = work / "servers.log"
    upstream = f"http://127.0.0.1:{UPSTREAM_PORT}"
    proxy = f"http://127.0.0.1:{PROXY_PORT}"
    bastion = f"http://127.0.0.1:{BASTION_PORT}"
    rows: list[Row] = []
    baselines: dict[str, Row] = {}
    paced: dict[str, PacedCosts] = {}
    with running(pinned(upstream_command(), 0), env, upstream + UPSTREAM_PATH, logs):
        rows.append(measure("upstream directly", upstream + UPSTREAM_PATH))
        for server in servers:
            command = server_command(server, "bench.bare_proxy:app", PROXY_PORT)
            with running(pinned(command, 1), env, proxy + UPSTREAM_PATH, logs):
                expect(proxy + UPSTREAM_PATH, (), UPSTREAM_BODY)
                row = measure(f"bare proxy ({server})", proxy + UPSTREAM_PATH)
                rows.append(row)
                baselines[server] = row
            command = server_command(
                server, "bastion.wiring:create_app", BASTION_PORT, factory=True
            )
            for label, extra in variants():
                where = {**env, **extra}
                with running(pinned(command, 1), where, bastion + "/healthz", logs) as process:
                    plain = access_token(bastion)
                    bearer = [f"Authorization: Bearer {plain}"]
                    for name, path, headers, body in (
                        ("full pipeline", FULL_PATH, bearer, SHAPED),
                        ("full + 2 limits", GUARDED_PATH, bearer, SHAPED),
                        ("public route", PUBLIC_PATH, (), UPSTREAM_BODY),
                    ):
                        expect(bastion + path, headers, body)
                        title = f"bastion{label} {name} ({server})"
                        rows.append(measure(title, bastion + path, headers))
                    if uses_wrk():
                        maker = ProofMaker()
                        bound = access_token(bastion, maker)
                        url = bastion + FULL_PATH
                        check = [
                            f"Authorization: DPoP {bound}",
                            f"DPoP: {maker.proof('GET', url, bound)}",
                        ]
                        expect(url, check, SHAPED)
                        title = f"bastion{label} full pipeline, DPoP ({server})"
                        rows.append(measure_dpop(title, url, bound, maker))
                        if pinning():
                            paced[title] = paced_costs(process.pid, url, plain, bound, maker)
    report(rows, baselines, es256_verify_us(), paced)


def variants() -> list[tuple[str, dict[str, str]]]:
    """This checkout, and another one's ``src`` when ``BENCH_COMPARE_SRC`` names it (a
    before/after comparison in one run: same machine, same minute, same baseline)."""
    found: list[tuple[str, dict[str, str]]] = [("", {})]
    if COMPARE_SRC:
        found.append((" [compare]", {"PYTHONPATH": COMPARE_SRC}))
    return found


if __name__ == "__main__":
    main()
