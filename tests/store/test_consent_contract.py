"""The ConsentStore contract, run against every implementation."""

from __future__ import annotations

from bastion.authserver.stores import ConsentStore

NOW = 1_700_000_000.0


async def test_consents(consent_store: ConsentStore) -> None:
    assert await consent_store.granted("u1", "app") == frozenset()
    await consent_store.grant("u1", "app", frozenset({"openid"}), NOW)
    await consent_store.grant("u1", "app", frozenset({"orders:read"}), NOW)
    assert await consent_store.granted("u1", "app") == {"openid", "orders:read"}
    assert await consent_store.of_subject("u1") == {"app": frozenset({"openid", "orders:read"})}
    assert await consent_store.revoke("u1", "app") == 1
    assert await consent_store.granted("u1", "app") == frozenset()


async def test_revoking_every_client_leaves_other_subjects_alone(
    consent_store: ConsentStore,
) -> None:
    await consent_store.grant("u1", "app", frozenset({"a"}), NOW)
    await consent_store.grant("u1", "web", frozenset({"b"}), NOW)
    await consent_store.grant("u2", "app", frozenset({"c"}), NOW)
    assert await consent_store.of_subject("u1") == {"app": {"a"}, "web": {"b"}}
    assert await consent_store.revoke("u1") == 2
    assert await consent_store.revoke("u1") == 0
    assert await consent_store.of_subject("u1") == {}
    assert await consent_store.granted("u2", "app") == {"c"}
