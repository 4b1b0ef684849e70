"""Authorization server: clients, users, codes, refresh families, issued tokens, consents,
browser sessions.

A migration is a frozen snapshot: it spells out its tables rather than reading the
current schema module, which later revisions will change.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _text(name: str, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.Text, nullable=nullable)


def _time(name: str, nullable: bool = False) -> sa.Column[float]:
    return sa.Column(name, sa.Double, nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("client_id", sa.String(128), primary_key=True),
        sa.Column("client_type", sa.String(16), nullable=False),
        sa.Column("auth_method", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        _text("redirect_uris"),
        _text("scopes"),
        _text("grant_types"),
        _text("resources"),
        sa.Column("require_par", sa.Boolean, nullable=False),
        sa.Column("secret_hash", sa.String(128), nullable=True),
        _text("jwks", nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("registration_token_hash", sa.String(128), nullable=True),
        _time("created_at"),
        _time("updated_at"),
    )
    op.create_table(
        "users",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(200), nullable=False, unique=True),
        _text("password_hash", nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        _time("created_at"),
        _time("tokens_valid_after"),
    )
    op.create_table(
        "authorization_codes",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(128), nullable=False),
        _text("redirect_uri"),
        sa.Column("code_challenge", sa.String(64), nullable=False),
        _text("scope"),
        _text("resources"),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        _time("auth_time"),
        sa.Column("acr", sa.String(100), nullable=False),
        _text("amr"),
        _text("nonce", nullable=True),
        _time("issued_at"),
        _time("expires_at"),
        _time("consumed_at", nullable=True),
        sa.Column("family_id", sa.String(64), nullable=True),
    )
    op.create_table(
        "refresh_families",
        sa.Column("family_id", sa.String(64), primary_key=True),
        sa.Column("salt", sa.LargeBinary, nullable=False),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        _text("scope"),
        _text("resources"),
        _time("auth_time"),
        sa.Column("acr", sa.String(100), nullable=False),
        _text("amr"),
        sa.Column("generation", sa.Integer, nullable=False),
        _time("rotated_at"),
        _time("created_at"),
        _time("last_used_at"),
        _time("expires_at"),
        _time("revoked_at", nullable=True),
        sa.Column("revoked_reason", sa.String(64), nullable=True),
    )
    op.create_index("ix_refresh_families_subject", "refresh_families", ["subject"])
    op.create_index("ix_refresh_families_session_id", "refresh_families", ["session_id"])
    op.create_table(
        "issued_tokens",
        sa.Column("jti", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("family_id", sa.String(64), nullable=True),
        sa.Column("code_hash", sa.String(64), nullable=True),
        _time("expires_at"),
    )
    op.create_index("ix_issued_tokens_family_id", "issued_tokens", ["family_id"])
    op.create_index("ix_issued_tokens_subject", "issued_tokens", ["subject"])
    op.create_index("ix_issued_tokens_code_hash", "issued_tokens", ["code_hash"])
    op.create_table(
        "consents",
        sa.Column("subject", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(128), primary_key=True),
        _text("scopes"),
        _time("granted_at"),
    )
    op.create_table(
        "browser_sessions",
        sa.Column("session_hash", sa.String(64), primary_key=True),
        sa.Column("session_id", sa.String(64), nullable=False, unique=True),
        sa.Column("subject", sa.String(64), nullable=False),
        _time("auth_time"),
        sa.Column("acr", sa.String(100), nullable=False),
        _text("amr"),
        _time("created_at"),
        _time("last_seen_at"),
        _time("expires_at"),
        _time("revoked_at", nullable=True),
    )
    op.create_index("ix_browser_sessions_subject", "browser_sessions", ["subject"])


def downgrade() -> None:
    for name in (
        "browser_sessions",
        "consents",
        "issued_tokens",
        "refresh_families",
        "authorization_codes",
        "users",
        "clients",
    ):
        op.drop_table(name)
