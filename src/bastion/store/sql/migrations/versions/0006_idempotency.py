"""Idempotency records for the gateway's idempotency keys (SQL backend).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_records",
        sa.Column("key", sa.String(80), primary_key=True),
        sa.Column("record", sa.LargeBinary, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("idempotency_records")
