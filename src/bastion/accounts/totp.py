"""Time-based one-time passwords (TOTP, RFC 6238, built on HOTP, RFC 4226).

Pure functions: the caller supplies the clock reading and the last time step it accepted,
and stores the step that ``match`` returns, so that a code is accepted at most once
(RFC 6238 §5.2).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Any

import pyotp
import segno

# Authenticator apps widely support only these values: several ignore the "digits",
# "period" and "algorithm" URI parameters, so any other choice would silently break them.
DIGITS = 6
PERIOD = 30
ALGORITHM = "sha1"
# RFC 4226 §4 (R6) recommends a shared secret of 160 bits.
SECRET_BYTES = 20

_DIGESTS: dict[str, Callable[..., Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}
_ASCII_DIGITS = frozenset("0123456789")
_QR_TITLE = "QR code to scan with an authenticator app"


def new_secret() -> str:
    """A fresh shared secret, base32 without padding (RFC 4226 §4, Key URI format)."""
    # 20 bytes encode to exactly 32 base32 characters; the strip only matters if the size
    # ever changes, since the Key URI format asks for the secret without padding.
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii").rstrip("=")


def provisioning_uri(secret: str, account_name: str, issuer: str) -> str:
    """The ``otpauth://totp/`` URI that authenticator apps import (Google Key URI format)."""
    # The Key URI format separates issuer and account with a colon and forbids it in
    # either, so an app could otherwise show the account under the wrong issuer.
    if ":" in account_name or ":" in issuer:
        raise ValueError("neither the account name nor the issuer may contain a colon")
    totp = pyotp.TOTP(secret, digits=DIGITS, digest=_DIGESTS[ALGORITHM], interval=PERIOD)
    return totp.provisioning_uri(name=account_name, issuer_name=issuer)


def qr_svg(uri: str, *, title: str = _QR_TITLE) -> str:
    """``uri`` as a QR code, an ``<svg>`` element to embed in HTML (no XML declaration)."""
    # A regular QR code, never a Micro QR code, because authenticator apps read only the
    # former; the white background keeps it readable on a dark page.
    svg = segno.make_qr(uri).svg_inline(scale=4, title=title, light="#fff")
    # segno has no option for the role; screen readers then announce the title as an image.
    return svg.replace("<svg ", '<svg role="img" ', 1)


def current_step(now: float, period: int = PERIOD) -> int:
    """The time step T = floor((now - T0) / X) with T0 = 0 (RFC 6238 §4.2)."""
    return int(now // period)


def _code(secret: str, step: int, digits: int = DIGITS, algorithm: str = ALGORITHM) -> str:
    """The HOTP value for counter ``step`` (RFC 4226 §5.3; RFC 6238 §1.2 for SHA-2)."""
    return pyotp.HOTP(secret, digits=digits, digest=_DIGESTS[algorithm]).at(step)


def _clean(code: str) -> str | None:
    """``code`` without spaces if it is exactly DIGITS ASCII digits, else None."""
    # The length test comes first so an oversized input costs nothing further; apps show
    # codes as "123 456", so spaces typed or pasted with the digits are dropped.
    if len(code) > 4 * DIGITS:
        return None
    compact = code.replace(" ", "")
    # str.isdigit would accept other scripts' digits ("١٢٣٤٥٦"), which no app produces.
    if len(compact) != DIGITS or not _ASCII_DIGITS.issuperset(compact):
        return None
    return compact


def match(
    secret: str, code: str, now: float, last_used_step: int | None, window: int = 1
) -> int | None:
    """The time step whose code equals ``code``, or None.

    Steps within ``window`` of the current one are tried, to allow for clock drift and
    transmission delay (RFC 6238 §5.2, §6). A step at or before ``last_used_step`` is never
    accepted: "the verifier MUST NOT accept the second attempt of the same OTP" (§5.2), and
    accepting an older step after a newer one would reopen that replay.
    """
    if window < 0:
        raise ValueError("window must not be negative")
    candidate = _clean(code)
    if candidate is None:
        return None
    now_step = current_step(now)
    matched: int | None = None
    # Every eligible step is compared, with a constant-time comparison, so the response
    # time does not tell which step (if any) was close. Should two steps share a code, the
    # later one is returned: recording it as last used blocks the most replays.
    for step in range(now_step - window, now_step + window + 1):
        if step < 0 or (last_used_step is not None and step <= last_used_step):
            continue
        if hmac.compare_digest(_code(secret, step), candidate):
            matched = step
    return matched
