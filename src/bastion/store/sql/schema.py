"""Table definitions; the migrations in ``migrations/versions`` create and change them.

Times are stored as float seconds since the epoch (the same ``now`` every core takes),
which keeps SQLite and PostgreSQL identical and comparisons cheap.
"""

from __future__ import annotations

from sqlalchemy import Column, Double, LargeBinary, MetaData, String, Table

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
