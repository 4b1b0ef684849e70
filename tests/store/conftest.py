"""Every implementation of each store Protocol, for the contract suites beside this file.

Each fixture yields one implementation per parameter, typed as its Protocol, so a
contract test cannot lean on anything the Protocol does not promise. Where SQL is the
only implementation it runs on SQLite and on PostgreSQL (``migrated`` is parametrised
over both). A new implementation is one more parameter here; the contract then runs
against it unchanged.
"""

from __future__ import annotations

import pytest

from bastion.accounts.stores import FactorStore, SessionStore, UserStore
from bastion.authserver.stores import ClientStore, ConsentStore, GrantStore
from bastion.device.records import DeviceStore
from bastion.gateway.objects import OwnershipStore
from bastion.store.protocols import SigningKeyStore
from bastion.store.sql.clients import SqlClientStore
from bastion.store.sql.consents import SqlConsentStore
from bastion.store.sql.database import Database
from bastion.store.sql.devices import SqlDeviceStore
from bastion.store.sql.factors import SqlFactorStore
from bastion.store.sql.grants import SqlGrantStore
from bastion.store.sql.keys import SqlSigningKeyStore
from bastion.store.sql.ownership import SqlOwnershipStore
from bastion.store.sql.sessions import SqlSessionStore
from bastion.store.sql.users import SqlUserStore


@pytest.fixture
def user_store(migrated: Database) -> UserStore:
    return SqlUserStore(migrated)


@pytest.fixture
def session_store(migrated: Database) -> SessionStore:
    return SqlSessionStore(migrated)


@pytest.fixture
def factor_store(migrated: Database) -> FactorStore:
    return SqlFactorStore(migrated)


@pytest.fixture
def client_store(migrated: Database) -> ClientStore:
    return SqlClientStore(migrated)


@pytest.fixture
def consent_store(migrated: Database) -> ConsentStore:
    return SqlConsentStore(migrated)


@pytest.fixture
def grant_store(migrated: Database) -> GrantStore:
    return SqlGrantStore(migrated)


@pytest.fixture
def ownership_store(migrated: Database) -> OwnershipStore:
    return SqlOwnershipStore(migrated)


@pytest.fixture
def signing_key_store(migrated: Database) -> SigningKeyStore:
    return SqlSigningKeyStore(migrated)


@pytest.fixture
def device_store(migrated: Database) -> DeviceStore:
    return SqlDeviceStore(migrated)
