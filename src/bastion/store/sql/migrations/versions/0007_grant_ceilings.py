"""Per-client token exchange policy; the values a software statement fixed for a registered
client; refresh families remember which instance made their latest rotation.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.add_column(
            sa.Column("exchange_subject_audiences", sa.Text, nullable=False, server_default="[]")
        )
        batch.add_column(
            sa.Column(
                "exchange_delegation_chains",
                sa.Boolean,
                nullable=False,
                server_default=sa.false(),
            )
        )
        batch.add_column(sa.Column("statement_values", sa.Text, nullable=True))
    with op.batch_alter_table("refresh_families") as batch:
        batch.add_column(sa.Column("rotated_by", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("refresh_families") as batch:
        batch.drop_column("rotated_by")
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("statement_values")
        batch.drop_column("exchange_delegation_chains")
        batch.drop_column("exchange_subject_audiences")
