"""Introspection permission per client; whether a code's request named its redirect URI;
when a code was replayed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.add_column(
            sa.Column("may_introspect", sa.Boolean, nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("authorization_codes") as batch:
        batch.add_column(
            sa.Column("redirect_uri_given", sa.Boolean, nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("replayed_at", sa.Double, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("authorization_codes") as batch:
        batch.drop_column("replayed_at")
        batch.drop_column("redirect_uri_given")
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("may_introspect")
