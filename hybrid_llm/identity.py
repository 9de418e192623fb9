"""The CLI's identity on the machine that runs `up`: the local operator credential in the state folder.

`up` creates a real API key (roles operator, user, approver, auditor) in the keys table and writes it to
`<state_dir>/operator.key` (mode 0600, owner only). `local_principal(settings)` reads that file and looks the key
up in PostgreSQL on every call, so revoking it (`hybrid-llm keys revoke ID`) stops the local CLI at once.
Whoever can read the state folder can act as the local operator: that is the same person who can read the
database and the Temporal files in it anyway.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from domain.principals import AccessRole, Principal
from hybrid_llm.settings import Settings

CREDENTIAL_FILE = "operator.key"
LOCAL_ROLES = (AccessRole.OPERATOR, AccessRole.USER, AccessRole.APPROVER, AccessRole.AUDITOR)


class CredentialError(Exception):
    """No usable local credential: the message says what to do."""


def credential_path(settings: Settings) -> Path:
    return settings.state_dir / CREDENTIAL_FILE


def _store(settings: Settings, engine=None):
    import sqlalchemy as sa

    from activities.keys_store import KeyStore

    if engine is None:  # one-shot CLI use: no pool left behind
        engine = sa.create_engine(settings.effective_database_url, poolclass=sa.pool.NullPool,
                                  connect_args={"connect_timeout": 5})
    return KeyStore(engine)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise CredentialError(f"no local credential at {path}: run `hybrid-llm up` on this machine, or set "
                              "HYBRID_API_URL and HYBRID_API_KEY to go through the API") from None
    except PermissionError:
        raise CredentialError(f"cannot read the local credential {path} (it belongs to the user who ran "
                              "`hybrid-llm up`)") from None


def ensure_local_credential(settings: Settings, engine=None) -> tuple[Path, bool]:
    """Called by `up` after migrating: keep a credential whose key the database knows (even a revoked one: a
    revocation stands until someone deletes the file), else create one. Returns (path, created)."""
    from activities.keys_store import UnknownKey, key_id_of

    path = credential_path(settings)
    store = _store(settings, engine)
    if path.exists():
        key_id = key_id_of(_read(path))
        if key_id is not None:
            try:
                store.get(key_id)
                os.chmod(path, 0o600)
                return path, False
            except UnknownKey:
                pass  # a new database: mint a key for it
    _, key = store.create(f"local-operator ({getpass.getuser()})", LOCAL_ROLES)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    os.replace(tmp, path)
    return path, True


def local_key(settings: Settings) -> str:
    """The local operator key itself (for the CLI's own API calls to the local API)."""
    return _read(credential_path(settings))


def local_principal(settings: Settings, engine=None) -> Principal:
    """Who the local CLI acts as: the principal of the key in `<state_dir>/operator.key`, read from the database
    now (a revoked, suspended or expired key raises CredentialError)."""
    from activities.keys_store import KeyRefused

    path = credential_path(settings)
    key = _read(path)
    try:
        record = _store(settings, engine).lookup(key)
    except KeyRefused as e:
        raise CredentialError(f"the local credential {path} is refused ({e.reason}); delete it and run "
                              "`hybrid-llm up` to make a new one") from None
    return record.principal().model_copy(update={"kind": "local"})
