"""Hostile input gets an OAuth error, never a 500 (RFC 6749 §5.2), on both databases."""

from __future__ import annotations

import base64

import pytest

from tests.authserver.conftest import APP_REDIRECT, Server, authorize_params, get_code


@pytest.mark.parametrize(
    "overrides",
    [
        {"max_age": "²"},
        {"client_id": "mob\x00ile"},
        {"state": "a\x00b"},
        {"scope": "openid\x01"},
    ],
)
def test_authorize(server: Server, overrides: dict[str, str]) -> None:
    response = server.client.get("/authorize", params=authorize_params(**overrides))
    assert response.status_code in (303, 400)


@pytest.mark.parametrize(
    "data",
    [
        {
            "grant_type": "authorization_code",
            "code": "x",
            "client_id": "mobile",
            "redirect_uri": "com.example.app:/cbé",
            "code_verifier": "v" * 50,
        },
        {"grant_type": "client_credentials", "client_id": "mob\x00ile"},
        {"grant_type": "x" * 5000, "client_id": "mobile"},
    ],
)
def test_token(server: Server, data: dict[str, str]) -> None:
    response = server.client.post("/token", data=data)
    assert response.status_code == 400
    assert "error" in response.json()


def test_non_ascii_redirect_uri_with_a_real_code(server: Server) -> None:
    code = get_code(server.client)
    response = server.client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": "mobile",
            "redirect_uri": APP_REDIRECT + "é",
            "code_verifier": "v" * 50,
        },
    )
    assert response.json()["error"] == "invalid_grant"


def test_non_ascii_basic_credentials(server: Server) -> None:
    response = server.client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers={"authorization": "Basic Zm9vOmJhcg==é".encode()},
    )
    assert response.status_code == 401


def test_non_ascii_csrf(server: Server) -> None:
    start = server.client.get("/authorize", params=authorize_params())
    interaction = start.headers["location"].split("interaction=")[1]
    response = server.client.post(
        "/login",
        data={"interaction": interaction, "csrf": "é" * 64, "username": "alice", "password": "x"},
    )
    assert response.status_code == 400


def test_nul_in_login_username(server: Server) -> None:
    start = server.client.get("/authorize", params=authorize_params())
    interaction = start.headers["location"].split("interaction=")[1]
    response = server.client.post(
        "/login",
        data={"interaction": interaction, "csrf": "0", "username": "al\x00ice", "password": "x"},
    )
    assert response.status_code == 400


def test_garbage_bodies(server: Server) -> None:
    for content in (b"\xff\xfe", b"a=" + b"%" * 10, b"&" * 10000):
        response = server.client.post(
            "/token",
            content=content,
            headers={
                "content-type": "application/x-www-form-urlencoded",
                "authorization": "Basic " + base64.b64encode(b"a:b").decode(),
            },
        )
        assert response.status_code in (400, 401)
