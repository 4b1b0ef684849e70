"""Apple's App Attestation Root CA ships inside the package (read through
``importlib.resources``, so it is found in a wheel as in a checkout), and is the one the
published vectors chain to."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.x509.oid import NameOID

from bastion.device.apple import load_root
from bastion.errors import DeviceUnverifiable

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "app-attest"


def test_the_bundled_root_is_apples_app_attestation_root() -> None:
    root = load_root(None)
    names = root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [n.value for n in names] == ["Apple App Attestation Root CA"]
    assert root == load_root(VECTORS / "apple-app-attestation-root-ca.pem")


def test_a_configured_root_that_cannot_be_read_is_an_outage(tmp_path: Path) -> None:
    (tmp_path / "garbage.pem").write_text("not a certificate")
    for path in (tmp_path / "missing.pem", tmp_path / "garbage.pem"):
        with pytest.raises(DeviceUnverifiable) as unverifiable:
            load_root(path)
        assert unverifiable.value.reason == "apple_root_unreadable"
