"""The ``[keys]`` table (the signing key ring) and the master key that seals it.

The master key itself is a secret from the environment (``bastion.env_secrets``); what
is here is its format, shared by the loader, ``bastion keys`` and the development key
file.
"""

from __future__ import annotations

import base64
import binascii
from typing import Literal

from pydantic import model_validator

from bastion.configtypes import Duration, Section

MASTER_KEY_BYTES = 32
DEV_MASTER_KEY_FILENAME = "dev-master.key"


class KeySettings(Section):
    algorithm: Literal["ES256", "Ed25519"] = "ES256"
    publish_ahead: Duration = 600.0
    max_token_lifetime: Duration = 86_400.0
    refresh_interval: Duration = 30.0
    jwks_max_age: Duration = 300.0

    @model_validator(mode="after")
    def _ordering(self) -> KeySettings:
        # A new key must be visible to every worker and every verifier's JWKS cache
        # before it signs, so both delays must fit inside publish_ahead.
        if self.refresh_interval >= self.publish_ahead:
            raise ValueError("refresh_interval must be shorter than publish_ahead")
        if self.jwks_max_age >= self.publish_ahead:
            raise ValueError("jwks_max_age must be shorter than publish_ahead")
        if self.max_token_lifetime <= 0:
            raise ValueError("max_token_lifetime must be positive")
        return self


def decode_master_key(encoded: str) -> bytes:
    """A master key is 32 random bytes, base64url-encoded (padding optional)."""
    text = encoded.strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("master key is not valid base64url") from exc
    if len(raw) != MASTER_KEY_BYTES:
        raise ValueError(
            f"master key must decode to {MASTER_KEY_BYTES} bytes "
            "(create one with `bastion keys new-master-key --out FILE`)"
        )
    return raw


def encode_master_key(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
