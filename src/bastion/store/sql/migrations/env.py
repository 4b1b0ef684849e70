"""Alembic environment: runs on the connection Bastion hands it (see ``Database.upgrade``)."""

from __future__ import annotations

from alembic import context

from bastion.store.sql.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `bastion db upgrade`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
