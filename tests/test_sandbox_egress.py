"""Sandbox network by allowlist: own network namespace always, the egress proxy the only way out (real bubblewrap,
real Temporal, a real TCP server on the host's loopback as the thing to protect)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from pathlib import Path

import pytest

from activities.sandbox import _egress
from activities.sandbox._egress import EgressProxy
from domain.egress import forbidden_reason, parse_grant, parse_grants
from domain.sandbox import Origin, SandboxSpec
from tests.test_sandbox import root, run  # noqa: F401 - root is a fixture


class HostServer:
    """A TCP server on the host's 127.0.0.1 that answers any HTTP request and counts the connections it gets."""

    def __init__(self, body: bytes = b"hello from the host") -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.body = body
        self.accepted = 0
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self._stop:
                conn.close()
                return
            self.accepted += 1
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                                 % (len(self.body), self.body))
                except OSError:
                    pass

    def close(self) -> None:
        self._stop = True
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            pass
        self.sock.close()
        self.thread.join(timeout=5)


@pytest.fixture
def host_servers():
    made: list[HostServer] = []

    def make(body: bytes = b"hello from the host") -> HostServer:
        made.append(HostServer(body))
        return made[-1]

    yield make
    for s in made:
        s.close()


def test_addresses_that_are_never_reached():
    for addr, kind in [("127.0.0.1", "loopback"), ("127.8.9.1", "loopback"), ("::1", "loopback"),
                       ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
                       ("100.64.0.1", "CGNAT"), ("fd12::1", "private"), ("169.254.169.254", "metadata"),
                       ("fd00:ec2::254", "metadata"), ("169.254.1.1", "link-local"), ("fe80::1", "link-local"),
                       ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("0.0.0.0", "unspecified"),
                       ("::", "unspecified"), ("::ffff:127.0.0.1", "loopback"), ("64:ff9b::a00:1", "private"),
                       ("2002:7f00:1::", "loopback"), ("240.0.0.1", "reserved"),
                       ("203.0.113.80", "non-global"), ("198.18.0.1", "non-global"), ("2001:db8::1", "non-global")]:
        reason = forbidden_reason(addr)
        assert reason is not None and kind.lower() in reason.lower(), (addr, reason)
    for addr in ("93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"):
        assert forbidden_reason(addr) is None, addr
    assert parse_grant("PyPI.org.").host == "pypi.org" and parse_grant("pypi.org").ports == (80, 443)
    assert parse_grant("example.com:8443").ports == (8443,)
    for bad in ("http://x", "a b", "x:0", "x:99999", "", "-x.com"):
        with pytest.raises(ValueError):
            parse_grant(bad)
    with pytest.raises(ValueError):
        SandboxSpec(command=("true",), network_hosts=("evil.com/../x",))


def _through(sock_path: Path, request: bytes) -> bytes:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(str(sock_path))
    s.sendall(request)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return data


def test_the_proxy_allows_exactly_the_grant_and_checks_the_address_it_connects_to(tmp_path, host_servers):
    victim, allowed = host_servers(b"victim"), host_servers(b"allowed")
    rebinding = {"rebind.test": ["127.0.0.1"], "mixed.test": ["10.0.0.1", "127.0.0.1"]}

    def resolver(host: str, port: int) -> list[str]:
        return rebinding[host] if host in rebinding else _egress.system_resolver(host, port)

    grants = parse_grants([f"localhost:{victim.port}", f"rebind.test:{victim.port}", f"mixed.test:{victim.port}",
                           f"allowed.test:{allowed.port}", f"127.0.0.1:{victim.port}"])
    sock = tmp_path / "egress.sock"
    with EgressProxy(sock, grants, resolver=resolver, test_routes={"allowed.test": "127.0.0.1"}) as proxy:
        answers = {
            "connect ip": _through(sock, f"CONNECT 127.0.0.1:{victim.port} HTTP/1.1\r\n\r\n".encode()),
            "connect localhost": _through(sock, f"CONNECT localhost:{victim.port} HTTP/1.1\r\n\r\n".encode()),
            "plain localhost": _through(sock, f"GET http://localhost:{victim.port}/ HTTP/1.1\r\nHost: x\r\n\r\n"
                                        .encode()),
            "rebinding": _through(sock, f"CONNECT rebind.test:{victim.port} HTTP/1.1\r\n\r\n".encode()),
            "mixed": _through(sock, f"CONNECT mixed.test:{victim.port} HTTP/1.1\r\n\r\n".encode()),
            "other port": _through(sock, f"CONNECT allowed.test:{victim.port} HTTP/1.1\r\n\r\n".encode()),
            "ungranted": _through(sock, b"CONNECT example.com:443 HTTP/1.1\r\n\r\n"),
            "granted": _through(sock, f"GET http://allowed.test:{allowed.port}/x HTTP/1.1\r\nHost: allowed.test\r\n"
                                f"Proxy-Connection: keep-alive\r\n\r\n".encode()),
        }
    for name, answer in answers.items():
        if name == "granted":
            assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"allowed"), answer
        else:
            assert answer.startswith(b"HTTP/1.1 403"), (name, answer)
    assert victim.accepted == 0
    assert allowed.accepted == 1
    refused = {(a.host, a.port): a.reason for a in proxy.attempts if not a.allowed}
    assert "loopback" in refused[("localhost", victim.port)] and "loopback" in refused[("rebind.test", victim.port)]
    assert "not granted" in refused[("allowed.test", victim.port)] and "not a granted host" in refused[
        ("example.com", 443)]
    ok = [a for a in proxy.attempts if a.allowed]
    assert [(a.host, a.port, a.address) for a in ok] == [("allowed.test", allowed.port, "127.0.0.1")]
    assert not sock.exists()


def test_without_a_test_route_the_test_server_name_is_refused(tmp_path, host_servers):
    """The test seam is the only thing that lets a loopback address through: off, the same name is refused."""
    server = host_servers()
    sock = tmp_path / "egress.sock"
    with EgressProxy(sock, parse_grants([f"allowed.test:{server.port}"]),
                     resolver=lambda h, p: ["127.0.0.1"], test_routes={}) as proxy:
        answer = _through(sock, f"CONNECT allowed.test:{server.port} HTTP/1.1\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 403") and server.accepted == 0
    assert "loopback" in proxy.attempts[0].reason
    assert _egress.TEST_ROUTES == {}  # nothing in the code under test sets it


SANDBOX_CLIENT = r"""
import json, os, socket, sys, urllib.request
victim, allowed, temporal = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
out = {"env": os.environ.get("HTTPS_PROXY"), "direct": {}, "proxy": {}}
for host, port in (("127.0.0.1", victim), ("localhost", victim), ("10.0.2.2", victim), ("1.1.1.1", victim),
                   ("127.0.0.1", temporal)):
    try:
        socket.create_connection((host, port), timeout=3).close()
        out["direct"][f"{host}:{port}"] = "CONNECTED"
    except OSError as e:
        out["direct"][f"{host}:{port}"] = e.strerror or str(e)
def via_proxy(line):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(line.encode() + b"\r\nHost: x\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
        if data.startswith(b"HTTP/1.1 200 Connection"):
            break
    s.close()
    return data.split(b"\r\n")[0].decode()
for name, line in [("connect ip", f"CONNECT 127.0.0.1:{victim} HTTP/1.1"),
                   ("connect localhost", f"CONNECT localhost:{victim} HTTP/1.1"),
                   ("plain localhost", f"GET http://localhost:{victim}/ HTTP/1.1"),
                   ("plain ip", f"GET http://127.0.0.1:{victim}/ HTTP/1.1"),
                   ("temporal", f"CONNECT localhost:{temporal} HTTP/1.1"),
                   ("unix socket", None)]:
    if line is None:
        u = socket.socket(socket.AF_UNIX)
        u.connect("/run/egress.sock")
        u.sendall(f"CONNECT localhost:{victim} HTTP/1.1\r\n\r\n".encode())
        out["proxy"][name] = u.recv(200).split(b"\r\n")[0].decode()
        continue
    out["proxy"][name] = via_proxy(line)
with urllib.request.urlopen(f"http://allowed.test:{allowed}/hello", timeout=10) as r:
    out["granted"] = r.read().decode()
print(json.dumps(out))
"""


async def test_a_granted_sandbox_reaches_the_granted_host_and_nothing_of_the_host(
        client, settings, run_worker, scripted_pool, root, tmp_path, host_servers, monkeypatch):  # noqa: F811
    victim, allowed = host_servers(b"temporal-like"), host_servers(b"granted content")
    monkeypatch.setitem(_egress.TEST_ROUTES, "allowed.test", "127.0.0.1")
    policy = tmp_path / "policy.toml"
    policy.write_text('[[model.rules]]\noperations = ["sandbox"]\n[[model.rules]]\noperations = ["network"]\n'
                      'hosts = ["*"]\n')
    settings.permissions_file = policy
    temporal = int(settings.temporal_address.rpartition(":")[2])  # the real Temporal frontend of this test run
    argv_spec = SandboxSpec(command=("python3", "-I", "main.py", str(victim.port), str(allowed.port), str(temporal)),
                            files={"main.py": SANDBOX_CLIENT},
                            network_hosts=(f"allowed.test:{allowed.port}", f"localhost:{victim.port}",
                                           f"127.0.0.1:{victim.port}", f"localhost:{temporal}"),
                            origin=Origin(actor="model", model_id="coder"))
    async with run_worker(scripted_pool()):
        out = await run(client, settings, argv_spec)
    assert out.status == "approved" and out.exit_code == 0 and out.network, out
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["env"] == "http://127.0.0.1:3128"
    assert "CONNECTED" not in seen["direct"].values(), seen  # its own loopback; no route anywhere else
    assert seen["direct"][f"1.1.1.1:{victim.port}"] == "Network is unreachable"
    assert all(v.startswith("HTTP/1.1 403") for v in seen["proxy"].values()), seen["proxy"]
    assert seen["granted"] == "granted content"
    assert victim.accepted == 0  # not one connection reached the host's loopback server
    assert allowed.accepted == 1
    refused = [a for a in out.egress if not a.allowed]
    assert {a.host for a in refused} == {"127.0.0.1", "localhost"}
    assert [(a.host, a.port, a.allowed) for a in out.egress if a.allowed] == [("allowed.test", allowed.port, True)]


async def test_without_a_grant_there_is_no_proxy_and_no_network(client, settings, run_worker, scripted_pool,
                                                                root, host_servers):  # noqa: F811
    victim = host_servers()
    code = (f"import os, socket\nprint(os.environ.get('HTTP_PROXY'), os.path.exists('/run/egress.sock'))\n"
            f"try:\n    socket.create_connection(('127.0.0.1', {victim.port}), timeout=2)\n    print('CONNECTED')\n"
            f"except OSError as e:\n    print(e.strerror)\n")
    async with run_worker(scripted_pool()):
        out = await run(client, settings, SandboxSpec(code=code, language="python"))
    assert out.stdout.split("\n")[:2] == ["None False", "Connection refused"], out
    assert victim.accepted == 0 and out.egress == [] and not out.network


async def test_egress_is_refused_once_the_proxy_is_gone(tmp_path):
    """The proxy's socket is removed when the run ends: nothing keeps listening for a finished sandbox."""
    sock = tmp_path / "s.sock"
    proxy = EgressProxy(sock, [])
    proxy.start()
    assert sock.exists()
    proxy.stop()
    await asyncio.sleep(0)
    assert not sock.exists()
