"""The token endpoint's grant types (RFC 6749 §4.1.3, §4.4, §6; RFC 8693 §2), by name."""

from __future__ import annotations

from bastion.authserver.grants import authorization_code, client_credentials, refresh_token
from bastion.authserver.token_exchange import token_exchange
from bastion.oauth.clients import (
    AUTHORIZATION_CODE,
    CLIENT_CREDENTIALS,
    REFRESH_TOKEN,
    TOKEN_EXCHANGE,
)

HANDLERS = {
    AUTHORIZATION_CODE: authorization_code,
    REFRESH_TOKEN: refresh_token,
    CLIENT_CREDENTIALS: client_credentials,
    TOKEN_EXCHANGE: token_exchange,
}
