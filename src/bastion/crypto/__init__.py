"""Key material: the master-key envelope, the signing key ring, JOSE helpers."""
