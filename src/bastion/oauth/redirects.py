"""Redirect URI rules for native apps (RFC 8252 §7, §8) and exact matching (RFC 9700 §4.1.3).

Registration accepts three kinds, and nothing else:

* loopback: ``http://127.0.0.1[:port]/path`` or ``http://[::1][:port]/path``; at request
  time any port is accepted, since the app picks a free one (RFC 8252 §7.3). The name
  ``localhost`` is refused: it can resolve elsewhere (RFC 8252 §8.3).
* claimed ``https`` URIs (universal links / app links, RFC 8252 §7.2);
* private-use schemes in reverse-domain form, such as ``com.example.app:/cb``
  (RFC 8252 §7.1), which must contain a period so they cannot collide with real schemes.

Matching is exact string comparison; only the loopback port may differ.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import SplitResult, urlsplit

from bastion.errors import RedirectUriError

MAX_LENGTH = 2048
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "[::1]"})
# Schemes that execute or read locally; also refused when they happen to contain a period.
FORBIDDEN_SCHEMES = frozenset(
    {
        "javascript",
        "data",
        "file",
        "vbscript",
        "about",
        "blob",
        "filesystem",
        "view-source",
        "jar",
        "ftp",
        "ws",
        "wss",
    }
)
_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*")
_SAFE = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces or controls


def _host_of(parts: SplitResult) -> str:
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if netloc.startswith("["):
        return netloc[: netloc.find("]") + 1]
    return netloc.split(":", 1)[0]


def validate(uri: str) -> str:
    """Return ``uri`` if it may be registered, else raise ``RedirectUriError``."""
    if not uri or len(uri) > MAX_LENGTH or not _SAFE.fullmatch(uri):
        raise RedirectUriError("must be a non-empty printable ASCII URI of at most 2048 characters")
    if "*" in uri:
        raise RedirectUriError("wildcards are not allowed; register each URI exactly")
    if "#" in uri:
        raise RedirectUriError("must not contain a fragment (RFC 6749 §3.1.2)")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise RedirectUriError("is not a valid URI") from exc
    scheme = parts.scheme
    if not scheme or not _SCHEME.fullmatch(scheme) or uri[: len(scheme)] != scheme:
        raise RedirectUriError("must be absolute, with a lower-case scheme")
    if scheme in FORBIDDEN_SCHEMES:
        raise RedirectUriError(f"the {scheme}: scheme is not allowed")
    if "@" in parts.netloc:
        raise RedirectUriError("must not contain userinfo")
    if (
        re.search(r"%2e|%2f|%5c|\\", uri, re.IGNORECASE)
        or "/../" in parts.path + "/"
        or parts.path.endswith("/..")
    ):
        raise RedirectUriError("must not contain encoded or relative path segments")
    host = _host_of(parts)
    if scheme == "http":
        # The whole authority must be the literal (and a port): "[::1]evil.com" is not.
        if host not in LOOPBACK_HOSTS or _without_port(uri) is None:
            raise RedirectUriError(
                "http: is only allowed for the loopback IP literals 127.0.0.1 and [::1] "
                "(RFC 8252 §7.3, §8.3)"
            )
        return uri
    if scheme == "https":
        if not host:
            raise RedirectUriError("https URIs need a host")
        return uri
    if "." not in scheme:
        raise RedirectUriError(
            "private-use schemes must be in reverse-domain form, e.g. com.example.app "
            "(RFC 8252 §7.1)"
        )
    return uri


# The loopback authority with an optional port; the rest of the URI is compared as text.
_LOOPBACK = re.compile(r"(http://(?:127\.0\.0\.1|\[::1\]))(?::(\d{1,5}))?(?=[/?]|$)")


def _without_port(uri: str) -> str | None:
    match = _LOOPBACK.match(uri)
    if match is None or (match.group(2) is not None and not 0 < int(match.group(2)) < 65536):
        return None
    return match.group(1) + uri[match.end() :]


def is_loopback(uri: str) -> bool:
    return _without_port(uri) is not None


def matches(registered: Iterable[str], presented: str) -> bool:
    """Exact string match, except that a loopback URI may use any port (RFC 8252 §7.3).

    No normalisation of any kind (case, percent-encoding, trailing slash, dot segments):
    RFC 9700 §4.1.3 requires exact matching because every normalisation has been a bypass.
    """
    candidates = tuple(registered)
    if presented in candidates:
        return True
    wanted = _without_port(presented)
    return wanted is not None and any(_without_port(uri) == wanted for uri in candidates)
