"""Sign-in: checking each factor and deciding whether another one is needed.

The level a sign-in must reach is the strongest of: the interaction's requirement (the
client's policy and the request's ``acr_values``), and the account's own policy. A
password reaches ``password``; a one-time code or recovery code on top reaches ``mfa``;
a passkey with user verification reaches ``phishing-resistant`` on its own. An account
whose policy is ``passkey`` never accepts a password at all, so weaker methods cannot be
mixed into it.

A second factor is asked for only when the level requires it (per-request step-up, as
Keycloak's conditional flows do); set the account or client policy to ``mfa`` to ask
every time.
"""

from __future__ import annotations

from dataclasses import dataclass

from bastion.accounts import recovery_codes, totp
from bastion.accounts.levels import (
    ACR_PHISHING_RESISTANT,
    Policy,
    method_acr,
    needed,
    satisfies,
    strongest,
)
from bastion.accounts.records import User
from bastion.audit import AuditEvent, Outcome
from bastion.authserver.browser import Interaction
from bastion.authserver.server import AuthServer
from bastion.device.policies import Judgement
from bastion.device.risk import Action
from bastion.device.signals import RiskRequest
from bastion.texts import Text

# One message for every password failure, whether or not the account exists
# (OWASP ASVS V2.2; the response must not aid enumeration).
GENERIC_FAILURE = Text("The username or password is incorrect.")
CODE_FAILURE = Text("The code is incorrect or was already used.")
DEVICE_REFUSED = Text(
    "Signing in from this device is not allowed right now. Try again from the app on "
    "another device, or contact support."
)
TOTP = "totp"
PASSKEY = "passkey"


@dataclass(frozen=True)
class Failed:
    message: str
    status: int = 400
    retry_after: float = 0.0
    # A 403 tells the app (unmet_authentication_requirements) unless the refusal is
    # for the person at the page only (a device the risk policy denies).
    to_app: bool = True


@dataclass(frozen=True)
class NeedsSecondFactor:
    user: User
    amr: tuple[str, ...]
    methods: frozenset[str]


@dataclass(frozen=True)
class Authenticated:
    user: User
    acr: str
    amr: tuple[str, ...]


Step = Failed | NeedsSecondFactor | Authenticated


class SignIn:
    def __init__(self, server: AuthServer) -> None:
        self.server = server

    def _audit(self, action: str, outcome: Outcome, **details: object) -> None:
        self.server.audit.emit(AuditEvent(action, outcome, actor="browser", details=details))

    async def _throttled(self, username: str, ip: str, device_trusted: bool) -> Failed | None:
        verdict = await self.server.throttle.check(username, ip, device_trusted)
        if verdict.allowed:
            return None
        wait = max(1, round(verdict.retry_after))
        return Failed(
            Text("Too many attempts. Try again in %(wait)d seconds.", wait=wait),
            429,
            verdict.retry_after,
        )

    async def password(
        self,
        interaction: Interaction,
        username: str,
        password: str,
        ip: str,
        *,
        device_trusted: bool,
    ) -> Step:
        if throttled := await self._throttled(username, ip, device_trusted):
            return throttled
        server = self.server
        # Read before a success forgets them: the device risk policy weighs them.
        failures = await server.throttle.failures(username)
        user = await server.users.by_username(username)
        ok = server.passwords.verify(password, user.password_hash if user else None)
        if user is None or not ok or not user.enabled or user.password_hash is None:
            await server.throttle.failure(username, ip)
            self._audit("login.failed", Outcome.FAILURE, method="password", ip=ip)
            return Failed(GENERIC_FAILURE)
        await server.throttle.success(username, ip)
        if server.passwords.needs_rehash(user.password_hash):
            # The password is at hand only now, so this is when old parameters are upgraded.
            await server.users.set_password_hash(user.user_id, server.passwords.hash(password))
            self._audit("accounts.password.rehashed", Outcome.SUCCESS, subject=user.user_id)
        if Policy(user.auth_policy) is Policy.PASSKEY:
            self._audit(
                "login.refused", Outcome.DENIED, subject=user.user_id, reason="passkey_required"
            )
            return Failed(Text("This account signs in with a passkey."))
        return await self.next_step(
            interaction,
            user,
            ("pwd",),
            ip=ip,
            failed_sign_ins=failures,
            reveal=device_trusted,
        )

    async def next_step(
        self,
        interaction: Interaction,
        user: User,
        amr: tuple[str, ...],
        *,
        ip: str | None = None,
        failed_sign_ins: int | None = None,
        reveal: bool = True,
    ) -> Step:
        """Done if ``amr`` reaches the level needed; otherwise the second factors on offer.
        The device risk policy (``[device.sign_in]``) may raise the level or refuse.

        A refusal after a password alone says why only to a browser that signed in as
        this user before (``reveal``, its device cookie); anyone else sees the answer to
        a wrong password, so that the refusal does not confirm a guessed password."""
        required = self.required_level(interaction, user)
        judgement = await self._device_risk(interaction, user, ip, failed_sign_ins)
        if judgement is not None and judgement.enforced is Action.DENY:
            self._audit(
                "login.refused", Outcome.DENIED, subject=user.user_id, reason="device_denied"
            )
            if not reveal:
                return Failed(GENERIC_FAILURE)
            return Failed(DEVICE_REFUSED, 403, to_app=False)
        if judgement is not None and judgement.enforced is Action.STEP_UP:
            required = strongest(required, judgement.policy.step_up_acr)
        reached = method_acr(amr)
        if satisfies(reached, required):
            return Authenticated(user, reached, amr)
        methods = await self.second_factors(user, required)
        if not methods:
            self._audit(
                "login.refused", Outcome.DENIED, subject=user.user_id, reason="no_second_factor"
            )
            return Failed(
                Text(
                    "This sign-in needs a second factor (an authenticator app or a passkey) "
                    "that this account has not set up. Set one up on the account page, or ask "
                    "the operator for a recovery link."
                )
                if required != ACR_PHISHING_RESISTANT
                else Text("This sign-in needs a passkey, and this account has none."),
                403,
            )
        return NeedsSecondFactor(user, amr, methods)

    async def _device_risk(
        self,
        interaction: Interaction,
        user: User,
        ip: str | None,
        failed_sign_ins: int | None,
    ) -> Judgement | None:
        """The sign-in policy's judgement, at each interactive step (a password, a second
        factor, a passkey); a browser session already signed in is not judged again,
        the token endpoint judges the device that redeems the code.

        The browser has no DPoP key: the device is the one the authorization request's
        ``dpop_jkt`` names (RFC 9449 §10), a claim the browser cannot prove. The code it
        gets is bound to that key, so the claim is checked at the token endpoint; here
        it may only add risk and never meets ``require_attestation`` (``claimed``; the
        settings refuse that demand at sign-in anyway)."""
        policy = self.server.settings.device.sign_in
        if policy is None:
            return None
        request = interaction.request
        return await self.server.risk.judge(
            "sign_in",
            policy,
            RiskRequest(
                user_id=user.user_id,
                client_id=None if request is None else request.client_id,
                jkt=None if request is None else request.dpop_jkt,
                ip=ip,
                failed_sign_ins=failed_sign_ins,
                claimed=True,
            ),
        )

    @staticmethod
    def required_level(interaction: Interaction, user: User) -> str:
        return needed(interaction.required_acr, user.auth_policy)

    async def second_factors(self, user: User, required: str) -> frozenset[str]:
        methods: set[str] = set()
        # A code never reaches the phishing-resistant level, nor counts for a passkey account.
        offers_code = (
            required != ACR_PHISHING_RESISTANT and Policy(user.auth_policy) is not Policy.PASSKEY
        )
        if offers_code and await self.server.factors.has_totp(user.user_id):
            methods.add(TOTP)
        if await self.server.factors.passkeys(user.user_id):
            methods.add(PASSKEY)
        return frozenset(methods)

    async def code(self, interaction: Interaction, code: str, ip: str) -> Step:
        """A TOTP code, or one of the account's recovery codes, as the second factor."""
        server = self.server
        user = await server.users.get(interaction.pending_subject or "")
        if user is None or not user.enabled:
            return Failed(CODE_FAILURE)
        if TOTP not in await self.second_factors(user, self.required_level(interaction, user)):
            return Failed(Text("A code cannot complete this sign-in; use a passkey."), 403)
        if throttled := await self._throttled(user.username, ip, device_trusted=False):
            return throttled
        now = server.clock.now()
        credential = await server.factors.totp(user.user_id)
        accepted = False
        if credential is not None and credential.confirmed:
            secret = server.envelope.open(credential.sealed_secret, totp_aad(user.user_id))
            step = totp.match(secret.decode(), code, now, credential.last_used_step)
            accepted = step is not None and await server.factors.use_totp_step(
                user.user_id, step, now, confirm=False
            )
        if not accepted:
            digest = recovery_codes.digest(server.recovery_key, user.user_id, code)
            if digest and await server.factors.use_recovery_code(user.user_id, digest, now):
                accepted = True
                left = await server.factors.recovery_codes_left(user.user_id)
                self._audit(
                    "accounts.recovery_code.used", Outcome.SUCCESS, subject=user.user_id, left=left
                )
        if not accepted:
            await server.throttle.failure(user.username, ip)
            self._audit("login.failed", Outcome.FAILURE, method="otp", subject=user.user_id, ip=ip)
            return Failed(CODE_FAILURE)
        await server.throttle.success(user.username, ip)
        amr = tuple(sorted({*interaction.pending_amr, "otp", "mfa"}))
        return await self.next_step(interaction, user, amr, ip=ip)


def totp_aad(user_id: str) -> bytes:
    """Associated data binding a sealed TOTP secret to its user."""
    return f"totp|{user_id}".encode()
