"""Table definitions; the migrations in ``migrations/versions`` create and change them.

Times are stored as float seconds since the epoch (the same ``now`` every core takes),
which keeps SQLite and PostgreSQL identical and comparisons cheap. Tables of records
that expire are indexed by their expiry, for ``bastion.store.sql.pruning``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    false,
    text,
    true,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("activates_at", Double, nullable=False),
    Column("retired_at", Double, nullable=True),
    Column("sealed_private_key", LargeBinary, nullable=False),
)

# Lists and mappings are stored as JSON text, which SQLite and PostgreSQL treat alike.

clients = Table(
    "clients",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("client_type", String(16), nullable=False),
    Column("auth_method", String(32), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    Column("redirect_uris", Text, nullable=False),
    Column("scopes", Text, nullable=False),
    Column("grant_types", Text, nullable=False),
    Column("resources", Text, nullable=False),
    Column("require_par", Boolean, nullable=False, default=False),
    Column("secret_hash", String(128), nullable=True),
    Column("jwks", Text, nullable=True),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("source", String(16), nullable=False),
    Column("registration_token_hash", String(128), nullable=True),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("may_introspect", Boolean, nullable=False, server_default=false()),
    Column("auth_policy", String(16), nullable=False, server_default="password"),
    Column("exchange_subject_audiences", Text, nullable=False, server_default="[]"),
    Column("exchange_delegation_chains", Boolean, nullable=False, server_default=false()),
    # JSON: the registration metadata a software statement fixed (RFC 7591 §2.3).
    Column("statement_values", Text, nullable=True),
    # JSON: RFC 7591 logo_uri, client_uri, policy_uri, tos_uri and the accent colour.
    Column("branding", Text, nullable=True),
    # RFC 9449 §5.2 dpop_bound_access_tokens, and whether server nonces are required (§8).
    Column("dpop_bound", Boolean, nullable=False, server_default=false()),
    Column("dpop_nonce", Boolean, nullable=False, server_default=false()),
)

users = Table(
    "users",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("username", String(200), nullable=False, unique=True),
    Column("password_hash", Text, nullable=True),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", Double, nullable=False),
    Column("tokens_valid_after", Double, nullable=False, default=0.0),
    Column("auth_policy", String(16), nullable=False, server_default="password"),
)

authorization_codes = Table(
    "authorization_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_id", String(128), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("code_challenge", String(64), nullable=False),
    Column("scope", Text, nullable=False),
    Column("resources", Text, nullable=False),
    Column("subject", String(64), nullable=False),
    Column("session_id", String(64), nullable=False),
    Column("auth_time", Double, nullable=False),
    Column("acr", String(100), nullable=False),
    Column("amr", Text, nullable=False),
    Column("nonce", Text, nullable=True),
    Column("issued_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("consumed_at", Double, nullable=True),
    Column("family_id", String(64), nullable=True),
    Column("redirect_uri_given", Boolean, nullable=False, server_default=true()),
    Column("replayed_at", Double, nullable=True),
    # RFC 9449 §10: the DPoP key the authorization request named (dpop_jkt).
    Column("dpop_jkt", String(64), nullable=True),
    # Pruning: codes without a family by expiry; the others go with their family.
    Index("ix_authorization_codes_family_id_expires_at", "family_id", "expires_at"),
)

refresh_families = Table(
    "refresh_families",
    metadata,
    Column("family_id", String(64), primary_key=True),
    Column("salt", LargeBinary, nullable=False),
    Column("client_id", String(128), nullable=False),
    Column("subject", String(64), nullable=False),
    Column("session_id", String(64), nullable=False),
    Column("scope", Text, nullable=False),
    Column("resources", Text, nullable=False),
    Column("auth_time", Double, nullable=False),
    Column("acr", String(100), nullable=False),
    Column("amr", Text, nullable=False),
    Column("generation", Integer, nullable=False),
    Column("rotated_at", Double, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("last_used_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("revoked_at", Double, nullable=True),
    Column("revoked_reason", String(64), nullable=True),
    # Keyed fingerprint of the instance that made the latest rotation (refresh grace).
    Column("rotated_by", String(64), nullable=True),
    # RFC 9449 §5: the DPoP key a public client's family is bound to for its whole life.
    Column("dpop_jkt", String(64), nullable=True),
    Index("ix_refresh_families_subject", "subject"),
    Index("ix_refresh_families_session_id", "session_id"),
    Index("ix_refresh_families_expires_at", "expires_at"),
    # Revoking a device revokes the families bound to its DPoP key.
    Index("ix_refresh_families_dpop_jkt", "dpop_jkt"),
)

# Every access token issued, so revoking a family, a code or a user can denylist the
# access tokens that came from it until they expire.
issued_tokens = Table(
    "issued_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("client_id", String(128), nullable=False),
    Column("subject", String(64), nullable=False),
    Column("family_id", String(64), nullable=True),
    Column("code_hash", String(64), nullable=True),
    Column("expires_at", Double, nullable=False),
    Index("ix_issued_tokens_family_id", "family_id"),
    Index("ix_issued_tokens_subject", "subject"),
    Index("ix_issued_tokens_code_hash", "code_hash"),
    Index("ix_issued_tokens_expires_at", "expires_at"),
)

consents = Table(
    "consents",
    metadata,
    Column("subject", String(64), primary_key=True),
    Column("client_id", String(128), primary_key=True),
    Column("scopes", Text, nullable=False),
    Column("granted_at", Double, nullable=False),
)

browser_sessions = Table(
    "browser_sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("session_id", String(64), nullable=False, unique=True),
    Column("subject", String(64), nullable=False),
    Column("auth_time", Double, nullable=False),
    Column("acr", String(100), nullable=False),
    Column("amr", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("last_seen_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("revoked_at", Double, nullable=True),
    Column("user_agent", String(200), nullable=True),
    Index("ix_browser_sessions_subject", "subject"),
    Index("ix_browser_sessions_expires_at", "expires_at"),
)

# Second factors. A TOTP secret is sealed under a key derived from the master key (the
# user id is the associated data, so a row copied to another user does not open);
# recovery codes and recovery tickets are stored as keyed hashes only.
totp_credentials = Table(
    "totp_credentials",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("sealed_secret", LargeBinary, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("confirmed_at", Double, nullable=True),
    Column("last_used_step", BigInteger, nullable=True),
)

recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("user_id", String(64), nullable=False, index=True),
    Column("created_at", Double, nullable=False),
    Column("used_at", Double, nullable=True),
)

passkeys = Table(
    "passkeys",
    metadata,
    Column("credential_id", String(1400), primary_key=True),
    Column("user_id", String(64), nullable=False, index=True),
    Column("public_key", LargeBinary, nullable=False),
    Column("sign_count", BigInteger, nullable=False),
    Column("name", String(100), nullable=False),
    Column("transports", Text, nullable=False),
    Column("backed_up", Boolean, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("last_used_at", Double, nullable=True),
)

recovery_tickets = Table(
    "recovery_tickets",
    metadata,
    Column("ticket_hash", String(64), primary_key=True),
    Column("user_id", String(64), nullable=False, index=True),
    Column("reset_mfa", Boolean, nullable=False),
    Column("created_by", String(100), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("used_at", Double, nullable=True),
    Index("ix_recovery_tickets_expires_at", "expires_at"),
)

# The gateway's ownership registry: who created an object through the gateway. The
# first owner recorded wins and is never replaced (see bastion.gateway.objects).
object_owners = Table(
    "object_owners",
    metadata,
    Column("kind", String(64), primary_key=True),
    Column("object_id", String(256), primary_key=True),
    Column("owner", String(256), nullable=False),
    Column("created_at", Double, nullable=False),
)

# Idempotency records (bastion.guards.idempotency) when [guards] idempotency_store = "sql".
idempotency_records = Table(
    "idempotency_records",
    metadata,
    Column("key", String(80), primary_key=True),
    Column("record", LargeBinary, nullable=False),
    Column("expires_at", Double, nullable=False, index=True),
)

# Device records (bastion.device.records): one row per app installation that attested.
# The database keeps the rules that must hold across processes: one App Attest key, one
# installation (a unique key id), and one DPoP key, one live installation (a unique
# index over the thumbprints of devices not revoked). A revoked device frees its DPoP
# key; its App Attest key stays spent, as the app makes a new one to attest again.
devices = Table(
    "devices",
    metadata,
    Column("device_id", String(64), primary_key=True),
    Column("platform", String(16), nullable=False),
    Column("client_id", String(128), nullable=False),
    Column("level", String(16), nullable=False),
    Column("first_seen", Double, nullable=False),
    Column("last_seen", Double, nullable=False),
    Column("attested_at", Double, nullable=False),
    Column("key_id", String(64), nullable=True, unique=True),
    Column("public_key", LargeBinary, nullable=True),
    # The authenticator data's sign count is an unsigned 32-bit number.
    Column("counter", BigInteger, nullable=False, server_default="0"),
    Column("environment", String(32), nullable=True),
    Column("receipt", LargeBinary, nullable=True),
    # JSON: the summary of the last Play Integrity verdict that passed.
    Column("verdict", Text, nullable=True),
    Column("app_version", String(64), nullable=True),
    Column("dpop_jkt", String(64), nullable=True),
    # JSON: the public JWK the installation registered for encryption to it.
    Column("encryption_key", Text, nullable=True),
    Column("registered_client_id", String(128), nullable=True),
    Column("revoked_at", Double, nullable=True),
    Column("revoked_reason", String(200), nullable=True),
    Index("ix_devices_dpop_jkt", "dpop_jkt"),
    Index(
        "uq_devices_live_dpop_jkt",
        "dpop_jkt",
        unique=True,
        sqlite_where=text("revoked_at IS NULL"),
        postgresql_where=text("revoked_at IS NULL"),
    ),
    Index("ix_devices_client_id", "client_id"),
    Index("ix_devices_last_seen", "last_seen"),
)

# The users a device served, each with when it was first seen with the device.
device_users = Table(
    "device_users",
    metadata,
    Column("device_id", String(64), primary_key=True),
    Column("user_id", String(64), primary_key=True),
    Column("first_seen", Double, nullable=False),
    Index("ix_device_users_user_id", "user_id"),
)
