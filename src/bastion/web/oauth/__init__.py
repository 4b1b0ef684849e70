"""The authorization server's HTTP endpoints (OAuth errors are RFC 6749 JSON, not problems)."""
