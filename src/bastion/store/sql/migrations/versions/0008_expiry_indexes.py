"""Indexes that keep deleting expired rows cheap (bastion.store.sql.pruning).

Each pruned table is scanned by its expiry; authorization codes by their refresh family
first, since a code stays while its family does and goes with it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_issued_tokens_expires_at", "issued_tokens", ["expires_at"]),
    ("ix_refresh_families_expires_at", "refresh_families", ["expires_at"]),
    (
        "ix_authorization_codes_family_id_expires_at",
        "authorization_codes",
        ["family_id", "expires_at"],
    ),
    ("ix_browser_sessions_expires_at", "browser_sessions", ["expires_at"]),
    ("ix_recovery_tickets_expires_at", "recovery_tickets", ["expires_at"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
