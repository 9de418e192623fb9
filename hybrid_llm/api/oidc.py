"""Optional OIDC/JWT bearer tokens: verified against a JWKS (a file or an https URL) from the identity provider,
with the issuer, audience and expiry checked, and a claim mapped to our roles (`oidc_role_map`).

A token whose claim values map to no role authenticates but may do nothing (403 everywhere). Per-key limits
(rpm, daily tokens) apply to API keys only; a model allowlist can come from `oidc_models_claim`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import jwt

from domain.principals import AccessRole, Principal
from hybrid_llm.settings import Settings


class TokenRefused(Exception):
    pass


class JWTVerifier:
    def __init__(self, settings: Settings) -> None:
        if not settings.oidc_jwks:
            raise ValueError("oidc_jwks is not set")
        self.settings = settings
        self._source = settings.oidc_jwks
        self._remote = self._source.startswith(("https://", "http://"))
        self._client = jwt.PyJWKClient(self._source, cache_keys=True, lifespan=300) if self._remote else None
        self._file_cache: tuple[float, jwt.PyJWKSet] | None = None
        self._lock = threading.Lock()

    def _file_keys(self) -> jwt.PyJWKSet:
        path = Path(self._source)
        mtime = path.stat().st_mtime
        with self._lock:
            if self._file_cache is None or self._file_cache[0] != mtime:
                self._file_cache = (mtime, jwt.PyJWKSet.from_json(path.read_text()))
            return self._file_cache[1]

    def _signing_key(self, token: str):
        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token).key
        kid = jwt.get_unverified_header(token).get("kid")
        keys = self._file_keys().keys
        matching = [k for k in keys if kid is None or k.key_id == kid]
        if not matching:
            raise TokenRefused(f"no key {kid!r} in the JWKS")
        return matching[0].key

    def verify(self, token: str) -> Principal:
        """The token's principal; TokenRefused for a bad signature, wrong issuer/audience, or an expired token.
        Blocking (reads the JWKS): call it from a thread."""
        s = self.settings
        try:
            claims = jwt.decode(token, self._signing_key(token), algorithms=s.oidc_algorithms,
                                audience=s.oidc_audience, issuer=s.oidc_issuer,
                                options={"require": ["exp", "sub", "iss"], "verify_aud": s.oidc_audience is not None})
        except (jwt.PyJWTError, ValueError, OSError) as e:
            raise TokenRefused(f"{type(e).__name__}: {e}") from None
        return principal_from_claims(claims, s)


def principal_from_claims(claims: dict, settings: Settings) -> Principal:
    values = claims.get(settings.oidc_roles_claim) or []
    if isinstance(values, str):
        values = values.split()
    roles: list[AccessRole] = []
    for value in values:
        for role in settings.oidc_role_map.get(str(value), []):
            if role in AccessRole.__members__.values() and AccessRole(role) not in roles:
                roles.append(AccessRole(role))
    models = None
    if settings.oidc_models_claim and isinstance(claims.get(settings.oidc_models_claim), list):
        models = tuple(str(m) for m in claims[settings.oidc_models_claim])
    ident = f"oidc:{claims['iss']}#{claims['sub']}"
    if len(ident) > 200:
        ident = "oidc:" + hashlib.sha256(json.dumps([claims["iss"], claims["sub"]]).encode()).hexdigest()
    name = str(claims.get("preferred_username") or claims.get("email") or claims["sub"])[:200]
    return Principal(id=ident, name=name, roles=tuple(roles), kind="oidc", models=models)
