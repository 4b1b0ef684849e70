"""The OAuth 2.1 / OpenID Connect core for native apps: pure functions, no I/O.

Each module takes parsed inputs (and ``now`` where time matters) and returns a decision
or raises ``OAuthError``; the web layer and the stores are thin shells around them.
"""
