"""The authorization server's services: the OAuth core bound to stores, keys and audit."""
