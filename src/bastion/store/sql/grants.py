"""Grants in SQL: authorization codes, refresh families, and the index of access tokens.

The two races that matter are settled by the database with conditional updates, so they
hold across any number of processes:

* a code is consumed by ``UPDATE ... WHERE consumed_at IS NULL``: of parallel
  redemptions exactly one updates a row;
* a family advances by ``UPDATE ... WHERE generation = n``: of parallel refreshes with
  the same token exactly one rotates; the others see the new generation.
"""

from __future__ import annotations

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.sql.elements import ColumnElement

from bastion.oauth.codes import CodeGrant
from bastion.oauth.refresh import Family
from bastion.oauth.tokens import MAX_CLOCK_SKEW
from bastion.store.sql.codec import dump_list, load_tuple
from bastion.store.sql.database import Database
from bastion.store.sql.schema import authorization_codes, issued_tokens, refresh_families


def _code(row: RowMapping) -> CodeGrant:
    return CodeGrant(
        code_hash=row["code_hash"],
        client_id=row["client_id"],
        redirect_uri=row["redirect_uri"],
        code_challenge=row["code_challenge"],
        scope=load_tuple(row["scope"]),
        resources=load_tuple(row["resources"]),
        subject=row["subject"],
        session_id=row["session_id"],
        auth_time=row["auth_time"],
        acr=row["acr"],
        amr=load_tuple(row["amr"]),
        nonce=row["nonce"],
        issued_at=row["issued_at"],
        expires_at=row["expires_at"],
        consumed_at=row["consumed_at"],
        redirect_uri_given=row["redirect_uri_given"],
    )


def _family(row: RowMapping) -> Family:
    return Family(
        family_id=row["family_id"],
        salt=row["salt"],
        client_id=row["client_id"],
        subject=row["subject"],
        scope=load_tuple(row["scope"]),
        resources=load_tuple(row["resources"]),
        generation=row["generation"],
        rotated_at=row["rotated_at"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        session_id=row["session_id"],
        auth_time=row["auth_time"],
        acr=row["acr"],
        amr=load_tuple(row["amr"]),
        rotated_by=row["rotated_by"] or "",
    )


class SqlGrantStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    # --- codes ---------------------------------------------------------------------------

    async def save_code(self, grant: CodeGrant) -> None:
        async with self._db.connect() as conn:
            await conn.execute(
                insert(authorization_codes).values(
                    code_hash=grant.code_hash,
                    client_id=grant.client_id,
                    redirect_uri=grant.redirect_uri,
                    code_challenge=grant.code_challenge,
                    scope=dump_list(grant.scope),
                    resources=dump_list(grant.resources),
                    subject=grant.subject,
                    session_id=grant.session_id,
                    auth_time=grant.auth_time,
                    acr=grant.acr,
                    amr=dump_list(grant.amr),
                    nonce=grant.nonce,
                    issued_at=grant.issued_at,
                    expires_at=grant.expires_at,
                    redirect_uri_given=grant.redirect_uri_given,
                )
            )

    async def consume_code(self, code_hash: str, now: float) -> tuple[CodeGrant | None, bool]:
        """The grant, and whether this call consumed it (False: already used, or absent)."""
        async with self._db.connect() as conn:
            result = await conn.execute(
                update(authorization_codes)
                .where(
                    and_(
                        authorization_codes.c.code_hash == code_hash,
                        authorization_codes.c.consumed_at.is_(None),
                    )
                )
                .values(consumed_at=now)
            )
            row = (
                (
                    await conn.execute(
                        select(authorization_codes).where(
                            authorization_codes.c.code_hash == code_hash
                        )
                    )
                )
                .mappings()
                .first()
            )
        return (None if row is None else _code(row)), bool(result.rowcount)

    async def mark_replayed(self, code_hash: str, now: float) -> None:
        async with self._db.connect() as conn:
            await conn.execute(
                update(authorization_codes)
                .where(authorization_codes.c.code_hash == code_hash)
                .values(replayed_at=now)
            )

    async def was_replayed(self, code_hash: str) -> bool:
        async with self._db.connect() as conn:
            value = await conn.scalar(
                select(authorization_codes.c.replayed_at).where(
                    authorization_codes.c.code_hash == code_hash
                )
            )
            return value is not None

    async def link_code_family(self, code_hash: str, family_id: str) -> None:
        async with self._db.connect() as conn:
            await conn.execute(
                update(authorization_codes)
                .where(authorization_codes.c.code_hash == code_hash)
                .values(family_id=family_id)
            )

    async def family_of_code(self, code_hash: str) -> str | None:
        async with self._db.connect() as conn:
            value = await conn.scalar(
                select(authorization_codes.c.family_id).where(
                    authorization_codes.c.code_hash == code_hash
                )
            )
            return None if value is None else str(value)

    # --- refresh families -------------------------------------------------------------------

    async def create_family(self, family: Family) -> None:
        async with self._db.connect() as conn:
            await conn.execute(
                insert(refresh_families).values(
                    family_id=family.family_id,
                    salt=family.salt,
                    client_id=family.client_id,
                    subject=family.subject,
                    session_id=family.session_id,
                    scope=dump_list(family.scope),
                    resources=dump_list(family.resources),
                    auth_time=family.auth_time,
                    acr=family.acr,
                    amr=dump_list(family.amr),
                    generation=family.generation,
                    rotated_at=family.rotated_at,
                    created_at=family.created_at,
                    last_used_at=family.last_used_at,
                    expires_at=family.expires_at,
                )
            )

    async def active_families(self, subject: str, now: float) -> list[Family]:
        """The subject's live refresh families (the apps holding a sign-in), newest first."""
        condition = and_(
            refresh_families.c.subject == subject,
            refresh_families.c.revoked_at.is_(None),
            refresh_families.c.expires_at > now,
        )
        async with self._db.connect() as conn:
            rows = (
                await conn.execute(
                    select(refresh_families)
                    .where(condition)
                    .order_by(refresh_families.c.last_used_at.desc())
                )
            ).mappings()
            return [_family(row) for row in rows]

    async def get_family(self, family_id: str) -> Family | None:
        async with self._db.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(refresh_families).where(refresh_families.c.family_id == family_id)
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else _family(row)

    async def advance_family(
        self, family_id: str, generation: int, now: float, rotated_by: str = ""
    ) -> bool:
        """Move from ``generation`` to the next, recording the rotating instance's
        fingerprint; False if someone else already did."""
        async with self._db.connect() as conn:
            result = await conn.execute(
                update(refresh_families)
                .where(
                    and_(
                        refresh_families.c.family_id == family_id,
                        refresh_families.c.generation == generation,
                        refresh_families.c.revoked_at.is_(None),
                    )
                )
                .values(
                    generation=generation + 1,
                    rotated_at=now,
                    last_used_at=now,
                    rotated_by=rotated_by or None,
                )
            )
            return bool(result.rowcount)

    async def revoke_families(
        self,
        now: float,
        reason: str,
        *,
        family_id: str | None = None,
        subject: str | None = None,
        session_id: str | None = None,
        client_id: str | None = None,
    ) -> list[str]:
        """Revoke the matching live families; return their ids."""
        conditions: list[ColumnElement[bool]] = [refresh_families.c.revoked_at.is_(None)]
        for column, value in (
            (refresh_families.c.family_id, family_id),
            (refresh_families.c.subject, subject),
            (refresh_families.c.session_id, session_id),
            (refresh_families.c.client_id, client_id),
        ):
            if value is not None:
                conditions.append(column == value)
        if len(conditions) == 1:
            raise ValueError("revoke_families needs at least one selector")
        async with self._db.connect() as conn:
            ids = list(
                (
                    await conn.execute(
                        select(refresh_families.c.family_id).where(and_(*conditions))
                    )
                ).scalars()
            )
            if ids:
                await conn.execute(
                    update(refresh_families)
                    .where(refresh_families.c.family_id.in_(ids))
                    .values(revoked_at=now, revoked_reason=reason)
                )
            return [str(i) for i in ids]

    # --- the access token index ---------------------------------------------------------------

    async def lineage(self, jti: str) -> tuple[str | None, str | None]:
        """The refresh family and code an issued token came from (``None``s if unknown)."""
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    select(issued_tokens.c.family_id, issued_tokens.c.code_hash).where(
                        issued_tokens.c.jti == jti
                    )
                )
            ).first()
        return (None, None) if row is None else (row[0], row[1])

    async def record_token(
        self,
        jti: str,
        *,
        client_id: str,
        subject: str,
        expires_at: float,
        family_id: str | None = None,
        code_hash: str | None = None,
    ) -> None:
        async with self._db.connect() as conn:
            await conn.execute(
                insert(issued_tokens).values(
                    jti=jti,
                    client_id=client_id,
                    subject=subject,
                    family_id=family_id,
                    code_hash=code_hash,
                    expires_at=expires_at,
                )
            )

    async def live_tokens(
        self,
        now: float,
        *,
        family_ids: list[str] | None = None,
        code_hash: str | None = None,
        subject: str | None = None,
    ) -> list[tuple[str, float]]:
        """(jti, exp) of access tokens that still verify, from the given families, code or
        subject."""
        # Tokens past exp still verify within the forgiven clock skew: they are live too.
        conditions: list[ColumnElement[bool]] = [issued_tokens.c.expires_at > now - MAX_CLOCK_SKEW]
        if family_ids is not None:
            conditions.append(issued_tokens.c.family_id.in_(family_ids))
        if code_hash is not None:
            conditions.append(issued_tokens.c.code_hash == code_hash)
        if subject is not None:
            conditions.append(issued_tokens.c.subject == subject)
        async with self._db.connect() as conn:
            rows = await conn.execute(
                select(issued_tokens.c.jti, issued_tokens.c.expires_at).where(and_(*conditions))
            )
            return [(str(jti), float(exp)) for jti, exp in rows]
