"""Accounts: sign-in policies, TOTP, recovery codes, passkeys, operator recovery links,
and the user agent shown on the account page's session list.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("users", "clients"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("auth_policy", sa.String(16), nullable=False, server_default="password")
            )
    with op.batch_alter_table("browser_sessions") as batch:
        batch.add_column(sa.Column("user_agent", sa.String(200), nullable=True))
    op.create_table(
        "totp_credentials",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("sealed_secret", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("confirmed_at", sa.Double, nullable=True),
        sa.Column("last_used_step", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "recovery_codes",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False, index=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("used_at", sa.Double, nullable=True),
    )
    op.create_table(
        "passkeys",
        sa.Column("credential_id", sa.String(1400), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False, index=True),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("sign_count", sa.BigInteger, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("transports", sa.Text, nullable=False),
        sa.Column("backed_up", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("last_used_at", sa.Double, nullable=True),
    )
    op.create_table(
        "recovery_tickets",
        sa.Column("ticket_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False, index=True),
        sa.Column("reset_mfa", sa.Boolean, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("used_at", sa.Double, nullable=True),
    )


def downgrade() -> None:
    for table in ("recovery_tickets", "passkeys", "recovery_codes", "totp_credentials"):
        op.drop_table(table)
    with op.batch_alter_table("browser_sessions") as batch:
        batch.drop_column("user_agent")
    for table in ("clients", "users"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("auth_policy")
