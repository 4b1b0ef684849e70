"""Accounts and authentication: users, passwords, (later) TOTP, passkeys, step-up."""
