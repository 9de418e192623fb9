"""The compose deployment's secrets, made once by the one-shot `certs` service (our image; `cryptography`, `pyjwt`).

Each consumer gets its own folder (a named volume in docker-compose.yml), holding only what it needs:

    pki/       ca.pem ca.key jwt-signing.pem     the CA and the token signing key: only this job mounts it
    temporal/  ca.pem server.pem server.key      Temporal's frontend + internode cert (SAN temporal, localhost)
    worker/    ca.pem client.pem client.key temporal.jwt     our worker: mTLS client + token (default:admin)
    api/       ca.pem client.pem client.key temporal.jwt     our API: mTLS client + token (default:writer)
    ops/       ca.pem client.pem client.key temporal.jwt     temporal-setup / admin-tools (cluster admin)
    ui/        ca.pem client.pem client.key      the Web UI server: mTLS only (its users bring their own token)
    jwks/      jwks.json                          public keys for Temporal's JWT authorizer (served inside the network)
    codec/     codec-keys.json                    the payload codec keyring (worker and API)

    python deploy/make_secrets.py init OUT          make what is missing; never overwrites (safe to run at every up)
    python deploy/make_secrets.py renew OUT         new leaf certs and tokens from the same CA and signing key
    python deploy/make_secrets.py rotate-codec OUT  a new active codec key; old keys stay to open old payloads

Files are written 0600 (keys) / 0644 (public) and chowned to the consumer's uid (--uid name=uid) when run as root.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import os
import sys
import uuid
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hybrid_llm.codec import Keyring, KeyringError, read_keyring, write_keyring

SERVER_NAMES = ("temporal", "localhost")
# Consumer -> (certificate common name, Temporal permissions claim). Roles of the default authorizer: reader,
# writer, worker, admin per namespace; "temporal-system:admin" is the cluster admin (namespaces, search attributes).
CLIENTS = {
    "worker": ("hybrid-worker", ["default:admin"]),
    "api": ("hybrid-api", ["default:writer"]),
    "ops": ("hybrid-ops", ["temporal-system:admin", "default:admin"]),
}
CERT_ONLY = {"ui": "hybrid-ui"}
# Owners: temporalio/server, admin-tools and ui run as uid 1000; our API as 10001 (it and the root worker read codec/).
DEFAULT_UIDS = {"temporal": 1000, "worker": 0, "api": 10001, "ops": 1000, "ui": 1000, "jwks": 0, "codec": 10001,
                "pki": 0}
CERT_DAYS = 397
CA_DAYS = 3650
TOKEN_DAYS = 397
ISSUER = "hybrid-llm-compose"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _write(path: Path, data: bytes, *, secret: bool, uid: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    if uid is not None and os.geteuid() == 0:
        os.chown(tmp, uid, uid)
        os.chown(path.parent, uid, uid)
    os.replace(tmp, path)


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert(subject: str, public_key, issuer: x509.Certificate | None, signer, days: int, *, ca: bool = False,
          server: bool = False) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hybrid-llm"),
                      x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = _now()
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(issuer.subject if issuer else name).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
            decipher_only=False), critical=True)
    else:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_encipherment=False, key_cert_sign=False, crl_sign=False,
            content_commitment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
            decipher_only=False), critical=True)
        # The server cert also authenticates Temporal's own services to each other (internode mTLS): both usages.
        usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH] if server \
            else [ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                                        critical=False)
    if server:
        sans = [x509.DNSName(n) for n in SERVER_NAMES] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(signer, hashes.SHA256())


class Secrets:
    def __init__(self, out: Path, uids: dict[str, int]) -> None:
        self.out = out
        self.uids = uids

    def path(self, consumer: str, name: str) -> Path:
        return self.out / consumer / name

    def write(self, consumer: str, name: str, data: bytes, *, secret: bool) -> None:
        _write(self.path(consumer, name), data, secret=secret, uid=self.uids.get(consumer))

    # --- the roots: made once, kept -----------------------------------------------------------------
    def ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        cert_path, key_path = self.path("pki", "ca.pem"), self.path("pki", "ca.key")
        if not key_path.exists():
            key = ec.generate_private_key(ec.SECP384R1())
            cert = _cert("hybrid-llm compose CA", key.public_key(), None, key, CA_DAYS, ca=True)
            self.write("pki", "ca.key", _pem_key(key), secret=True)
            self.write("pki", "ca.pem", cert.public_bytes(serialization.Encoding.PEM), secret=False)
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), key

    def signing_key(self) -> tuple[rsa.RSAPrivateKey, str]:
        path = self.path("pki", "jwt-signing.pem")
        if not path.exists():
            self.write("pki", "jwt-signing.pem", _pem_key(rsa.generate_private_key(65537, 3072)), secret=True)
        key = serialization.load_pem_private_key(path.read_bytes(), None)
        kid = x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest.hex()[:16]
        return key, kid

    # --- what each consumer gets ----------------------------------------------------------------------
    def leaves(self, *, force: bool) -> list[str]:
        """Server and client certs, tokens and the JWKS; only the missing ones unless `force`."""
        ca_cert, ca_key = self.ca()
        ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
        signing, kid = self.signing_key()
        made = []
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing.public_key()))
        jwks = json.dumps({"keys": [{**jwk, "kid": kid, "alg": "RS256", "use": "sig"}]}, indent=2).encode()
        if force or not self.path("jwks", "jwks.json").exists():
            self.write("jwks", "jwks.json", jwks, secret=False)
            made.append("jwks/jwks.json")
        targets = [("temporal", "server.pem", "server.key", "temporal", True)]
        clients = {**{c: cn for c, (cn, _) in CLIENTS.items()}, **CERT_ONLY}
        targets += [(c, "client.pem", "client.key", cn, False) for c, cn in clients.items()]
        for consumer, cert_name, key_name, cn, server in targets:
            self.write(consumer, "ca.pem", ca_pem, secret=False)
            if force or not self.path(consumer, key_name).exists():
                key = ec.generate_private_key(ec.SECP256R1())
                cert = _cert(cn, key.public_key(), ca_cert, ca_key, CERT_DAYS, server=server)
                self.write(consumer, key_name, _pem_key(key), secret=True)
                self.write(consumer, cert_name, cert.public_bytes(serialization.Encoding.PEM), secret=False)
                made.append(f"{consumer}/{cert_name}")
        for consumer, (cn, permissions) in CLIENTS.items():
            if force or not self.path(consumer, "temporal.jwt").exists():
                self.write(consumer, "temporal.jwt", self.token(signing, kid, cn, permissions).encode(), secret=True)
                made.append(f"{consumer}/temporal.jwt")
        return made

    @staticmethod
    def token(signing, kid: str, subject: str, permissions: list[str]) -> str:
        now = _now()
        claims = {"sub": subject, "iss": ISSUER, "permissions": permissions, "iat": now,
                  "exp": now + dt.timedelta(days=TOKEN_DAYS), "jti": uuid.uuid4().hex}
        return jwt.encode(claims, signing, algorithm="RS256", headers={"kid": kid})

    def codec(self, *, rotate: bool) -> str:
        path = self.path("codec", "codec-keys.json")
        if rotate:
            ring = read_keyring(path).rotated()
            write_keyring(path, ring, exclusive=False)
        elif not path.exists():
            ring = Keyring.generate()
            write_keyring(path, ring, exclusive=True)
        else:
            return ""
        if os.geteuid() == 0:
            os.chown(path, self.uids["codec"], self.uids["codec"])
        return f"codec/codec-keys.json (active key {ring.active})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["init", "renew", "rotate-codec"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--uid", action="append", default=[], metavar="CONSUMER=UID",
                        help="owner of a consumer's files (defaults: %s)" % DEFAULT_UIDS)
    args = parser.parse_args(argv)
    uids = dict(DEFAULT_UIDS)
    for item in args.uid:
        consumer, _, uid = item.partition("=")
        uids[consumer] = int(uid)
    secrets = Secrets(args.out, uids)
    if args.command == "rotate-codec":
        try:
            made = [secrets.codec(rotate=True)]
        except KeyringError as e:
            print(f"rotate-codec: {e}", file=sys.stderr)
            return 2
    else:
        made = secrets.leaves(force=args.command == "renew") + [secrets.codec(rotate=False)]
    made = [m for m in made if m]
    print("made: " + (", ".join(made) if made else "nothing (everything exists)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
