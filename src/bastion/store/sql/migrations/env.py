"""Alembic environment: runs on the connection Bastion hands it (see ``Database.upgrade``)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo

from bastion.store.sql.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `bastion db upgrade`")

on_step = context.config.attributes.get("on_step")


def _report(
    ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
) -> None:
    if on_step is not None:
        on_step(step.up_revision_id)


context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    on_version_apply=_report,
)
with context.begin_transaction():
    context.run_migrations()
