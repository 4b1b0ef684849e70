"""The ``[accounts]`` tables: password policy, sign-in throttling, second factors.

See docs/configuration.md#accounts and docs/accounts.md.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from bastion.configtypes import Duration, Section


class PasswordSettings(Section):
    """NIST SP 800-63B §5.1.1.2: a floor on length, room for passphrases, no composition rules."""

    min_length: int = Field(8, ge=8, le=64)
    max_length: int = Field(256, ge=64, le=4096)
    argon2_time_cost: int = Field(3, ge=1, le=20)
    argon2_memory_kib: int = Field(65_536, ge=8_192, le=4_194_304)
    argon2_parallelism: int = Field(1, ge=1, le=16)


class ThrottleSettings(Section):
    account_free_failures: int = Field(5, ge=1, le=100)
    account_base_delay: Duration = 1.0
    account_max_delay: Duration = 300.0
    account_window: Duration = 900.0
    ip_failures: int = Field(50, ge=1)
    ip_window: Duration = 900.0
    global_failures: int = Field(1000, ge=1)
    global_window: Duration = 60.0
    spray_accounts_per_ip: int = Field(10, ge=2)
    stuffing_ips_per_account: int = Field(10, ge=2)

    @model_validator(mode="after")
    def _delays(self) -> ThrottleSettings:
        if not 0 < self.account_base_delay <= self.account_max_delay:
            raise ValueError("account_base_delay must be positive and at most account_max_delay")
        if min(self.account_window, self.ip_window, self.global_window) <= 0:
            raise ValueError("throttle windows must be positive")
        if self.account_max_delay > self.account_window:
            # Otherwise the failure count would expire while the account is still delayed,
            # handing an attacker a fresh set of free attempts.
            raise ValueError("account_max_delay cannot exceed account_window")
        return self


class AccountSettings(Section):
    passwords: PasswordSettings = PasswordSettings()
    throttle: ThrottleSettings = ThrottleSettings()
    totp_issuer: str = Field("Bastion", min_length=1, max_length=64)
    passkey_rp_id: str | None = Field(None, max_length=253)
    passkey_rp_name: str = Field("Bastion", min_length=1, max_length=64)
    reauthentication_window: Duration = 900.0
    recovery_link_lifetime: Duration = 86_400.0
    device_cookie_lifetime: Duration = 180 * 86_400.0
    admin_scope: str = Field("bastion:admin", min_length=1, max_length=128)
