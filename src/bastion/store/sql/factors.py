"""Second factors and recovery in SQL (``bastion.accounts.stores.FactorStore``): TOTP
credentials, recovery codes, passkeys, recovery tickets.

Every "use once" rule is one conditional UPDATE, so two concurrent attempts with the same
code cannot both succeed (RFC 6238 §5.2; NIST SP 800-63B §5.1.2.2 and §5.1.4.2).
"""

from __future__ import annotations

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.sql.elements import ColumnElement

from bastion.accounts.records import Passkey, RecoveryTicket, TotpCredential
from bastion.store.sql.codec import dump_list, load_tuple
from bastion.store.sql.database import Database
from bastion.store.sql.rows import Rows
from bastion.store.sql.schema import passkeys, recovery_codes, recovery_tickets, totp_credentials


def _totp(row: RowMapping) -> TotpCredential:
    return TotpCredential(
        row["user_id"],
        row["sealed_secret"],
        row["created_at"],
        row["confirmed_at"],
        row["last_used_step"],
    )


def _passkey(row: RowMapping) -> Passkey:
    return Passkey(
        row["credential_id"],
        row["user_id"],
        row["public_key"],
        row["sign_count"],
        row["name"],
        load_tuple(row["transports"]),
        row["backed_up"],
        row["created_at"],
        row["last_used_at"],
    )


def _ticket(row: RowMapping) -> RecoveryTicket:
    return RecoveryTicket(row["user_id"], row["reset_mfa"], row["created_by"], row["expires_at"])


class SqlFactorStore:
    def __init__(self, database: Database) -> None:
        self._rows = Rows(database)

    # --- TOTP ----------------------------------------------------------------------------

    async def totp(self, user_id: str) -> TotpCredential | None:
        return await self._rows.one(
            select(totp_credentials).where(totp_credentials.c.user_id == user_id), _totp
        )

    async def has_totp(self, user_id: str) -> bool:
        credential = await self.totp(user_id)
        return credential is not None and credential.confirmed

    async def start_totp(self, user_id: str, sealed_secret: bytes, now: float) -> None:
        unconfirmed = and_(
            totp_credentials.c.user_id == user_id, totp_credentials.c.confirmed_at.is_(None)
        )
        async with self._rows.transaction() as tx:
            await tx.run(delete(totp_credentials).where(unconfirmed))
            await tx.run(
                insert(totp_credentials).values(
                    user_id=user_id, sealed_secret=sealed_secret, created_at=now
                )
            )

    async def use_totp_step(self, user_id: str, step: int, now: float, *, confirm: bool) -> bool:
        values: dict[str, object] = {"last_used_step": step}
        if confirm:
            values["confirmed_at"] = now
        condition = and_(
            totp_credentials.c.user_id == user_id,
            or_(
                totp_credentials.c.last_used_step.is_(None),
                totp_credentials.c.last_used_step < step,
            ),
            totp_credentials.c.confirmed_at.is_(None)
            if confirm
            else totp_credentials.c.confirmed_at.is_not(None),
        )
        return bool(
            await self._rows.run(update(totp_credentials).where(condition).values(**values))
        )

    async def remove_totp(self, user_id: str) -> bool:
        async with self._rows.transaction() as tx:
            removed = await tx.run(
                delete(totp_credentials).where(totp_credentials.c.user_id == user_id)
            )
            await tx.run(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
        return bool(removed)

    # --- recovery codes --------------------------------------------------------------------

    async def replace_recovery_codes(self, user_id: str, hashes: list[str], now: float) -> None:
        async with self._rows.transaction() as tx:
            await tx.run(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
            await tx.run(
                insert(recovery_codes),
                [{"code_hash": h, "user_id": user_id, "created_at": now} for h in hashes],
            )

    async def use_recovery_code(self, user_id: str, code_hash: str, now: float) -> bool:
        condition = and_(
            recovery_codes.c.code_hash == code_hash,
            recovery_codes.c.user_id == user_id,
            recovery_codes.c.used_at.is_(None),
        )
        return bool(
            await self._rows.run(update(recovery_codes).where(condition).values(used_at=now))
        )

    async def recovery_codes_left(self, user_id: str) -> int:
        unused = and_(recovery_codes.c.user_id == user_id, recovery_codes.c.used_at.is_(None))
        return int(await self._rows.value(select(func.count()).where(unused)) or 0)

    # --- passkeys ------------------------------------------------------------------------

    async def add_passkey(self, passkey: Passkey) -> None:
        await self._rows.run(
            insert(passkeys).values(
                credential_id=passkey.credential_id,
                user_id=passkey.user_id,
                public_key=passkey.public_key,
                sign_count=passkey.sign_count,
                name=passkey.name,
                transports=dump_list(passkey.transports),
                backed_up=passkey.backed_up,
                created_at=passkey.created_at,
            )
        )

    async def passkeys(self, user_id: str) -> list[Passkey]:
        return await self._passkeys(passkeys.c.user_id == user_id)

    async def passkey(self, credential_id: str) -> Passkey | None:
        found = await self._passkeys(passkeys.c.credential_id == credential_id)
        return found[0] if found else None

    async def _passkeys(self, condition: ColumnElement[bool]) -> list[Passkey]:
        return await self._rows.all(
            select(passkeys).where(condition).order_by(passkeys.c.created_at), _passkey
        )

    async def passkey_used(self, credential_id: str, sign_count: int, now: float) -> None:
        await self._rows.run(
            update(passkeys)
            .where(passkeys.c.credential_id == credential_id)
            .values(sign_count=sign_count, last_used_at=now)
        )

    async def remove_passkey(self, user_id: str, credential_id: str) -> bool:
        condition = and_(passkeys.c.user_id == user_id, passkeys.c.credential_id == credential_id)
        return bool(await self._rows.run(delete(passkeys).where(condition)))

    # --- whole account -------------------------------------------------------------------

    async def remove_all(self, user_id: str) -> None:
        async with self._rows.transaction() as tx:
            for table in (totp_credentials, recovery_codes, passkeys, recovery_tickets):
                await tx.run(delete(table).where(table.c.user_id == user_id))

    # --- operator recovery tickets -------------------------------------------------------

    async def add_ticket(self, ticket_hash: str, ticket: RecoveryTicket, now: float) -> None:
        await self._rows.run(
            insert(recovery_tickets).values(
                ticket_hash=ticket_hash,
                user_id=ticket.user_id,
                reset_mfa=ticket.reset_mfa,
                created_by=ticket.created_by,
                created_at=now,
                expires_at=ticket.expires_at,
            )
        )

    async def ticket(self, ticket_hash: str, now: float) -> RecoveryTicket | None:
        return await self._rows.one(
            select(recovery_tickets).where(_usable(ticket_hash, now)), _ticket
        )

    async def use_ticket(self, ticket_hash: str, now: float) -> bool:
        return bool(
            await self._rows.run(
                update(recovery_tickets).where(_usable(ticket_hash, now)).values(used_at=now)
            )
        )


def _usable(ticket_hash: str, now: float) -> ColumnElement[bool]:
    return and_(
        recovery_tickets.c.ticket_hash == ticket_hash,
        recovery_tickets.c.used_at.is_(None),
        recovery_tickets.c.expires_at > now,
    )
