"""Who the CLI acts as on the machine that runs `up`: the local operator.

INTERIM (the `keys` work replaces this with the credential `up` writes to the state folder, looked up in the keys
table so that revoking it stops the CLI): the local operator principal, trusted because only a local user who can
read the state folder (the codec keyring) can reach the platform through Temporal at all.
"""

from __future__ import annotations

from domain.principals import AccessRole, Principal
from hybrid_llm.settings import Settings


def local_principal(settings: Settings) -> Principal:
    del settings
    return Principal(id="local-operator", name="local operator", kind="local",
                     roles=(AccessRole.USER, AccessRole.APPROVER, AccessRole.OPERATOR, AccessRole.AUDITOR))
