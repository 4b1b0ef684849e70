"""Accounts through the real app: second factors, step-up, throttling, enumeration, CSRF,
the account page, logout, recovery links and the admin API (NIST SP 800-63B, OWASP ASVS
V2/V3, RFC 6238, OpenID Connect Core and RP-Initiated Logout, RFC 9470)."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyotp
import pytest
from anyio.from_thread import BlockingPortal
from sqlalchemy import update
from starlette.testclient import TestClient

from bastion.accounts.levels import ACR_MFA, ACR_PASSWORD, ACR_PHISHING_RESISTANT, Policy
from bastion.authserver.accounts import Accounts
from bastion.runtime import Runtime
from bastion.store.sql.schema import browser_sessions
from bastion.web.app import BastionApp
from tests.authserver.conftest import (
    ADMIN_SECRET,
    APP_REDIRECT,
    ISSUER,
    PASSWORD,
    Server,
    approve,
    authorize_params,
    csrf_of,
    get_code,
    query_of,
    redeem,
    sign_in,
    start_server,
)


def runtime(client: TestClient) -> Runtime:
    app: Any = client.app
    while not isinstance(app, BastionApp):
        app = app.app
    return app.runtime


def portal(client: TestClient) -> BlockingPortal:
    """Runs coroutines on the app's own event loop (its stores live there)."""
    assert client.portal is not None
    return client.portal


def claims_of(token: object) -> dict[str, Any]:
    payload = str(token).split(".")[1]
    decoded: dict[str, Any] = orjson.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def audit_actions(server: Server) -> list[str]:
    lines = server.settings.audit_path.read_text().splitlines()
    return [orjson.loads(line)["action"] for line in lines]


@contextmanager
def other_browser(client: TestClient) -> Iterator[TestClient]:
    """The same app (one event loop, one runtime) seen from a browser with its own cookies."""
    saved = httpx.Cookies(client.cookies)
    client.cookies.clear()
    try:
        yield client
    finally:
        client.cookies = saved


def account_page(client: TestClient) -> str:
    """The account page's HTML, signing in first when needed."""
    response = client.get("/account")
    if response.status_code == 303:
        location = sign_in(client, response.headers["location"])
        assert location == "/account", location
        response = client.get("/account")
    assert response.status_code == 200, response.text
    return str(response.text)


def enrol_totp(client: TestClient) -> tuple[pyotp.TOTP, list[str]]:
    csrf = csrf_of(account_page(client))
    started = client.post("/account/totp-start", data={"csrf": csrf})
    assert started.status_code == 200
    assert "<svg" in started.text
    match = re.search(r'id="totp-secret">([A-Z2-7]+)<', started.text)
    assert match
    totp = pyotp.TOTP(match.group(1))
    confirmed = client.post("/account/totp-confirm", data={"csrf": csrf, "code": totp.now()})
    assert confirmed.status_code == 200
    codes = re.findall(r"<code[^>]*>([0-9a-z]{5}-[0-9a-z]{5})</code>", confirmed.text)
    assert len(codes) == 10
    return totp, codes


def next_code(totp: pyotp.TOTP) -> str:
    # The code of the next time step: accepted (±1 step, RFC 6238 §5.2) and unused so far.
    return totp.at(time.time() + 30)


def verify_step(client: TestClient, location: str, code: str) -> Any:
    assert location.startswith("/login/verify?"), location
    page = client.get(location)
    assert page.status_code == 200
    assert '<label for="code">Code</label>' in page.text
    return client.post(
        "/login/verify",
        data={
            "interaction": query_of(location)["interaction"],
            "csrf": csrf_of(page.text),
            "code": code,
        },
    )


def test_mfa_sign_in_with_totp_and_replay_refused(server: Server) -> None:
    """acr_values asking for MFA forces the second factor; the token says so (OpenID
    Connect Core §2 acr/amr, RFC 8176 amr values); a replayed code fails (RFC 6238 §5.2)."""
    client = server.client
    totp, _ = enrol_totp(client)
    client.cookies.clear()
    response = client.get("/authorize", params=authorize_params(acr_values=ACR_MFA))
    location = sign_in(client, response.headers["location"])
    code = next_code(totp)
    answer = verify_step(client, location, code)
    assert answer.status_code == 303
    location = approve(client, answer.headers["location"])
    tokens = redeem(client, query_of(location)["code"])
    claims = claims_of(tokens["access_token"])
    assert claims["acr"] == ACR_MFA
    assert {"pwd", "otp", "mfa"} <= set(claims["amr"])

    client.cookies.clear()
    response = client.get("/authorize", params=authorize_params(acr_values=ACR_MFA))
    location = sign_in(client, response.headers["location"])
    replayed = verify_step(client, location, code)
    assert replayed.status_code == 400
    assert "incorrect or was already used" in replayed.text
    assert "login.failed" in audit_actions(server)


def test_recovery_code_works_once(server: Server) -> None:
    """NIST SP 800-63B §5.1.2.2: a look-up secret is used once."""
    client = server.client
    _, codes = enrol_totp(client)
    for attempt, expected in ((1, 303), (2, 400)):
        client.cookies.clear()
        response = client.get("/authorize", params=authorize_params(acr_values=ACR_MFA))
        location = sign_in(client, response.headers["location"])
        answer = verify_step(client, location, codes[0].upper().replace("-", " "))
        assert answer.status_code == expected, attempt
    assert "accounts.recovery_code.used" in audit_actions(server)


def test_step_up_raises_the_existing_session(server: Server) -> None:
    """A password session asked for MFA goes straight to the second factor (RFC 9470 §4;
    OpenID Connect Core §3.1.2.1) and the session cookie is replaced (ASVS V3.2.1)."""
    client = server.client
    totp, _ = enrol_totp(client)
    client.cookies.clear()
    first = redeem(client, get_code(client))
    assert claims_of(first["access_token"])["acr"] == ACR_PASSWORD
    before = client.cookies.get("bastion-session")
    response = client.get("/authorize", params=authorize_params(acr_values=ACR_MFA))
    location = response.headers["location"]
    assert location.startswith("/login/verify?"), "no password again: only the missing factor"
    answer = verify_step(client, location, next_code(totp))
    assert answer.status_code == 303
    assert client.cookies.get("bastion-session") not in (None, before)
    # RFC 8252 §8.6: a private-use scheme redirect always shows the consent page.
    location = approve(client, answer.headers["location"])
    assert location.startswith(APP_REDIRECT)
    stepped = redeem(client, query_of(location)["code"])
    assert claims_of(stepped["access_token"])["acr"] == ACR_MFA
    # prompt=none cannot step up silently.
    client.cookies.clear()
    redeem(client, get_code(client))
    silent = client.get("/authorize", params=authorize_params(acr_values=ACR_MFA, prompt="none"))
    assert query_of(silent.headers["location"])["error"] == "interaction_required"


def test_phishing_resistant_level_refuses_codes(server: Server) -> None:
    """A request for the phishing-resistant level is not met by password + TOTP."""
    client = server.client
    enrol_totp(client)
    client.cookies.clear()
    response = client.get("/authorize", params=authorize_params(acr_values=ACR_PHISHING_RESISTANT))
    answer = client.post(
        "/login",
        data={
            "interaction": query_of(response.headers["location"])["interaction"],
            "csrf": csrf_of(client.get(response.headers["location"]).text),
            "username": "alice",
            "password": PASSWORD,
        },
    )
    assert answer.status_code == 303
    error = query_of(answer.headers["location"])
    assert error["error"] == "unmet_authentication_requirements"


def test_passkey_policy_refuses_passwords(server: Server) -> None:
    """An account whose policy is passkey never accepts a weaker method."""
    client = server.client
    rt = runtime(client)
    accounts = Accounts(rt.auth, "test")
    with pytest.raises(ValueError, match="no passkey"):
        portal(client).call(
            accounts.set_policy, portal(client).call(accounts.user, "alice"), Policy.PASSKEY
        )
    portal(client).call(rt.auth.users.set_policy, server.user_id, "passkey")
    response = client.get("/authorize", params=authorize_params())
    page = client.get(response.headers["location"])
    answer = client.post(
        "/login",
        data={
            "interaction": query_of(response.headers["location"])["interaction"],
            "csrf": csrf_of(page.text),
            "username": "alice",
            "password": PASSWORD,
        },
    )
    assert answer.status_code == 400
    assert "signs in with a passkey" in answer.text


def test_failures_look_the_same_and_cost_the_same(server: Server) -> None:
    """No user enumeration by message or by work done (OWASP ASVS V2.2.x; NIST SP 800-63B
    §5.2.2): an unknown user costs one argon2 verification with the same parameters."""
    client = server.client
    passwords = runtime(client).auth.passwords
    bodies = []
    work = []
    for username in ("alice", "nobody-at-all"):
        response = client.get("/authorize", params=authorize_params())
        location = response.headers["location"]
        page = client.get(location)
        before = passwords.work
        answer = client.post(
            "/login",
            data={
                "interaction": query_of(location)["interaction"],
                "csrf": csrf_of(page.text),
                "username": username,
                "password": "wrong password entirely",
            },
        )
        after = passwords.work
        work.append((after.verifications - before.verifications, after.cost - before.cost))
        assert answer.status_code == 400
        alert = re.search(r'<p [^>]*role="alert"[^>]*>(.*?)</p>', answer.text)
        assert alert
        bodies.append(alert.group(1))
    assert work[0] == work[1]
    assert work[0][0] == 1
    assert bodies[0] == bodies[1]
    assert bodies[0] == "The username or password is incorrect."


def test_throttle_delays_guessing_but_not_the_owner_device(server: Server) -> None:
    """Progressive delay after repeated failures (NIST SP 800-63B §5.2.2), answered 429 with
    Retry-After; a browser that signed in before (device cookie) is not locked out."""
    client = server.client
    redeem(client, get_code(client))  # this browser now holds alice's device cookie
    device = client.cookies.get("bastion-device")
    assert device
    statuses = []
    with other_browser(client) as attacker:
        statuses = _guess(attacker)
    assert 429 in statuses
    assert "login.throttled" in audit_actions(server)
    # The owner's browser, with its device cookie, still signs in with the right password.
    client.cookies.delete("bastion-session")
    assert redeem(client, get_code(client))["_status"] == 200


def _guess(attacker: TestClient) -> list[int]:
    statuses = []
    for _ in range(7):
        response = attacker.get("/authorize", params=authorize_params())
        location = response.headers["location"]
        page = attacker.get(location)
        answer = attacker.post(
            "/login",
            data={
                "interaction": query_of(location)["interaction"],
                "csrf": csrf_of(page.text),
                "username": "alice",
                "password": "guess",
            },
        )
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            assert int(answer.headers["retry-after"]) >= 1
            assert "Too many attempts" in answer.text
    return statuses


def test_csrf_token_required_everywhere(server: Server) -> None:
    """Forms without the right CSRF token are refused (OWASP ASVS V3.5.x)."""
    client = server.client
    response = client.get("/authorize", params=authorize_params())
    location = response.headers["location"]
    interaction = query_of(location)["interaction"]
    client.get(location)
    for csrf in (None, "0" * 64):
        data = {"interaction": interaction, "username": "alice", "password": PASSWORD}
        if csrf:
            data["csrf"] = csrf
        refused = client.post("/login", data=data)
        assert refused.status_code == 400
        assert "bastion-session" not in refused.headers.get("set-cookie", "")
    account_page(client)
    assert client.post("/account/totp-start", data={"csrf": "f" * 64}).status_code == 400
    assert client.post("/account/totp-start", data={}).status_code == 400


def test_pages_refuse_framing(server: Server) -> None:
    """Clickjacking: every page forbids framing (RFC 7034; CSP frame-ancestors)."""
    client = server.client
    response = client.get("/authorize", params=authorize_params())
    for path in (response.headers["location"], "/account", "/logout"):
        page = client.get(path)
        assert page.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_revoking_a_session_kills_its_refresh_tokens(server: Server) -> None:
    """Revoking a session from the account page revokes the refresh-token families signed in
    through it (RFC 6749 §10.4: refresh tokens end with the grant)."""
    app_browser = server.client
    tokens = redeem(app_browser, get_code(app_browser))
    refresh = tokens.get("refresh_token")
    assert refresh, tokens
    with other_browser(app_browser) as other:
        html = account_page(other)
        ids = re.findall(
            r'data-session="other">.*?name="session_id" value="([^"]+)"', html, flags=re.S
        )
        assert len(ids) == 1
        revoked = other.post(
            "/account/revoke-session", data={"csrf": csrf_of(html), "session_id": ids[0]}
        )
        assert revoked.status_code == 303
    answer = app_browser.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh, "client_id": "mobile"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"
    assert "accounts.session.revoked" in audit_actions(server)
    # The revoked browser must sign in again.
    assert app_browser.get("/account").status_code == 303


def test_logout_with_hint_ends_session_and_redirects(server: Server) -> None:
    """OpenID Connect RP-Initiated Logout 1.0 §2-§3."""
    client = server.client
    tokens = redeem(client, get_code(client))
    response = client.get(
        "/logout",
        params={
            "id_token_hint": str(tokens["id_token"]),
            "post_logout_redirect_uri": APP_REDIRECT,
            "state": "bye",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"{APP_REDIRECT}?state=bye"
    assert client.get("/account").status_code == 303, "signed out"


def test_logout_without_hint_asks_and_refuses_open_redirects(server: Server) -> None:
    client = server.client
    redeem(client, get_code(client))
    asked = client.get("/logout")
    assert asked.status_code == 200
    assert "Sign out?" in asked.text
    assert client.get("/account").status_code == 200, "a GET alone signs nobody out"
    evil = client.get(
        "/logout",
        params={"client_id": "mobile", "post_logout_redirect_uri": "https://evil.example/"},
    )
    assert evil.status_code == 400
    confirmed = client.post("/logout", data={"csrf": csrf_of(asked.text)})
    assert confirmed.status_code == 303
    assert confirmed.headers["location"] == "/logged-out"


def test_recovery_link_resets_password_once(server: Server) -> None:
    """Operator recovery: one use, revokes sessions, keeps MFA unless asked to reset it."""
    client = server.client
    enrol_totp(client)
    rt = runtime(client)
    accounts = Accounts(rt.auth, "operator:test")
    user = portal(client).call(accounts.user, "alice")
    link = portal(client).call(lambda: accounts.recovery_link(user, reset_mfa=True))
    path = link.removeprefix(ISSUER)
    ticket = query_of(path)["ticket"]
    new_password = "a brand new passphrase after recovery"
    weak = client.post(
        "/recover", data={"ticket": ticket, "password": "short", "password_again": "short"}
    )
    assert weak.status_code == 400
    assert "at least 8" in weak.text
    done = client.post(
        "/recover",
        data={"ticket": ticket, "password": new_password, "password_again": new_password},
    )
    assert done.status_code == 303
    again = client.post(
        "/recover",
        data={"ticket": ticket, "password": new_password, "password_again": new_password},
    )
    assert again.status_code == 400, "a recovery link works once"
    assert portal(client).call(rt.auth.factors.totp, user.user_id) is None, "MFA was reset"
    actions = audit_actions(server)
    assert "accounts.recovery.issued" in actions
    assert "accounts.recovery.redeemed" in actions


def admin_token(client: TestClient, scope: str = "bastion:admin") -> str:
    response = client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": scope, "resource": f"{ISSUER}/admin"},
        auth=("operator-tool", ADMIN_SECRET),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_admin_api_manages_users(server: Server) -> None:
    """The admin API does what ``bastion users`` does, with the same password policy."""
    client = server.client
    auth = {"authorization": f"Bearer {admin_token(client)}"}
    weak = client.post(
        "/admin/users", json={"username": "bob", "password": "password"}, headers=auth
    )
    assert weak.status_code == 422
    assert weak.headers["content-type"] == "application/problem+json"
    assert (
        client.post(
            "/admin/users", content=b"{", headers=auth | {"content-type": "application/json"}
        ).status_code
        == 400
    )
    created = client.post(
        "/admin/users",
        json={"username": "bob", "password": "a long passphrase for the new user"},
        headers=auth,
    )
    assert created.status_code == 201
    assert "passphrase" not in created.text
    user_id = created.json()["user_id"]
    duplicate = client.post(
        "/admin/users",
        json={"username": "bob", "password": "another long passphrase"},
        headers=auth,
    )
    assert duplicate.status_code == 409
    listed = client.get("/admin/users", headers=auth).json()["users"]
    assert {u["username"] for u in listed} == {"alice", "bob"}
    assert client.post(f"/admin/users/{user_id}/disable", headers=auth).json()["enabled"] is False
    policy = client.post(f"/admin/users/{user_id}/policy", json={"policy": "mfa"}, headers=auth)
    assert policy.status_code == 422, "MFA policy without a second factor would lock bob out"
    assert client.delete(f"/admin/users/{user_id}", headers=auth).status_code == 204
    assert client.get(f"/admin/users/{user_id}", headers=auth).status_code == 404


def test_admin_api_requires_a_machine_token(server: Server) -> None:
    """The admin API refuses anonymous calls and users' tokens (RFC 6750 §3.1)."""
    client = server.client
    assert client.get("/admin/users").status_code == 401
    user_token = str(redeem(client, get_code(client))["access_token"])
    refused = client.get("/admin/users", headers={"authorization": f"Bearer {user_token}"})
    assert refused.status_code == 401
    assert "invalid_token" in refused.headers["www-authenticate"]


def test_https_cookies_are_host_prefixed_and_locked_down(
    tmp_path: Path, database_url: str, master_key_b64: str
) -> None:
    """RFC 6265bis §4.1.3.2 __Host- prefix: Secure, Path=/, no Domain; HttpOnly and
    SameSite=Lax keep scripts and cross-site posts away from the session (ASVS V3.4)."""
    with start_server(tmp_path, database_url, master_key_b64, "https://login.example.test") as s:
        response = s.client.get("/authorize", params=authorize_params())
        location = response.headers["location"]
        page = s.client.get(location)
        answer = s.client.post(
            "/login",
            data={
                "interaction": query_of(location)["interaction"],
                "csrf": csrf_of(page.text),
                "username": "alice",
                "password": PASSWORD,
            },
        )
    assert answer.status_code == 303
    cookies = {
        header.split("=", 1)[0]: header.lower() for header in answer.headers.get_list("set-cookie")
    }
    session = cookies["__Host-bastion-session"]
    for attribute in ("secure", "httponly", "samesite=lax", "path=/"):
        assert attribute in session
    assert "domain=" not in session
    assert "max-age" not in session, "a session cookie ends with the browser"
    assert "__Host-bastion-device" in cookies


@pytest.mark.parametrize("column", ["last_seen_at", "expires_at"])
def test_sessions_end_at_idle_and_absolute_timeouts(server: Server, column: str) -> None:
    """OWASP ASVS V3.3: idle and absolute session timeouts."""
    client = server.client
    account_page(client)
    rt = runtime(client)
    settings = server.settings.oauth
    past = time.time() - (settings.session_idle + 1 if column == "last_seen_at" else 1)

    async def age() -> None:
        async with rt.database.connect() as conn:
            await conn.execute(update(browser_sessions).values({column: past}))

    portal(client).call(age)
    assert client.get("/account").status_code == 303, "signed out: sign in again"


def test_hostile_bodies_get_clear_errors(server: Server) -> None:
    """Bad input gets a clear answer and changes nothing: the admin API answers
    problem+json (RFC 9457), the passkey endpoints a JSON error for their script."""
    client = server.client
    auth = {"authorization": f"Bearer {admin_token(client)}"}
    for content, content_type, status in (
        (b"username=x", "application/x-www-form-urlencoded", 415),
        (b"[1, 2]", "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
    ):
        answer = client.post(
            "/admin/users", content=content, headers=auth | {"content-type": content_type}
        )
        assert answer.status_code == status
        assert answer.headers["content-type"] == "application/problem+json"
        assert "Traceback" not in answer.text
    assert client.get("/admin/users/nobody", headers=auth).status_code == 404
    response = client.get("/authorize", params=authorize_params())
    interaction = query_of(response.headers["location"])["interaction"]
    csrf = csrf_of(client.get(response.headers["location"]).text)
    for path in ("/login/passkey/options", "/login/passkey"):
        assert client.post(path, content=b"not json").status_code == 415
        forged = client.post(path, json={"interaction": interaction, "csrf": "0" * 64})
        assert forged.status_code == 403, "WebAuthn requests carry the page's CSRF token"
    options = client.post("/login/passkey/options", json={"interaction": interaction, "csrf": csrf})
    assert options.status_code == 200
    assert options.json()["userVerification"] == "required"
    for credential in (None, "x", {"id": "AAAA", "rawId": "AAAA", "type": "public-key"}):
        refused = client.post(
            "/login/passkey",
            json={"interaction": interaction, "csrf": csrf, "credential": credential},
        )
        assert refused.status_code == 400
        assert refused.json() == {"error": "the passkey could not be verified"}
        assert "bastion-session" not in refused.headers.get("set-cookie", "")
