"""Account operations shared by the account page, the CLI and the admin API.

Each operation emits its audit event here, so every entry point records the same facts.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from bastion.accounts import recovery_codes, totp
from bastion.accounts.levels import Policy
from bastion.accounts.records import RecoveryTicket, User
from bastion.audit import AuditEvent, Outcome
from bastion.authserver import lifecycle
from bastion.authserver.server import AuthServer
from bastion.authserver.signin import totp_aad
from bastion.errors import AccountRuleError, NotFound
from bastion.texts import Text


@dataclass(frozen=True)
class TotpEnrolment:
    secret: str
    uri: str
    qr_svg: str


def ticket_hash(ticket: str) -> str:
    # Tickets carry 256 random bits, so a plain hash is as good as a slow one.
    return hashlib.sha256(f"recovery-ticket|{ticket}".encode()).hexdigest()


def describe(user: User) -> dict[str, Any]:
    return {
        "user_id": user.user_id,
        "username": user.username,
        "enabled": user.enabled,
        "created_at": user.created_at,
        "tokens_valid_after": user.tokens_valid_after,
        "auth_policy": user.auth_policy,
    }


class Accounts:
    def __init__(self, server: AuthServer, actor: str) -> None:
        self.server = server
        self.actor = actor

    def _audit(self, action: str, subject: str, **details: object) -> None:
        self.server.audit.emit(
            AuditEvent(action, Outcome.SUCCESS, actor=self.actor, target=subject, details=details)
        )

    async def user(self, username: str) -> User:
        user = await self.server.users.by_username(username)
        if user is None:
            raise NotFound(f"no user {username!r}")
        return user

    # --- users -----------------------------------------------------------------------------

    async def create(self, username: str, password: str) -> User:
        """Raises ``WeakPassword`` (policy) or ``UserExists``."""
        if not username or len(username) > 200 or username != username.strip():
            raise AccountRuleError(
                Text("a username has 1-200 characters and no surrounding spaces")
            )
        self.server.passwords.check_policy(password, username)
        hashed = self.server.passwords.hash(password)
        user = await self.server.users.create(username, hashed, self.server.clock.now())
        self._audit("users.create", user.user_id)
        return user

    async def set_enabled(self, user: User, enabled: bool) -> None:
        """Disabling also revokes every session and token the user holds."""
        await self.server.users.set_enabled(user.user_id, enabled)
        if not enabled:
            await self.revoke_all(user)
        self._audit("users.enable" if enabled else "users.disable", user.user_id)

    async def revoke_all(self, user: User) -> dict[str, int]:
        """Lost phone: every session, refresh-token family and access token stops working."""
        return await lifecycle.revoke_user(
            self.server.grants, self.server.sessions, user.user_id, self.actor
        )

    async def set_password(self, user: User, password: str) -> None:
        self.server.passwords.check_policy(password, user.username)
        await self.server.users.set_password_hash(
            user.user_id, self.server.passwords.hash(password)
        )
        self._audit("accounts.password.changed", user.user_id)

    async def set_policy(self, user: User, policy: Policy) -> None:
        """A policy must be satisfiable by factors the user already holds, or nobody could
        sign in to the account again."""
        passkeys = await self.server.factors.passkeys(user.user_id)
        has_totp = await self.server.factors.has_totp(user.user_id)
        if policy is Policy.PASSKEY and not passkeys:
            raise AccountRuleError(Text("the user has no passkey; register one first"))
        if policy is Policy.MFA and not (passkeys or has_totp):
            raise AccountRuleError(
                Text("the user has no second factor; enrol TOTP or a passkey first")
            )
        await self.server.users.set_policy(user.user_id, policy.value)
        self._audit("accounts.policy.changed", user.user_id, policy=policy.value)

    async def delete(self, user: User) -> None:
        """Revoke everything, then remove the account and every factor, consent and session
        row that names it; audit records keep only the opaque user id."""
        await self.revoke_all(user)
        await self.server.consents.revoke(user.user_id)
        await self.server.factors.remove_all(user.user_id)
        await self.server.sessions.forget(user.user_id)
        await self.server.users.delete(user.user_id)
        self._audit("users.delete", user.user_id)

    # --- sessions and app grants -------------------------------------------------------------

    async def revoke_session(self, subject: str, session_id: str) -> bool:
        """End one browser session and the refresh-token families signed in through it."""
        # Only the subject's own sessions: a session id from another account does nothing.
        if session_id not in {
            s.session_id for s in await self.server.sessions.active(subject, 0.0)
        }:
            return False
        await self.server.sessions.revoke(self.server.clock.now(), session_id=session_id)
        families = await self.server.access.revoke_families(
            "session_revoked", self.actor, subject=subject, session_id=session_id
        )
        self._audit("accounts.session.revoked", subject, families=len(families))
        return True

    async def revoke_app(self, subject: str, client_id: str) -> int:
        """Forget consent for an app and end its refresh-token families."""
        await self.server.consents.revoke(subject, client_id)
        families = await self.server.access.revoke_families(
            "consent_revoked", self.actor, subject=subject, client_id=client_id
        )
        self._audit("accounts.app.revoked", subject, client_id=client_id)
        return len(families)

    # --- TOTP and recovery codes -----------------------------------------------------------

    async def start_totp(self, user: User) -> TotpEnrolment:
        if await self.server.factors.has_totp(user.user_id):
            raise AccountRuleError(Text("an authenticator app is already set up; remove it first"))
        secret = totp.new_secret()
        sealed = self.server.envelope.seal(secret.encode(), totp_aad(user.user_id))
        await self.server.factors.start_totp(user.user_id, sealed, self.server.clock.now())
        return self.enrolment(user, secret)

    def enrolment(self, user: User, secret: str) -> TotpEnrolment:
        label = user.username.replace(":", " ")
        issuer = self.server.settings.accounts.totp_issuer.replace(":", " ")
        uri = totp.provisioning_uri(secret, label, issuer)
        return TotpEnrolment(secret, uri, totp.qr_svg(uri))

    async def pending_totp(self, user: User) -> TotpEnrolment | None:
        current = await self.server.factors.totp(user.user_id)
        if current is None or current.confirmed:
            return None
        secret = self.server.envelope.open(current.sealed_secret, totp_aad(user.user_id))
        return self.enrolment(user, secret.decode())

    async def confirm_totp(self, user: User, code: str) -> list[str] | None:
        """RFC 6238 enrolment ends with a first valid code; returns fresh recovery codes."""
        current = await self.server.factors.totp(user.user_id)
        if current is None or current.confirmed:
            return None
        now = self.server.clock.now()
        secret = self.server.envelope.open(current.sealed_secret, totp_aad(user.user_id))
        step = totp.match(secret.decode(), code, now, current.last_used_step)
        if step is None or not await self.server.factors.use_totp_step(
            user.user_id, step, now, confirm=True
        ):
            return None
        self._audit("accounts.totp.enrolled", user.user_id)
        return await self.new_recovery_codes(user)

    async def remove_totp(self, user: User) -> None:
        if Policy(user.auth_policy) is Policy.MFA and not await self.server.factors.passkeys(
            user.user_id
        ):
            raise AccountRuleError(
                Text("this account requires a second factor; add a passkey first")
            )
        await self.server.factors.remove_totp(user.user_id)
        self._audit("accounts.totp.removed", user.user_id)

    async def new_recovery_codes(self, user: User) -> list[str]:
        """Ten single-use codes, shown once; only their keyed hashes are stored."""
        codes = recovery_codes.generate()
        hashes = [recovery_codes.digest(self.server.recovery_key, user.user_id, c) for c in codes]
        await self.server.factors.replace_recovery_codes(
            user.user_id, [h for h in hashes if h], self.server.clock.now()
        )
        self._audit("accounts.recovery_codes.issued", user.user_id, count=len(codes))
        return codes

    # --- passkeys ------------------------------------------------------------------------------

    async def remove_passkey(self, user: User, credential_id: str) -> bool:
        remaining = [
            p
            for p in await self.server.factors.passkeys(user.user_id)
            if p.credential_id != credential_id
        ]
        policy = Policy(user.auth_policy)
        has_totp = await self.server.factors.has_totp(user.user_id)
        if not remaining and (policy is Policy.PASSKEY or (policy is Policy.MFA and not has_totp)):
            raise AccountRuleError(
                Text("this account's policy needs this passkey; add another first")
            )
        removed = await self.server.factors.remove_passkey(user.user_id, credential_id)
        if removed:
            self._audit("accounts.passkey.removed", user.user_id)
        return removed

    # --- operator recovery -----------------------------------------------------------------------

    async def recovery_link(self, user: User, *, reset_mfa: bool) -> str:
        ticket = secrets.token_urlsafe(32)
        now = self.server.clock.now()
        lifetime = self.server.settings.accounts.recovery_link_lifetime
        await self.server.factors.add_ticket(
            ticket_hash(ticket),
            RecoveryTicket(user.user_id, reset_mfa, self.actor, now + lifetime),
            now,
        )
        self._audit("accounts.recovery.issued", user.user_id, reset_mfa=reset_mfa)
        return f"{self.server.settings.issuer}/recover?{urlencode({'ticket': ticket})}"

    async def redeem(self, ticket: str, password: str) -> User | None:
        """Set a new password with a recovery ticket; reset MFA only if the operator asked."""
        now = self.server.clock.now()
        found = await self.server.factors.ticket(ticket_hash(ticket), now)
        user = await self.server.users.get(found.user_id) if found else None
        if found is None or user is None:
            return None
        # Checked before the ticket is spent, so a refused password leaves the link usable.
        self.server.passwords.check_policy(password, user.username)
        if not await self.server.factors.use_ticket(ticket_hash(ticket), now):
            return None
        await self.set_password(user, password)
        await self.revoke_all(user)
        if found.reset_mfa:
            await self.server.factors.remove_all(user.user_id)
            # The policy must stay satisfiable: without factors it falls back to password,
            # and the audit trail says so.
            await self.server.users.set_policy(user.user_id, Policy.PASSWORD.value)
        self._audit(
            "accounts.recovery.redeemed",
            user.user_id,
            reset_mfa=found.reset_mfa,
            by=found.created_by,
        )
        return await self.server.users.get(user.user_id)
