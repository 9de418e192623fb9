"""OIDC/JWT bearer tokens verified against a JWKS file (a locally generated RSA key stands in for the identity
provider), with a claim mapped to roles; forged, expired, foreign and algorithm-confused tokens are refused."""

from __future__ import annotations

import json
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from hybrid_llm.api import create_app
from tests.conftest import bearer

ISSUER, AUDIENCE = "https://idp.example.test", "hybrid-llm"


def _rsa():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def idp(tmp_path):
    key = _rsa()
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="k1", use="sig", alg="RS256")
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))

    def token(sub="alice", groups=("staff",), key_=key, kid="k1", **over) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "exp": now + 300, "iat": now,
                  "preferred_username": sub, "groups": list(groups), **over}
        return jwt.encode(claims, key_, algorithm="RS256", headers={"kid": kid})

    return path, token, key


@pytest.fixture
async def http(settings, idp):
    path, _, _ = idp
    settings.oidc_jwks = str(path)
    settings.oidc_issuer, settings.oidc_audience = ISSUER, AUDIENCE
    settings.oidc_role_map = {"staff": ["user"], "llm-admins": ["operator", "auditor"]}
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        yield client


async def test_tokens_map_groups_to_roles(http, idp):
    _, token, _ = idp
    staff = bearer(token())
    assert (await http.get("/v1/usage", headers=staff)).status_code == 200
    assert (await http.get("/v1/keys", headers=staff)).status_code == 403
    admin = bearer(token(sub="root", groups=["llm-admins"]))
    listed = await http.get("/v1/keys", headers=admin)
    assert listed.status_code == 200, listed.text
    nobody = bearer(token(sub="guest", groups=["unmapped"]))
    assert (await http.get("/v1/usage", headers=nobody)).status_code == 403  # authenticated, no role


async def test_bad_tokens_are_401(http, idp):
    _, token, key = idp
    now = int(time.time())
    other_key = _rsa()
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    forged = {
        "expired": token(exp=now - 10),
        "wrong issuer": token(iss="https://evil.example"),
        "wrong audience": token(aud="someone-else"),
        "other signing key": token(key_=other_key),
        "unknown kid": token(kid="k9"),
        "alg none": jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": now + 60, "groups": ["llm-admins"]},
                               None, algorithm="none"),
        "no exp": jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "groups": ["llm-admins"]}, key,
                             algorithm="RS256", headers={"kid": "k1"}),
        "garbage": "not.a.token",
    }
    try:  # algorithm confusion: HS256 signed with the public key's PEM as the secret
        forged["hs256 with the public key"] = jwt.encode(
            {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": now + 60, "groups": ["llm-admins"]},
            public_pem, algorithm="HS256", headers={"kid": "k1"})
    except jwt.InvalidKeyError:
        pass  # PyJWT itself refuses to sign so; the verifier only accepts RS256/ES256 anyway
    for what, tok in forged.items():
        r = await http.get("/v1/keys", headers=bearer(tok))
        assert r.status_code == 401, (what, r.status_code, r.text)
        assert r.headers["www-authenticate"] == "Bearer"


async def test_jwks_from_a_url(settings, idp):
    """The JWKS fetched over HTTP (as from an identity provider's jwks_uri), from a local server."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    path, token, _ = idp
    body = path.read_bytes()

    class JWKS(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), JWKS)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        settings.oidc_jwks = f"http://127.0.0.1:{server.server_port}/jwks.json"
        settings.oidc_issuer, settings.oidc_audience = ISSUER, AUDIENCE
        settings.oidc_role_map = {"staff": ["user"]}
        app = create_app(settings)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
            assert (await http.get("/v1/usage", headers=bearer(token()))).status_code == 200
            assert (await http.get("/v1/usage", headers=bearer(token(key_=_rsa())))).status_code == 401
    finally:
        server.shutdown()
        server.server_close()
