"""``bastion demo``: Bastion, the notes service of ``examples/`` behind its gateway, and a
small web page that plays a native app against both, so a newcomer sees every defence
from one browser tab.

- ``users``: the two demo users, and a note of the second one, so that reading it is a
  real attempt at another user's object;
- ``client``: the app's side of OAuth (PKCE, ``state`` and ``iss`` checks, refresh,
  revocation) and its calls through the gateway, each kept as an ``Exchange`` to show;
- ``tokens``: tokens as the page shows them (claims decoded, never verified as trust);
- ``actions``: the page's buttons, each a few calls and the defence their answers show;
- ``app`` and ``pages``: the page itself, served at the app's loopback redirect URI;
- ``servers``: Bastion and the page served from one process.
"""
