"""Device records: one row per attested app installation and the users it served, and
an index to find the refresh families bound to a device's DPoP key.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

LIVE = sa.text("revoked_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("device_id", sa.String(64), primary_key=True),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("first_seen", sa.Double(), nullable=False),
        sa.Column("last_seen", sa.Double(), nullable=False),
        sa.Column("attested_at", sa.Double(), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=True, unique=True),
        sa.Column("public_key", sa.LargeBinary(), nullable=True),
        sa.Column("counter", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("environment", sa.String(32), nullable=True),
        sa.Column("receipt", sa.LargeBinary(), nullable=True),
        sa.Column("verdict", sa.Text(), nullable=True),
        sa.Column("app_version", sa.String(64), nullable=True),
        sa.Column("dpop_jkt", sa.String(64), nullable=True),
        sa.Column("encryption_key", sa.Text(), nullable=True),
        sa.Column("registered_client_id", sa.String(128), nullable=True),
        sa.Column("revoked_at", sa.Double(), nullable=True),
        sa.Column("revoked_reason", sa.String(200), nullable=True),
    )
    op.create_index("ix_devices_dpop_jkt", "devices", ["dpop_jkt"])
    # One DPoP key, one live installation: enforced by the database for every process.
    op.create_index(
        "uq_devices_live_dpop_jkt",
        "devices",
        ["dpop_jkt"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
    op.create_index("ix_devices_client_id", "devices", ["client_id"])
    op.create_index("ix_devices_last_seen", "devices", ["last_seen"])
    op.create_table(
        "device_users",
        sa.Column("device_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("first_seen", sa.Double(), nullable=False),
    )
    op.create_index("ix_device_users_user_id", "device_users", ["user_id"])
    op.create_index("ix_refresh_families_dpop_jkt", "refresh_families", ["dpop_jkt"])


def downgrade() -> None:
    op.drop_index("ix_refresh_families_dpop_jkt", table_name="refresh_families")
    op.drop_table("device_users")
    op.drop_table("devices")
