"""Device records in SQL (``bastion.device.records.DeviceStore``).

The rules that must hold across processes are the database's, so they hold on SQLite
and PostgreSQL alike under any concurrency:

* one App Attest key, one installation, and one DPoP key, one live installation: an
  insert that would break ``devices.key_id``'s unique key or the unique index over the
  thumbprints of devices not revoked inserts nothing (``ON CONFLICT DO NOTHING``), and
  ``add`` raises ``DeviceKeyInUse``;
* an assertion's counter only moves forward (Apple, "Validating Apps That Connect to
  Your Server", assertion step 5): ``UPDATE ... WHERE counter < :new AND revoked_at IS
  NULL``, so of two assertions racing with the same counter exactly one changes a row;
* a revocation happens once: ``UPDATE ... WHERE revoked_at IS NULL RETURNING``.

Values longer than their columns, or with NUL characters, are refused here with
``InvalidValue`` (PostgreSQL would raise a driver error, SQLite would store them), and
looked up as absent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, get_args

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from bastion.device.records import Device, Level, Platform
from bastion.errors import DeviceKeyInUse, InvalidValue
from bastion.store.sql.codec import dump_map, load_map
from bastion.store.sql.database import Database
from bastion.store.sql.rows import Row, Rows
from bastion.store.sql.schema import device_users, devices

# The authenticator data's sign count is 32 bits (WebAuthn §6.1); nothing larger is an
# assertion's counter.
MAX_COUNTER = 2**32 - 1
# The most records one listing returns.
MAX_LIST = 1000

PLATFORMS: frozenset[str] = frozenset(get_args(Platform))
LEVELS: frozenset[str] = frozenset(get_args(Level))


def _width(column: ColumnElement[Any]) -> int:
    length = getattr(column.type, "length", None)
    assert isinstance(length, int)
    return length


WIDTHS: dict[str, int] = {
    name: _width(devices.c[name])
    for name in (
        "device_id",
        "platform",
        "client_id",
        "level",
        "key_id",
        "environment",
        "app_version",
        "dpop_jkt",
        "registered_client_id",
        "revoked_reason",
    )
}
WIDTHS["user_id"] = _width(device_users.c.user_id)


def _fits(name: str, value: str | None) -> bool:
    # PostgreSQL text cannot hold NUL; no identifier Bastion makes or accepts has one.
    return value is None or (len(value) <= WIDTHS[name] and "\x00" not in value)


def _check(**values: str | None) -> None:
    """Refuse a value its column cannot hold, naming the field (never echoing it)."""
    for name, value in values.items():
        if not _fits(name, value):
            raise InvalidValue(f"{name} must be at most {WIDTHS[name]} characters, without NUL")


def _device(row: Row, user_ids: Sequence[str] = ()) -> Device:
    return Device(
        device_id=row["device_id"],
        platform=row["platform"],
        client_id=row["client_id"],
        level=row["level"],
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        attested_at=row["attested_at"],
        key_id=row["key_id"],
        public_key=row["public_key"],
        counter=int(row["counter"]),
        environment=row["environment"],
        receipt=row["receipt"],
        verdict=load_map(row["verdict"]),
        app_version=row["app_version"],
        dpop_jkt=row["dpop_jkt"],
        encryption_key=load_map(row["encryption_key"]),
        registered_client_id=row["registered_client_id"],
        user_ids=tuple(user_ids),
        revoked_at=row["revoked_at"],
        revoked_reason=row["revoked_reason"],
    )


class SqlDeviceStore:
    def __init__(self, database: Database) -> None:
        self._rows = Rows(database)

    async def add(self, device: Device) -> None:
        if device.platform not in PLATFORMS:
            raise InvalidValue("platform must be one of " + ", ".join(sorted(PLATFORMS)))
        if device.level not in LEVELS:
            raise InvalidValue("level must be one of " + ", ".join(sorted(LEVELS)))
        if not 0 <= device.counter <= MAX_COUNTER:
            raise InvalidValue("counter is out of range")
        _check(
            device_id=device.device_id,
            client_id=device.client_id,
            key_id=device.key_id,
            environment=device.environment,
            app_version=device.app_version,
            dpop_jkt=device.dpop_jkt,
            registered_client_id=device.registered_client_id,
            revoked_reason=device.revoked_reason,
        )
        for user_id in device.user_ids:
            _check(user_id=user_id)
        async with self._rows.transaction() as tx:
            inserted = await tx.insert_new(
                devices,
                device_id=device.device_id,
                platform=device.platform,
                client_id=device.client_id,
                level=device.level,
                first_seen=device.first_seen,
                last_seen=device.last_seen,
                attested_at=device.attested_at,
                key_id=device.key_id,
                public_key=device.public_key,
                counter=device.counter,
                environment=device.environment,
                receipt=device.receipt,
                verdict=dump_map(device.verdict),
                app_version=device.app_version,
                dpop_jkt=device.dpop_jkt,
                encryption_key=dump_map(device.encryption_key),
                registered_client_id=device.registered_client_id,
                revoked_at=device.revoked_at,
                revoked_reason=device.revoked_reason,
            )
            if not inserted:
                raise DeviceKeyInUse(await _holder(tx, device))
            for user_id in dict.fromkeys(device.user_ids):
                await tx.insert_new(
                    device_users,
                    device_id=device.device_id,
                    user_id=user_id,
                    first_seen=device.first_seen,
                )

    async def get(self, device_id: str) -> Device | None:
        if not _fits("device_id", device_id):
            return None
        return await self._one(devices.c.device_id == device_id)

    async def by_key_id(self, key_id: str) -> Device | None:
        if not _fits("key_id", key_id):
            return None
        return await self._one(devices.c.key_id == key_id)

    async def by_jkt(self, jkt: str) -> Device | None:
        if not _fits("dpop_jkt", jkt):
            return None
        # A thumbprint has at most one live device and any number of revoked ones: the
        # live one if there is one, else the one revoked last.
        return await self._one(
            devices.c.dpop_jkt == jkt,
            devices.c.revoked_at.is_(None).desc(),
            devices.c.revoked_at.desc(),
        )

    async def advance_counter(self, device_id: str, counter: int, now: float) -> bool:
        if not _fits("device_id", device_id) or not 0 <= counter <= MAX_COUNTER:
            return False
        changed = await self._rows.run(
            update(devices)
            .where(
                and_(
                    devices.c.device_id == device_id,
                    devices.c.counter < counter,
                    devices.c.revoked_at.is_(None),
                )
            )
            # The assertion was signed by the attested key: fresh evidence, so the
            # attestation's age counts from it (records.DeviceStore.advance_counter).
            .values(
                counter=counter,
                attested_at=_later(devices.c.attested_at, now),
                last_seen=_later(devices.c.last_seen, now),
            )
        )
        return changed == 1

    async def reattest(
        self,
        device_id: str,
        *,
        level: Level,
        verdict: Mapping[str, Any] | None,
        app_version: str | None,
        now: float,
    ) -> None:
        """A revoked device stays as it was revoked: it must attest again as a new one.
        A ``verdict`` or ``app_version`` of None keeps the one recorded."""
        if level not in LEVELS:
            raise InvalidValue("level must be one of " + ", ".join(sorted(LEVELS)))
        _check(device_id=device_id, app_version=app_version)
        await self._rows.run(
            update(devices)
            .where(and_(devices.c.device_id == device_id, devices.c.revoked_at.is_(None)))
            .values(
                level=level,
                verdict=func.coalesce(dump_map(verdict), devices.c.verdict),
                app_version=func.coalesce(app_version, devices.c.app_version),
                attested_at=now,
                last_seen=_later(devices.c.last_seen, now),
            )
        )

    async def seen(
        self,
        device_id: str,
        now: float,
        *,
        user_id: str | None = None,
        app_version: str | None = None,
    ) -> None:
        """The record keeps what was observed, for a revoked device too; ``last_seen``
        never moves back (processes whose clocks disagree may report out of order)."""
        _check(device_id=device_id, user_id=user_id, app_version=app_version)
        async with self._rows.transaction() as tx:
            found = await tx.run(
                update(devices)
                .where(devices.c.device_id == device_id)
                .values(
                    last_seen=_later(devices.c.last_seen, now),
                    app_version=func.coalesce(app_version, devices.c.app_version),
                )
            )
            if found and user_id is not None:
                await tx.insert_new(
                    device_users, device_id=device_id, user_id=user_id, first_seen=now
                )

    async def set_encryption_key(self, device_id: str, jwk: Mapping[str, Any]) -> None:
        _check(device_id=device_id)
        await self._rows.run(
            update(devices)
            .where(devices.c.device_id == device_id)
            .values(encryption_key=dump_map(jwk))
        )

    async def set_registered_client(self, device_id: str, client_id: str) -> None:
        _check(device_id=device_id, registered_client_id=client_id)
        await self._rows.run(
            update(devices)
            .where(devices.c.device_id == device_id)
            .values(registered_client_id=client_id)
        )

    async def list_devices(
        self,
        *,
        user_id: str | None = None,
        client_id: str | None = None,
        include_revoked: bool = False,
        limit: int = 100,
    ) -> list[Device]:
        """``client_id`` matches the app a device attested for and the client it
        registered; at most ``MAX_LIST`` records."""
        if not _fits("user_id", user_id) or not _fits("client_id", client_id):
            return []
        limit = max(0, min(limit, MAX_LIST))
        conditions: list[ColumnElement[bool]] = []
        if not include_revoked:
            conditions.append(devices.c.revoked_at.is_(None))
        if client_id is not None:
            conditions.append(
                or_(devices.c.client_id == client_id, devices.c.registered_client_id == client_id)
            )
        if user_id is not None:
            conditions.append(
                devices.c.device_id.in_(
                    select(device_users.c.device_id).where(device_users.c.user_id == user_id)
                )
            )
        async with self._rows.transaction() as tx:
            rows = await tx.all(
                select(devices)
                .where(*conditions)
                .order_by(devices.c.last_seen.desc(), devices.c.device_id)
                .limit(limit),
                _same,
            )
            users = await _users(tx, [row["device_id"] for row in rows])
        return [_device(row, users.get(row["device_id"], ())) for row in rows]

    async def revoke(self, device_id: str, now: float, reason: str) -> Device | None:
        if not _fits("device_id", device_id):
            return None
        _check(revoked_reason=reason)
        async with self._rows.transaction() as tx:
            # Only the revocation and its reason change: the row it returns, without them,
            # is the record as it was.
            revoked = await tx.one(
                update(devices)
                .where(and_(devices.c.device_id == device_id, devices.c.revoked_at.is_(None)))
                .values(revoked_at=now, revoked_reason=reason)
                .returning(*devices.c),
                _same,
            )
            if revoked is None:
                return None
            users = await _users(tx, [device_id])
        before = _device(revoked, users.get(device_id, ()))
        return replace(before, revoked_at=None, revoked_reason=None)

    async def _one(self, condition: ColumnElement[bool], *order: Any) -> Device | None:
        async with self._rows.transaction() as tx:
            row = await tx.one(select(devices).where(condition).order_by(*order).limit(1), _same)
            if row is None:
                return None
            users = await _users(tx, [row["device_id"]])
        return _device(row, users.get(row["device_id"], ()))


def _same(row: Row) -> Row:
    return row


def _later(column: ColumnElement[Any], now: float) -> ColumnElement[Any]:
    """The later of a column's time and ``now``, in SQL both databases speak."""
    return case((column < now, now), else_=column)


async def _users(tx: Rows, device_ids: list[str]) -> dict[str, list[str]]:
    """The users bound to each device, in the order they were first seen."""
    if not device_ids:
        return {}
    pairs = await tx.all(
        select(device_users.c.device_id, device_users.c.user_id)
        .where(device_users.c.device_id.in_(device_ids))
        .order_by(device_users.c.first_seen, device_users.c.user_id),
        lambda row: (str(row["device_id"]), str(row["user_id"])),
    )
    users: dict[str, list[str]] = {}
    for device_id, user_id in pairs:
        users.setdefault(device_id, []).append(user_id)
    return users


async def _holder(tx: Rows, device: Device) -> str:
    """Why an insert inserted nothing, for the operator's log (no key material)."""
    if await tx.value(select(devices.c.device_id).where(devices.c.device_id == device.device_id)):
        return f"device {device.device_id!r} is already recorded"
    if device.key_id is not None and await tx.value(
        select(devices.c.device_id).where(devices.c.key_id == device.key_id)
    ):
        return "the App Attest key is already recorded for another device"
    return "the DPoP key is bound to another device that is not revoked"
