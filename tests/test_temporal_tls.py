"""`connect(settings)` over mTLS with a JWT, using the secrets deploy/make_secrets.py makes for compose.

The Temporal dev server has no TLS flags, so a TLS-terminating proxy (Python `ssl`, client certs required, ALPN h2)
stands in front of the real dev server: what reaches Temporal went through a real mTLS handshake, and the proxy
reads the gRPC headers (HTTP/2, via `h2`) to see the token on the wire. What runs in compose itself (Temporal's own
TLS listener and authorizer) is checked by parsing only (tests/test_compose.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
import subprocess
import sys
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import jwt
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from pydantic import ValidationError
from temporalio.service import TLSConfig

from hybrid_llm.codec import read_keyring
from hybrid_llm.settings import Settings
from hybrid_llm.temporal import TemporalUnavailable, connect, transport_security

ROOT = Path(__file__).resolve().parent.parent


def make_secrets(out: Path, command: str = "init") -> str:
    done = subprocess.run([sys.executable, str(ROOT / "deploy" / "make_secrets.py"), command, str(out)],
                          capture_output=True, text=True, check=True)
    return done.stdout


@pytest.fixture(scope="module")
def secrets(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compose-secrets")
    make_secrets(out)
    return out


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory) -> Path:
    """A second, unrelated set of secrets: its certs are not signed by our CA."""
    out = tmp_path_factory.mktemp("foreign-secrets")
    make_secrets(out)
    return out


def tls_settings(secrets: Path, consumer: str, **overrides) -> dict:
    folder = secrets / consumer
    return {"temporal_tls_ca": folder / "ca.pem", "temporal_tls_cert": folder / "client.pem",
            "temporal_tls_key": folder / "client.key", "temporal_tls_server_name": "temporal",
            "temporal_jwt_file": folder / "temporal.jwt", **overrides}


class MtlsProxy:
    """TLS (client cert required, our CA) in front of a plaintext gRPC server; records who connected and the
    `authorization` header of every gRPC call."""

    def __init__(self, secrets: Path, upstream: str) -> None:
        self.upstream = upstream.rsplit(":", 1)
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(secrets / "temporal" / "ca.pem"))
        self.ctx.load_cert_chain(secrets / "temporal" / "server.pem", secrets / "temporal" / "server.key")
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.set_alpn_protocols(["h2"])
        self.peers: list[str] = []
        self.authorization: list[str] = []
        self.server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ctx)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cert = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        name = x509.load_der_x509_certificate(cert).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        self.peers.append(name)
        up_reader, up_writer = await asyncio.open_connection(self.upstream[0], int(self.upstream[1]))
        sniffer = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                      header_encoding="utf-8"))

        async def pipe(src, dst, sniff: bool) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    if sniff:
                        with contextlib.suppress(Exception):
                            for event in sniffer.receive_data(data):
                                if isinstance(event, h2.events.RequestReceived):
                                    self.authorization += [v for k, v in event.headers if k == "authorization"]
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))


async def test_connect_speaks_mtls_and_sends_the_token(secrets, temporal_target, codec_keys_file):
    proxy = MtlsProxy(secrets, temporal_target)
    async with proxy as target:
        settings = Settings(temporal_address=target, codec_keys_file=codec_keys_file,
                            **tls_settings(secrets, "worker"))
        client = await connect(settings)
        count = await client.count_workflows()
        assert count.count >= 0
    assert proxy.peers and set(proxy.peers) == {"hybrid-worker"}
    token = (secrets / "worker" / "temporal.jwt").read_text().strip()
    assert proxy.authorization and set(proxy.authorization) == {f"Bearer {token}"}


async def test_a_client_without_our_cert_is_refused(secrets, other_ca, temporal_target, codec_keys_file):
    proxy = MtlsProxy(secrets, temporal_target)
    async with proxy as target:
        no_cert = Settings(temporal_address=target, codec_keys_file=codec_keys_file,
                           temporal_tls_ca=secrets / "worker" / "ca.pem", temporal_tls_server_name="temporal")
        with pytest.raises(TemporalUnavailable):
            await connect(no_cert, timeout_s=2)
        foreign = Settings(temporal_address=target, codec_keys_file=codec_keys_file,
                           **tls_settings(other_ca, "worker", temporal_tls_ca=secrets / "worker" / "ca.pem"))
        with pytest.raises(TemporalUnavailable):
            await connect(foreign, timeout_s=2)
        plaintext = Settings(temporal_address=target, codec_keys_file=codec_keys_file)
        with pytest.raises(TemporalUnavailable):
            await connect(plaintext, timeout_s=2)
    assert proxy.authorization == []  # nothing got through to Temporal


async def test_the_server_cert_must_be_from_our_ca(secrets, other_ca, temporal_target, codec_keys_file):
    """A server with a cert from another CA (a man in the middle) is refused by our client."""
    proxy = MtlsProxy(other_ca, temporal_target)
    proxy.ctx.load_verify_locations(secrets / "worker" / "ca.pem")  # it would even accept our client cert
    async with proxy as target:
        settings = Settings(temporal_address=target, codec_keys_file=codec_keys_file,
                            **tls_settings(secrets, "worker"))
        with pytest.raises(TemporalUnavailable):
            await connect(settings, timeout_s=2)
    assert proxy.authorization == []  # the token never left


def test_transport_security_from_settings(secrets):
    tls, token = transport_security(Settings(**tls_settings(secrets, "api")))
    assert isinstance(tls, TLSConfig)
    assert tls.server_root_ca_cert == (secrets / "api" / "ca.pem").read_bytes()
    assert tls.client_cert == (secrets / "api" / "client.pem").read_bytes()
    assert tls.client_private_key == (secrets / "api" / "client.key").read_bytes()
    assert tls.domain == "temporal"
    assert token == (secrets / "api" / "temporal.jwt").read_text().strip()
    assert transport_security(Settings()) == (False, None)  # the embedded dev server: plaintext, no token
    only_ca, _ = transport_security(Settings(temporal_tls_ca=secrets / "api" / "ca.pem"))
    assert isinstance(only_ca, TLSConfig) and only_ca.client_cert is None


def test_settings_refuse_half_a_client_cert_and_missing_files(secrets, tmp_path):
    with pytest.raises(ValidationError, match="temporal_tls_cert and temporal_tls_key go together"):
        Settings(temporal_tls_cert=secrets / "api" / "client.pem")
    with pytest.raises(TemporalUnavailable, match="HYBRID_TEMPORAL_TLS_KEY"):
        transport_security(Settings(**tls_settings(secrets, "api", temporal_tls_key=tmp_path / "missing.key")))
    (tmp_path / "empty.jwt").write_text("\n")
    with pytest.raises(TemporalUnavailable, match="empty"):
        transport_security(Settings(temporal_jwt_file=tmp_path / "empty.jwt"))


def test_secrets_tokens_verify_against_the_jwks_with_their_roles(secrets):
    jwks = json.loads((secrets / "jwks" / "jwks.json").read_text())
    keys = {k["kid"]: jwt.PyJWK(k) for k in jwks["keys"]}
    expected = {"worker": ["default:admin"], "api": ["default:writer"],
                "ops": ["temporal-system:admin", "default:admin"]}
    for consumer, permissions in expected.items():
        token = (secrets / consumer / "temporal.jwt").read_text()
        kid = jwt.get_unverified_header(token)["kid"]
        claims = jwt.decode(token, keys[kid], algorithms=["RS256"])
        assert claims["permissions"] == permissions and claims["sub"]
    assert not (secrets / "ui" / "temporal.jwt").exists()  # the UI server holds a cert, never a token
    for consumer in ("worker", "api", "ops", "ui"):  # keys readable by their owner only
        assert (secrets / consumer / "client.key").stat().st_mode & 0o077 == 0
    assert (secrets / "temporal" / "server.key").stat().st_mode & 0o077 == 0
    assert (secrets / "codec" / "codec-keys.json").stat().st_mode & 0o077 == 0


def test_init_keeps_what_exists_renew_reissues_and_codec_rotation_keeps_old_keys(tmp_path):
    with pytest.raises(subprocess.CalledProcessError) as refused:  # nothing to rotate yet: a clear error
        make_secrets(tmp_path, "rotate-codec")
    assert "does not exist" in refused.value.stderr and "Traceback" not in refused.value.stderr
    make_secrets(tmp_path)
    ca, server_key = (tmp_path / "pki" / "ca.pem").read_bytes(), (tmp_path / "temporal" / "server.key").read_bytes()
    ring = read_keyring(tmp_path / "codec" / "codec-keys.json")
    assert "nothing" in make_secrets(tmp_path)  # a second `up` changes nothing
    assert (tmp_path / "temporal" / "server.key").read_bytes() == server_key
    make_secrets(tmp_path, "renew")
    assert (tmp_path / "pki" / "ca.pem").read_bytes() == ca  # same CA: clients keep trusting the server
    assert (tmp_path / "temporal" / "server.key").read_bytes() != server_key
    assert read_keyring(tmp_path / "codec" / "codec-keys.json") == ring  # renewing certs leaves the codec alone
    make_secrets(tmp_path, "rotate-codec")
    rotated = read_keyring(tmp_path / "codec" / "codec-keys.json")
    assert rotated.active != ring.active and rotated.keys[ring.active] == ring.keys[ring.active]


async def test_admin_tools_environment_from_compose_reaches_temporal_over_mtls(secrets, temporal_target):
    """temporal-setup's own environment (docker-compose.yml), with the real `temporal` CLI (1.9.1 here; the
    admin-tools image ships its own): mTLS with the ops cert, the ops token sent as a bearer token."""
    import yaml
    from tests.conftest import TEMPORAL_BIN

    setup = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["temporal-setup"]
    mount = next(target for source, target, *_ in (v.split(":") for v in setup["volumes"]) if source == "secrets-ops")
    token_file = re.search(r"cat (\S+)\)", "\n".join(setup["command"]))[1]
    proxy = MtlsProxy(secrets, temporal_target)
    async with proxy as target:
        env = {key: str(value).replace(mount, str(secrets / "ops")) for key, value in setup["environment"].items()}
        env |= {"TEMPORAL_ADDRESS": target, "PATH": "/usr/bin:/bin", "HOME": str(secrets),
                "TEMPORAL_API_KEY": Path(token_file.replace(mount, str(secrets / "ops"))).read_text().strip()}
        proc = await asyncio.create_subprocess_exec(TEMPORAL_BIN, "operator", "search-attribute", "list",
                                                    env=env, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert "TaskType" in out.decode()
    assert set(proxy.peers) == {"hybrid-ops"}
    assert set(proxy.authorization) == {f"Bearer {(secrets / 'ops' / 'temporal.jwt').read_text().strip()}"}


@pytest.mark.parametrize("service", ["worker", "api"])
async def test_our_services_settings_from_compose_connect_over_mtls(service, secrets, temporal_target):
    """The worker's and the API's HYBRID_* environment in docker-compose.yml, with their volumes' paths mapped to
    what make_secrets wrote: `connect` completes mTLS with that service's own cert and sends its own token."""
    import yaml

    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][service]
    mounts = {target: secrets / source.removeprefix("secrets-")
              for source, target, *_ in (v.split(":") for v in spec["volumes"]) if source.startswith("secrets-")}

    def mapped(value: str) -> str:
        for target, folder in mounts.items():
            value = value.replace(target, str(folder))
        return value

    fields = {key.removeprefix("HYBRID_").lower(): mapped(str(value)) for key, value in spec["environment"].items()
              if key.startswith("HYBRID_TEMPORAL_TLS") or key in ("HYBRID_TEMPORAL_JWT_FILE", "HYBRID_CODEC_KEYS_FILE")}
    proxy = MtlsProxy(secrets, temporal_target)
    async with proxy as target:
        client = await connect(Settings(temporal_address=target, **fields))
        await client.count_workflows()
    assert set(proxy.peers) == {f"hybrid-{service}"}
    assert set(proxy.authorization) == {f"Bearer {(secrets / service / 'temporal.jwt').read_text().strip()}"}
