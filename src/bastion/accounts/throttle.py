"""Login throttling against online guessing (NIST SP 800-63B §5.2.2; OWASP ASVS V2.2.1).

Four rules, each a counter in the hot store:

* account: after ``account_free_failures`` failures an account is delayed, doubling from
  ``account_base_delay`` up to ``account_max_delay``. The delay is never a lockout: it
  ends at most ``account_max_delay`` after the last failure, and the count itself is
  forgotten ``account_window`` after the last failure. Browsers holding a device cookie
  from an earlier successful sign-in skip this rule (OWASP "device cookies"), so an
  attacker who keeps an account delayed does not keep its owner out.
* ip: a source with ``ip_failures`` failures in its window is refused.
* spray: a source that failed against ``spray_accounts_per_ip`` distinct accounts in its
  window is refused, and ``login.stuffing_suspected`` is emitted once.
* global: ``global_failures`` failures in a window refuse every untrusted browser, which
  bounds the total guess rate of an attacker who controls many sources and accounts.

Many sources failing against one account emit ``login.distributed_attack_suspected``.

Usernames are keyed by the SHA-256 of their NFKC-casefolded form, so the store never
holds them in clear, spelling variants share one counter, and a username that does not
exist is throttled exactly like one that does: this class never looks users up. IPv6
sources are grouped by /64, the block one subscriber usually gets, so rotating
addresses inside it gains nothing.

Windowed counters use fixed windows aligned to the injected clock, so a burst around a
window boundary may reach twice a limit; the account counter slides instead, because it
must last ``account_window`` after the *last* failure.

Errors from the hot store, ``StoreUnavailable`` included, propagate: the caller refuses
the login (fails closed) rather than let guesses through unthrottled.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import unicodedata
from dataclasses import dataclass, fields
from typing import Literal, Protocol

from bastion.audit.events import AuditEvent, Outcome
from bastion.clock import Clock
from bastion.store.protocols import HotStore

Reason = Literal["account", "ip", "global", "spray"]

THROTTLED = "login.throttled"
STUFFING_SUSPECTED = "login.stuffing_suspected"
DISTRIBUTED_ATTACK_SUSPECTED = "login.distributed_attack_suspected"

# Enough of the username hash to tell accounts apart in the audit log.
_ACCOUNT_PREFIX = 16


class AuditEmitter(Protocol):
    def emit(self, event: AuditEvent) -> None: ...


@dataclass(frozen=True)
class ThrottleLimits:
    account_free_failures: int = 5
    account_base_delay: float = 1.0
    account_max_delay: float = 300.0
    account_window: float = 900.0
    ip_failures: int = 50
    ip_window: float = 900.0
    global_failures: int = 1000
    global_window: float = 60.0
    spray_accounts_per_ip: int = 10
    stuffing_ips_per_account: int = 10

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            integral = f.type == "int"  # Annotations are strings under __future__.
            kind = "integer" if integral else "number"
            typed = isinstance(value, int) if integral else isinstance(value, int | float)
            if isinstance(value, bool) or not typed or not (_finite(value) and value > 0):
                raise ValueError(f"{f.name} must be a positive finite {kind}")
        if self.account_base_delay > self.account_max_delay:
            raise ValueError("account_base_delay must not exceed account_max_delay")
        # If the delay could outlast the failure count, the count would expire while the
        # account is still delayed and the attacker would get the free failures again.
        if self.account_max_delay > self.account_window:
            raise ValueError("account_max_delay must not exceed account_window")


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # An int too large for a float.
        return False


def account_delay(failures: int, limits: ThrottleLimits) -> float:
    """Seconds an account waits after ``failures`` consecutive failures.

    Zero below the free count, then ``base * 2**(failures - free)`` capped at the maximum.
    The cap is tested on logarithms so that huge counts cannot overflow a float.
    """
    exponent = failures - limits.account_free_failures
    if exponent < 0:
        return 0.0
    base, cap = limits.account_base_delay, limits.account_max_delay
    if exponent >= math.log2(cap) - math.log2(base):
        return cap
    return min(cap, math.ldexp(base, exponent))


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: Reason | None
    retry_after: float


ALLOWED = Verdict(True, None, 0.0)


def account_id(username: str) -> str:
    """The store's name for a username: never the username itself."""
    folded = unicodedata.normalize("NFKC", username).casefold()
    # surrogatepass: a malformed form field must be throttled, not crash the login page.
    return hashlib.sha256(folded.encode("utf-8", "surrogatepass")).hexdigest()


def source_id(ip: str) -> str:
    """The store's name for a client address: IPv4 as is, IPv6 by its /64."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip  # Not an address (a test client, a Unix socket): still one source.
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _window(now: float, length: float) -> tuple[int, float]:
    """The index of the fixed window holding ``now``, and the seconds until it ends."""
    index = math.floor(now / length)
    return index, max(0.0, (index + 1) * length - now)


class LoginThrottle:
    """Call ``check`` before verifying a password, then ``failure`` or ``success``."""

    def __init__(
        self, hot: HotStore, clock: Clock, limits: ThrottleLimits, audit: AuditEmitter
    ) -> None:
        self._hot = hot
        self._clock = clock
        self._limits = limits
        self._audit = audit

    async def _count(self, key: str) -> int:
        value = await self._hot.get(key)
        return 0 if value is None else int(value)

    def _keys(self, now: float, account: str, source: str) -> dict[str, str]:
        # Sources go last in each key: IPv6 networks contain colons.
        ip_window, _ = _window(now, self._limits.ip_window)
        global_window, _ = _window(now, self._limits.global_window)
        return {
            "failures": f"login:acct:{account}:failures",
            "lock": f"login:acct:{account}:lock",
            "sources": f"login:acct:{account}:sources:{ip_window}",
            "ip": f"login:ip:{ip_window}:{source}",
            "accounts": f"login:spray:{ip_window}:{source}",
            "pair": f"login:pair:{ip_window}:{account}:{source}",
            "global": f"login:global:{global_window}",
        }

    async def failures(self, username: str) -> int:
        """The account's consecutive failed sign-ins still remembered (the risk engine's
        ``failed_sign_ins`` signal); a success forgets them."""
        return await self._count(f"login:acct:{account_id(username)}:failures")

    async def check(self, username: str, ip: str, device_trusted: bool) -> Verdict:
        limits, now = self._limits, self._clock.now()
        account = account_id(username)
        keys = self._keys(now, account, source_id(ip))
        _, ip_left = _window(now, limits.ip_window)
        if await self._count(keys["ip"]) >= limits.ip_failures:
            return self._refuse("ip", ip, account, ip_left)
        if await self._count(keys["accounts"]) >= limits.spray_accounts_per_ip:
            return self._refuse("spray", ip, account, ip_left)
        if device_trusted:
            return ALLOWED
        if await self._count(keys["global"]) >= limits.global_failures:
            return self._refuse("global", ip, account, _window(now, limits.global_window)[1])
        remaining = await self._hot.ttl(keys["lock"])
        if remaining is not None:
            return self._refuse("account", ip, account, remaining)
        # Claim the lock now for the delay this attempt would earn if it fails, so that
        # concurrent requests cannot all pass this check before the first failure lands:
        # otherwise parallelism would multiply the guesses allowed per delay.
        upcoming = account_delay(await self._count(keys["failures"]) + 1, limits)
        if upcoming > 0 and not await self._hot.set_if_absent(keys["lock"], b"1", upcoming):
            remaining = await self._hot.ttl(keys["lock"])
            return self._refuse(
                "account", ip, account, upcoming if remaining is None else remaining
            )
        return ALLOWED

    async def failure(self, username: str, ip: str) -> None:
        limits = self._limits
        account = account_id(username)
        keys = self._keys(self._clock.now(), account, source_id(ip))
        # The account first: its lock is what stops the next guess soonest.
        count = await self._hot.incr(keys["failures"], ttl=limits.account_window)
        if count > 1:
            # incr keeps the creation TTL; restart the window from this failure. If another
            # failure changed the count meanwhile, that one refreshes the window instead.
            value = str(count).encode()
            await self._hot.compare_and_set(keys["failures"], value, value, limits.account_window)
        delay = account_delay(count, limits)
        if delay > 0:
            await self._hot.set(keys["lock"], b"1", ttl=delay)
        await self._hot.incr(keys["ip"], ttl=limits.ip_window)
        await self._hot.incr(keys["global"], ttl=limits.global_window)
        if not await self._hot.set_if_absent(keys["pair"], b"1", ttl=limits.ip_window):
            return  # This source already failed against this account in this window.
        # Each new pair adds exactly one, so each event fires once per window.
        accounts = await self._hot.incr(keys["accounts"], ttl=limits.ip_window)
        if accounts == limits.spray_accounts_per_ip:
            self._emit(STUFFING_SUSPECTED, ip=ip, accounts=accounts)
        sources = await self._hot.incr(keys["sources"], ttl=limits.ip_window)
        if sources == limits.stuffing_ips_per_account:
            self._emit(
                DISTRIBUTED_ATTACK_SUSPECTED, account=account[:_ACCOUNT_PREFIX], sources=sources
            )

    async def success(self, username: str, ip: str) -> None:
        """Forget the account's failures; the source's and global counts stay, so that an
        attacker who signs in to an account of their own cannot launder their failures."""
        keys = self._keys(self._clock.now(), account_id(username), source_id(ip))
        await self._hot.delete(keys["failures"])
        await self._hot.delete(keys["lock"])

    def _refuse(self, reason: Reason, ip: str, account: str, retry_after: float) -> Verdict:
        self._emit(
            THROTTLED,
            reason=reason,
            ip=ip,
            account=account[:_ACCOUNT_PREFIX],
            retry_after=math.ceil(retry_after),
        )
        return Verdict(False, reason, retry_after)

    def _emit(self, action: str, **details: object) -> None:
        self._audit.emit(AuditEvent(action, Outcome.DENIED, actor="browser", details=details))
