"""Everything the authorization server's endpoints need, built once per process."""

from __future__ import annotations

from dataclasses import dataclass

from bastion.accounts.passwords import Passwords
from bastion.accounts.stores import FactorStore, SessionStore, UserStore
from bastion.accounts.throttle import LoginThrottle, ThrottleLimits
from bastion.audit import AuditPipeline
from bastion.authserver.access import AccessTokens
from bastion.authserver.dpop import Dpop
from bastion.authserver.grants import GrantContext
from bastion.authserver.registry import ClientRegistry, client_from_settings
from bastion.authserver.stores import ConsentStore
from bastion.clock import Clock
from bastion.config import Settings
from bastion.crypto.derive import derive_key
from bastion.crypto.envelope import Envelope
from bastion.crypto.signing import SigningKeys
from bastion.device.policies import RiskPolicies
from bastion.device.records import DeviceStore
from bastion.device.signals import SignalSources
from bastion.store.protocols import HotStore
from bastion.store.sql.clients import SqlClientStore
from bastion.store.sql.consents import SqlConsentStore
from bastion.store.sql.database import Database
from bastion.store.sql.devices import SqlDeviceStore
from bastion.store.sql.factors import SqlFactorStore
from bastion.store.sql.grants import SqlGrantStore
from bastion.store.sql.sessions import SqlSessionStore
from bastion.store.sql.users import SqlUserStore


@dataclass
class AuthServer:
    settings: Settings
    clients: ClientRegistry
    users: UserStore
    consents: ConsentStore
    sessions: SessionStore
    hot: HotStore
    grants: GrantContext
    cookie_key: bytes
    passwords: Passwords
    factors: FactorStore
    throttle: LoginThrottle
    # Seals TOTP secrets at rest; recovery codes and tickets are keyed hashes under
    # ``recovery_key``.
    envelope: Envelope
    recovery_key: bytes
    dpop: Dpop
    # Attested app installations (bastion.device.records), bound to DPoP keys.
    devices: DeviceStore
    # Device risk policies of sign-in, token issuance, refresh and gateway routes.
    risk: RiskPolicies

    @property
    def token_endpoint(self) -> str:
        """The token endpoint as clients reach it: what a DPoP proof's htu names."""
        return f"{self.settings.issuer}/token"

    @property
    def audit(self) -> AuditPipeline:
        return self.grants.audit

    @property
    def clock(self) -> Clock:
        return self.grants.clock

    @property
    def access(self) -> AccessTokens:
        return self.grants.access


def build_auth_server(
    settings: Settings,
    database: Database,
    hot: HotStore,
    keys: SigningKeys,
    audit: AuditPipeline,
    clock: Clock,
    master_key: bytes,
) -> AuthServer:
    grant_store = SqlGrantStore(database)
    users = SqlUserStore(database)
    access = AccessTokens(settings, keys, grant_store, users, hot, audit, clock)
    declared = [client_from_settings(c, i) for i, c in enumerate(settings.oauth.clients)]
    registry = ClientRegistry(declared, SqlClientStore(database))
    throttle = LoginThrottle(hot, clock, throttle_limits(settings), audit)
    devices = SqlDeviceStore(database)
    risk = build_risk(settings, devices, hot, clock, audit, throttle, users)
    grants = GrantContext(
        settings,
        access,
        keys,
        grant_store,
        users,
        audit,
        clock,
        refresh_key=derive_key(master_key, "refresh-token-mac"),
        # Without a device policy the token endpoint has nothing to judge and no user to
        # bind to a device: no device lookup on a grant's path.
        risk=risk if devices_judged(settings) else None,
    )
    return AuthServer(
        settings=settings,
        clients=registry,
        users=users,
        consents=SqlConsentStore(database),
        sessions=SqlSessionStore(database),
        hot=hot,
        grants=grants,
        cookie_key=derive_key(master_key, "browser-cookies"),
        passwords=Passwords(settings.accounts.passwords),
        factors=SqlFactorStore(database),
        throttle=throttle,
        envelope=Envelope(master_key),
        recovery_key=derive_key(master_key, "recovery-codes"),
        dpop=Dpop(settings.oauth.dpop, master_key, hot, audit, clock, registry),
        devices=devices,
        risk=risk,
    )


def devices_judged(settings: Settings) -> bool:
    """Whether any device risk policy is configured (Bastion's actions or a route)."""
    device = settings.device
    return any((device.sign_in, device.token, device.refresh)) or any(
        route.device is not None for route in settings.gateway.routes
    )


def build_risk(
    settings: Settings,
    devices: DeviceStore,
    hot: HotStore,
    clock: Clock,
    audit: AuditPipeline,
    throttle: LoginThrottle,
    users: UserStore,
) -> RiskPolicies:
    """The device risk judge every enforcement point shares."""

    async def username(user_id: str) -> str | None:
        user = await users.get(user_id)
        return None if user is None else user.username

    sources = SignalSources(
        devices=devices,
        hot=hot,
        clock=clock,
        clients={c.client_id: c.device for c in settings.oauth.clients if c.device is not None},
        velocity_window=settings.device.velocity_window,
        throttle=throttle,
        usernames=username,
    )
    return RiskPolicies(sources, settings.device.cohorts, audit)


def throttle_limits(settings: Settings) -> ThrottleLimits:
    throttle = settings.accounts.throttle
    return ThrottleLimits(**throttle.model_dump())
