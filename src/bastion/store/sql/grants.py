"""Grants in SQL (``bastion.authserver.stores.GrantStore``): authorization codes, refresh
families, and the index of access tokens.

The two races that matter are settled by the database with conditional updates, so they
hold across any number of processes:

* a code is consumed by ``UPDATE ... WHERE consumed_at IS NULL``: of parallel
  redemptions exactly one updates a row;
* a family advances by ``UPDATE ... WHERE generation = n``: of parallel refreshes with
  the same token exactly one rotates; the others see the new generation.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.sql.elements import ColumnElement

from bastion.authserver.stores import Issuance, IssuedToken
from bastion.oauth.codes import CodeGrant
from bastion.oauth.refresh import Family
from bastion.oauth.tokens import MAX_CLOCK_SKEW
from bastion.store.sql.codec import dump_list, load_tuple
from bastion.store.sql.database import Database
from bastion.store.sql.direct_postgres import DirectPostgres, Statement
from bastion.store.sql.rows import Row, Rows
from bastion.store.sql.schema import authorization_codes, issued_tokens, refresh_families


def _code(row: Row) -> CodeGrant:
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
        redirect_uri_given=bool(row["redirect_uri_given"]),
        dpop_jkt=row["dpop_jkt"],
    )


def _family(row: Row) -> Family:
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
        dpop_jkt=row["dpop_jkt"],
    )


def _family_values(family: Family) -> dict[str, Any]:
    return {
        "family_id": family.family_id,
        "salt": family.salt,
        "client_id": family.client_id,
        "subject": family.subject,
        "session_id": family.session_id,
        "scope": dump_list(family.scope),
        "resources": dump_list(family.resources),
        "auth_time": family.auth_time,
        "acr": family.acr,
        "amr": dump_list(family.amr),
        "generation": family.generation,
        "rotated_at": family.rotated_at,
        "created_at": family.created_at,
        "last_used_at": family.last_used_at,
        "expires_at": family.expires_at,
        "dpop_jkt": family.dpop_jkt,
    }


def _token_values(token: IssuedToken) -> dict[str, Any]:
    return {
        "jti": token.jti,
        "client_id": token.client_id,
        "subject": token.subject,
        "family_id": token.family_id,
        "code_hash": token.code_hash,
        "expires_at": token.expires_at,
    }


def _insert_sql(table: str, columns: list[str]) -> str:
    # Names are this module's constants; values are always bound parameters.
    names, placeholders = ", ".join(columns), ", ".join(f":{c}" for c in columns)
    return f"INSERT INTO {table} ({names}) VALUES ({placeholders})"  # noqa: S608


# The statements of the token endpoint's path on SQLite (``direct.py``), named here once
# so that sqlite3 prepares each once per connection.
_CONSUME_CODE = (
    "UPDATE authorization_codes SET consumed_at = :now"
    " WHERE code_hash = :code_hash AND consumed_at IS NULL"
)
_SELECT_CODE = "SELECT * FROM authorization_codes WHERE code_hash = :code_hash"
_SELECT_FAMILY = "SELECT * FROM refresh_families WHERE family_id = :family_id"
_LINK_UNREPLAYED_CODE = (
    "UPDATE authorization_codes SET family_id = COALESCE(:family_id, family_id)"
    " WHERE code_hash = :code_hash AND replayed_at IS NULL"
)
_ADVANCE_FAMILY = (
    "UPDATE refresh_families SET generation = :generation + 1, rotated_at = :now,"
    " last_used_at = :now, rotated_by = :rotated_by,"
    " dpop_jkt = COALESCE(dpop_jkt, :dpop_jkt)"
    " WHERE family_id = :family_id AND generation = :generation AND revoked_at IS NULL"
)
# Takes the family's row lock (PostgreSQL) or the write lock (SQLite) without changing
# it: a revocation waits for this transaction, or this one sees the revocation.
_HOLD_LIVE_FAMILY = (
    "UPDATE refresh_families SET generation = generation"
    " WHERE family_id = :family_id AND generation = :generation AND revoked_at IS NULL"
)
_FAMILY_COLUMNS = [
    *("family_id", "salt", "client_id", "subject", "session_id", "scope", "resources"),
    *("auth_time", "acr", "amr", "generation", "rotated_at", "created_at"),
    *("last_used_at", "expires_at", "dpop_jkt"),
]
_TOKEN_COLUMNS = ["jti", "client_id", "subject", "family_id", "code_hash", "expires_at"]
_INSERT_FAMILY = _insert_sql("refresh_families", _FAMILY_COLUMNS)
_INSERT_TOKEN = _insert_sql("issued_tokens", _TOKEN_COLUMNS)


# The same steps on PostgreSQL (``direct_postgres.py``): the writes of a step that must
# commit together are one statement, so that each step is one round trip and one
# transaction. Rows are written ``FROM`` the row an ``UPDATE`` changed: none when the
# condition failed. The inserted values' parameters carry a prefix (``family_``,
# ``token_``), as both tables have columns of the same names.


def _insert_from(table: str, columns: list[str], prefix: str, source: str) -> str:
    values = ", ".join(f":{prefix}{c}" for c in columns)
    # Names are this module's constants; values are always bound parameters.
    return f"INSERT INTO {table} ({', '.join(columns)}) SELECT {values} FROM {source}"  # noqa: S608


def _prefixed(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    return {prefix + name: value for name, value in values.items()}


def _redeem_sql(with_family: bool) -> str:
    # Consumed and linked in one UPDATE; the link, and every row written below, only when
    # the code was not marked replayed (as _LINK_UNREPLAYED_CODE).
    steps = [
        "consumed AS (UPDATE authorization_codes SET consumed_at = :now, family_id ="
        " CASE WHEN replayed_at IS NULL THEN COALESCE(:family_id, family_id) ELSE family_id END"
        " WHERE code_hash = :code_hash AND consumed_at IS NULL"
        " RETURNING replayed_at IS NULL AS unmarked)",
        "issuing AS (SELECT 1 FROM consumed WHERE unmarked)",
    ]
    if with_family:
        steps.append(
            f"family AS ({_insert_from('refresh_families', _FAMILY_COLUMNS, 'family_', 'issuing')})"
        )
    token = _insert_from("issued_tokens", _TOKEN_COLUMNS, "token_", "issuing")
    steps.append(f"token AS ({token} RETURNING 1)")
    outcome = "EXISTS (SELECT 1 FROM consumed) AS consumed, EXISTS (SELECT 1 FROM token) AS issued"
    return f"WITH {', '.join(steps)} SELECT {outcome}"


def _then_index_token(held: str) -> Statement:
    """``held`` (a conditional UPDATE), and the token's index entry only if it matched."""
    token = _insert_from("issued_tokens", _TOKEN_COLUMNS, "token_", "held")
    return Statement.of(f"WITH held AS ({held} RETURNING 1) {token} RETURNING 1")


_PG_SELECT_CODE = Statement.of(_SELECT_CODE)
_PG_CONSUME_CODE = Statement.of(f"{_CONSUME_CODE} RETURNING 1")
_PG_REDEEM_WITH_FAMILY = Statement.of(_redeem_sql(with_family=True))
_PG_REDEEM_WITHOUT_FAMILY = Statement.of(_redeem_sql(with_family=False))
_PG_ROTATE = _then_index_token(_ADVANCE_FAMILY)
_PG_REISSUE = _then_index_token(_HOLD_LIVE_FAMILY)
_PG_SELECT_FAMILY = Statement.of(_SELECT_FAMILY)
_PG_INSERT_TOKEN = Statement.of(f"{_INSERT_TOKEN} RETURNING 1")


def _live_at(family_id: str, generation: int) -> ColumnElement[bool]:
    return and_(
        refresh_families.c.family_id == family_id,
        refresh_families.c.generation == generation,
        refresh_families.c.revoked_at.is_(None),
    )


class SqlGrantStore:
    def __init__(self, database: Database) -> None:
        self._rows = Rows(database)
        self._database = database

    # --- codes ---------------------------------------------------------------------------

    async def save_code(self, grant: CodeGrant) -> None:
        await self._rows.run(
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
                dpop_jkt=grant.dpop_jkt,
            )
        )

    async def consume_code(self, code_hash: str, now: float) -> tuple[CodeGrant | None, bool]:
        direct = self._database.direct
        if direct is not None:
            return await direct.write(lambda conn: _consume_direct(conn, code_hash, now))
        async with self._rows.transaction() as tx:
            return await _consume(tx, code_hash, now)

    async def redeem_code(
        self, code_hash: str, now: float, issue: Callable[[CodeGrant], Issuance | None]
    ) -> tuple[CodeGrant | None, bool, bool]:
        # One commit for the whole redemption instead of one to consume and one to issue.
        direct = self._database.direct
        if direct is not None:

            def redeem(conn: sqlite3.Connection) -> tuple[CodeGrant | None, bool, bool]:
                grant, consumed = _consume_direct(conn, code_hash, now)
                if grant is None or not consumed:
                    return grant, False, False
                issuance = issue(grant)
                if issuance is None:
                    return grant, True, False
                return grant, True, _issue_direct(conn, code_hash, *issuance)

            return await direct.write(redeem)
        postgres = self._database.postgres
        if postgres is not None:
            return await _redeem_postgres(postgres, code_hash, now, issue)
        async with self._rows.transaction() as tx:
            grant, consumed = await _consume(tx, code_hash, now)
            if grant is None or not consumed:
                return grant, False, False
            issuance = issue(grant)
            if issuance is None:
                return grant, True, False
            return grant, True, await _issue(tx, code_hash, *issuance)

    async def mark_replayed(self, code_hash: str, now: float) -> None:
        await self._set_code(code_hash, replayed_at=now)

    async def was_replayed(self, code_hash: str) -> bool:
        return await self._code_value(authorization_codes.c.replayed_at, code_hash) is not None

    async def family_of_code(self, code_hash: str) -> str | None:
        value = await self._code_value(authorization_codes.c.family_id, code_hash)
        return None if value is None else str(value)

    async def _set_code(self, code_hash: str, **values: object) -> None:
        await self._rows.run(
            update(authorization_codes)
            .where(authorization_codes.c.code_hash == code_hash)
            .values(**values)
        )

    async def _code_value(self, column: ColumnElement[Any], code_hash: str) -> Any:
        return await self._rows.value(
            select(column).where(authorization_codes.c.code_hash == code_hash)
        )

    # --- refresh families -------------------------------------------------------------------

    async def create_family(self, family: Family) -> None:
        await self._rows.run(insert(refresh_families).values(**_family_values(family)))

    async def issue_from_code(
        self, code_hash: str, family: Family | None, token: IssuedToken
    ) -> bool:
        direct = self._database.direct
        if direct is not None:
            return await direct.write(lambda conn: _issue_direct(conn, code_hash, family, token))
        async with self._rows.transaction() as tx:
            return await _issue(tx, code_hash, family, token)

    async def rotate_family(
        self,
        family_id: str,
        generation: int,
        now: float,
        rotated_by: str,
        token: IssuedToken,
        dpop_jkt: str | None = None,
    ) -> bool:
        advance = {
            "family_id": family_id,
            "generation": generation,
            "now": now,
            "rotated_by": rotated_by or None,
            "dpop_jkt": dpop_jkt,
        }
        direct = self._database.direct
        if direct is not None:

            def rotate(conn: sqlite3.Connection) -> bool:
                if conn.execute(_ADVANCE_FAMILY, advance).rowcount == 0:
                    return False
                conn.execute(_INSERT_TOKEN, _token_values(token))
                return True

            return await direct.write(rotate)
        postgres = self._database.postgres
        if postgres is not None:
            written = await postgres.write(
                _PG_ROTATE, advance | _prefixed("token_", _token_values(token))
            )
            return written is not None
        async with self._rows.transaction() as tx:
            if not await tx.run(
                update(refresh_families)
                .where(_live_at(family_id, generation))
                .values(
                    generation=generation + 1,
                    rotated_at=now,
                    last_used_at=now,
                    rotated_by=rotated_by or None,
                    dpop_jkt=func.coalesce(refresh_families.c.dpop_jkt, dpop_jkt),
                )
            ):
                return False
            await tx.run(insert(issued_tokens).values(**_token_values(token)))
        return True

    async def reissue_in_family(self, family_id: str, generation: int, token: IssuedToken) -> bool:
        live = {"family_id": family_id, "generation": generation}
        direct = self._database.direct
        if direct is not None:

            def reissue(conn: sqlite3.Connection) -> bool:
                if conn.execute(_HOLD_LIVE_FAMILY, live).rowcount == 0:
                    return False
                conn.execute(_INSERT_TOKEN, _token_values(token))
                return True

            return await direct.write(reissue)
        postgres = self._database.postgres
        if postgres is not None:
            written = await postgres.write(
                _PG_REISSUE, live | _prefixed("token_", _token_values(token))
            )
            return written is not None
        async with self._rows.transaction() as tx:
            # An update that changes nothing still takes the row lock: a revocation of
            # this family waits for this transaction, or this one sees the revocation.
            if not await tx.run(
                update(refresh_families)
                .where(_live_at(family_id, generation))
                .values(generation=refresh_families.c.generation)
            ):
                return False
            await tx.run(insert(issued_tokens).values(**_token_values(token)))
        return True

    async def active_families(self, subject: str, now: float) -> list[Family]:
        condition = and_(
            refresh_families.c.subject == subject,
            refresh_families.c.revoked_at.is_(None),
            refresh_families.c.expires_at > now,
        )
        return await self._rows.all(
            select(refresh_families)
            .where(condition)
            .order_by(refresh_families.c.last_used_at.desc()),
            _family,
        )

    async def get_family(self, family_id: str) -> Family | None:
        direct = self._database.direct
        if direct is not None:

            def get(conn: sqlite3.Connection) -> Family | None:
                row = conn.execute(_SELECT_FAMILY, {"family_id": family_id}).fetchone()
                return None if row is None else _family(row)

            return await direct.read(get)
        postgres = self._database.postgres
        if postgres is not None:
            row = await postgres.fetchrow(_PG_SELECT_FAMILY, {"family_id": family_id})
            return None if row is None else _family(row)
        return await self._rows.one(
            select(refresh_families).where(refresh_families.c.family_id == family_id), _family
        )

    async def revoke_families(
        self,
        now: float,
        reason: str,
        *,
        family_id: str | None = None,
        subject: str | None = None,
        session_id: str | None = None,
        client_id: str | None = None,
        dpop_jkt: str | None = None,
    ) -> list[str]:
        conditions: list[ColumnElement[bool]] = [refresh_families.c.revoked_at.is_(None)]
        for column, value in (
            (refresh_families.c.family_id, family_id),
            (refresh_families.c.subject, subject),
            (refresh_families.c.session_id, session_id),
            (refresh_families.c.client_id, client_id),
            (refresh_families.c.dpop_jkt, dpop_jkt),
        ):
            if value is not None:
                conditions.append(column == value)
        if len(conditions) == 1:
            raise ValueError("revoke_families needs at least one selector")
        async with self._rows.transaction() as tx:
            ids = await tx.values(select(refresh_families.c.family_id).where(and_(*conditions)))
            if ids:
                await tx.run(
                    update(refresh_families)
                    .where(refresh_families.c.family_id.in_(ids))
                    .values(revoked_at=now, revoked_reason=reason)
                )
        return [str(i) for i in ids]

    # --- the access token index ---------------------------------------------------------------

    async def lineage(self, jti: str) -> tuple[str | None, str | None]:
        found = await self._rows.one(
            select(issued_tokens.c.family_id, issued_tokens.c.code_hash).where(
                issued_tokens.c.jti == jti
            ),
            lambda row: (row["family_id"], row["code_hash"]),
        )
        return found or (None, None)

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
        token = IssuedToken(jti, client_id, subject, expires_at, family_id, code_hash)
        direct = self._database.direct
        if direct is not None:
            await direct.write(lambda conn: conn.execute(_INSERT_TOKEN, _token_values(token)))
            return
        postgres = self._database.postgres
        if postgres is not None:
            await postgres.write(_PG_INSERT_TOKEN, _token_values(token))
            return
        await self._rows.run(insert(issued_tokens).values(**_token_values(token)))

    async def live_tokens(
        self,
        now: float,
        *,
        family_ids: list[str] | None = None,
        code_hash: str | None = None,
        subject: str | None = None,
    ) -> list[tuple[str, float]]:
        # Tokens past exp still verify within the forgiven clock skew: they are live too.
        conditions: list[ColumnElement[bool]] = [issued_tokens.c.expires_at > now - MAX_CLOCK_SKEW]
        if family_ids is not None:
            conditions.append(issued_tokens.c.family_id.in_(family_ids))
        if code_hash is not None:
            conditions.append(issued_tokens.c.code_hash == code_hash)
        if subject is not None:
            conditions.append(issued_tokens.c.subject == subject)
        return await self._rows.all(
            select(issued_tokens.c.jti, issued_tokens.c.expires_at).where(and_(*conditions)),
            lambda row: (str(row["jti"]), float(row["expires_at"])),
        )


# The steps of a code's redemption, each stated once per path (direct SQLite statements
# and SQLAlchemy) and shared by the methods that run them alone or together.


def _consume_direct(
    conn: sqlite3.Connection, code_hash: str, now: float
) -> tuple[CodeGrant | None, bool]:
    consumed = conn.execute(_CONSUME_CODE, {"now": now, "code_hash": code_hash})
    row = conn.execute(_SELECT_CODE, {"code_hash": code_hash}).fetchone()
    return (None if row is None else _code(row)), consumed.rowcount > 0


def _issue_direct(
    conn: sqlite3.Connection, code_hash: str, family: Family | None, token: IssuedToken
) -> bool:
    family_id = None if family is None else family.family_id
    linked = conn.execute(_LINK_UNREPLAYED_CODE, {"family_id": family_id, "code_hash": code_hash})
    if linked.rowcount == 0:
        return False
    if family is not None:
        conn.execute(_INSERT_FAMILY, _family_values(family))
    conn.execute(_INSERT_TOKEN, _token_values(token))
    return True


async def _consume(tx: Rows, code_hash: str, now: float) -> tuple[CodeGrant | None, bool]:
    code = authorization_codes.c.code_hash == code_hash
    consumed = await tx.run(
        update(authorization_codes)
        .where(and_(code, authorization_codes.c.consumed_at.is_(None)))
        .values(consumed_at=now)
    )
    return await tx.one(select(authorization_codes).where(code), _code), bool(consumed)


async def _issue(tx: Rows, code_hash: str, family: Family | None, token: IssuedToken) -> bool:
    code = authorization_codes.c.code_hash == code_hash
    # Without a family the update changes nothing, but still takes the row lock.
    change = authorization_codes.c.family_id if family is None else family.family_id
    linked = await tx.run(
        update(authorization_codes)
        .where(and_(code, authorization_codes.c.replayed_at.is_(None)))
        .values(family_id=change)
    )
    if not linked:
        return False
    if family is not None:
        await tx.run(insert(refresh_families).values(**_family_values(family)))
    await tx.run(insert(issued_tokens).values(**_token_values(token)))
    return True


async def _redeem_postgres(
    postgres: DirectPostgres,
    code_hash: str,
    now: float,
    issue: Callable[[CodeGrant], Issuance | None],
) -> tuple[CodeGrant | None, bool, bool]:
    """A read, then one statement that consumes the code and writes what ``issue``
    answered, only if no one consumed it in between: two round trips, one transaction.

    ``issue`` is asked before the code is consumed, with the grant as this call's
    consumption will leave it; when another redemption wins meanwhile, its answer is
    dropped (the statement writes nothing) and the code is read again as it now is.
    """
    found = await postgres.fetchrow(_PG_SELECT_CODE, {"code_hash": code_hash})
    if found is None:
        return None, False, False
    if found["consumed_at"] is not None:
        return _code(found), False, False
    grant = replace(_code(found), consumed_at=now)
    issuance = issue(grant)
    code = {"now": now, "code_hash": code_hash}
    if issuance is None:
        # Refused by the checks: the code is used up all the same (one attempt per code).
        if await postgres.write(_PG_CONSUME_CODE, code) is not None:
            return grant, True, False
    else:
        family, token = issuance
        values = code | {"family_id": None} | _prefixed("token_", _token_values(token))
        statement = _PG_REDEEM_WITHOUT_FAMILY
        if family is not None:
            statement = _PG_REDEEM_WITH_FAMILY
            values |= {"family_id": family.family_id}
            values |= _prefixed("family_", _family_values(family))
        written = await postgres.write(statement, values)
        if written["consumed"]:
            return grant, True, bool(written["issued"])
    # Another redemption consumed it between our read and our write.
    found = await postgres.fetchrow(_PG_SELECT_CODE, {"code_hash": code_hash})
    return (None if found is None else _code(found)), False, False
