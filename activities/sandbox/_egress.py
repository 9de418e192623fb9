"""The egress proxy: the only way out of a sandbox that was granted network (the design of Anthropic's
sandbox-runtime: bubblewrap with its own network namespace, a proxy reached over a unix socket bound inside).

    code in the sandbox --HTTP_PROXY=http://127.0.0.1:3128--> relay (inside, Python, RELAY below)
      --unix socket bound at /run/egress.sock--> EgressProxy (worker, this module) --TCP--> granted host

The sandbox's network namespace has only its own loopback, so the relay's 127.0.0.1 is the sandbox's, never the
host's. The proxy speaks HTTP CONNECT and plain (absolute-URI) HTTP, allows exactly the granted host names and
ports, resolves each name itself once, refuses it when an address is loopback, private, link-local, multicast,
unspecified, reserved or cloud metadata (domain/egress.py), and connects to the address it checked (so DNS
rebinding between the check and the connect changes nothing). Every attempt is recorded.

Test seam: `TEST_ROUTES` (name -> IP address) makes the proxy resolve a name to that address and exempts exactly
that (name, address) pair from the address check, so a test can reach a local server under a granted name while
every other name, and that name under any other address, is still refused. Only test code sets it (e.g.
`monkeypatch.setitem`); no setting, environment variable or request reaches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from domain.egress import EgressAttempt, HostGrant, forbidden_reason, granted, normalize_host

TEST_ROUTES: dict[str, str] = {}
RELAY_PORT = 3128
SOCKET_IN_SANDBOX = "/run/egress.sock"
MAX_HEAD_BYTES = 64 * 1024
MAX_RECORDED = 200
MAX_CONNECTIONS = 64  # open at once per sandbox; more are answered 503 (the worker's fds are not the sandbox's)
_DROP_REQUEST_HEADERS = {b"proxy-connection", b"proxy-authorization", b"connection", b"keep-alive"}

Resolver = Callable[[str, int], list[str]]

# Runs inside the sandbox as `python3 -I -S -c RELAY SOCKET -- argv...`: listens on the sandbox's own
# 127.0.0.1:3128, forks a relay that copies every connection to the unix socket, and execs the command.
RELAY = r"""
import os, select, socket, sys, threading
path, argv = sys.argv[1], sys.argv[3:]
ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", %d))
ls.listen(128)
def pipe(c):
    try:
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        u.connect(path)
    except OSError:
        c.close()
        return
    peer = {c: u, u: c}
    live = [c, u]
    try:
        while live:
            for s in select.select(live, [], [])[0]:
                data = s.recv(65536)
                if data:
                    peer[s].sendall(data)
                else:
                    live.remove(s)
                    try:
                        peer[s].shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
    except OSError:
        pass
    c.close()
    u.close()
if os.fork() == 0:
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=pipe, args=(c,), daemon=True).start()
ls.close()
os.execvp(argv[0], argv)
""" % RELAY_PORT


def proxy_env() -> dict[str, str]:
    url = f"http://127.0.0.1:{RELAY_PORT}"
    return {"HTTP_PROXY": url, "HTTPS_PROXY": url, "http_proxy": url, "https_proxy": url, "NO_PROXY": "",
            "no_proxy": ""}


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for *_, addr in infos:
        if addr[0] not in seen:
            seen.append(addr[0])
    return seen


class EgressProxy:
    """One sandbox's proxy on a unix socket, served by an event loop in its own thread while the run lasts."""

    def __init__(self, socket_path: Path, grants: list[HostGrant], *, resolver: Resolver | None = None,
                 test_routes: Mapping[str, str] | None = None, connect_timeout_s: float = 10.0,
                 owner: tuple[int, int] | None = None) -> None:
        self.socket_path = Path(socket_path)
        self.grants = list(grants)
        self.resolver = resolver or system_resolver
        self.test_routes = {normalize_host(k): v for k, v in dict(TEST_ROUTES if test_routes is None
                                                                   else test_routes).items()}
        self.connect_timeout_s = connect_timeout_s
        self.owner = owner
        self.attempts: list[EgressAttempt] = []
        self.dropped = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._open = 0

    # lifecycle ----------------------------------------------------------------------------------------------
    def __enter__(self) -> "EgressProxy":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.socket_path.unlink(missing_ok=True)
        ready = threading.Event()
        failed: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(asyncio.start_unix_server(
                    self._handle, path=str(self.socket_path), limit=MAX_HEAD_BYTES))
            except BaseException as e:  # noqa: BLE001 - reported to start()
                failed.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=serve, daemon=True, name=f"egress-{self.socket_path.parent.name}")
        self._thread.start()
        ready.wait()
        if failed:
            raise failed[0]
        if self.owner is not None:
            os.chown(self.socket_path, *self.owner)
        os.chmod(self.socket_path, 0o600)

    def stop(self) -> None:
        loop = self._loop
        if loop is None or self._thread is None:
            return

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            loop.stop()

        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(close(), loop)
        self._thread.join(timeout=5)
        self.socket_path.unlink(missing_ok=True)
        self._loop = None

    # decisions ----------------------------------------------------------------------------------------------
    def _record(self, host: str, port: int, allowed: bool, reason: str, address: str | None = None) -> None:
        with self._lock:
            if len(self.attempts) >= MAX_RECORDED:
                self.dropped += 1
                return
            self.attempts.append(EgressAttempt(host=host[:260], port=port, allowed=allowed, reason=reason[:300],
                                               address=address))

    async def decide(self, host: str, port: int) -> tuple[list[str], str]:
        """(addresses that may be connected to, in order; why not when empty)."""
        host = normalize_host(host)
        if why := granted(self.grants, host, port):
            return [], why
        if host in self.test_routes:
            return [self.test_routes[host]], "granted (test route)"
        try:
            found = await asyncio.get_running_loop().run_in_executor(None, self.resolver, host, port)
        except (OSError, UnicodeError) as e:
            return [], f"cannot resolve {host}: {e}"
        ok = [a for a in found if forbidden_reason(a) is None]
        if not ok:
            first = found[0] if found else "nothing"
            return [], f"{host} resolves to {first}: {forbidden_reason(first) if found else 'no address'}"
        return ok, "granted"

    # the proxy ----------------------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open += 1
        try:
            if self._open > MAX_CONNECTIONS:
                await _reply(writer, 503, f"more than {MAX_CONNECTIONS} connections at once")
                writer.close()
                return
            await self._serve(reader, writer)
        finally:
            self._open -= 1

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError):
                return await _reply(writer, 400, "bad proxy request")
            lines = head[:-4].split(b"\r\n")
            try:
                method, target, version = lines[0].decode("latin-1").split(" ")
            except ValueError:
                return await _reply(writer, 400, "bad request line")
            if method == "CONNECT":
                host, port = _split_hostport(target, 443)
                path = ""
            else:
                url = urlsplit(target)
                if url.scheme != "http" or not url.hostname:
                    return await _reply(writer, 400, "plain HTTP needs an absolute http:// URL; use CONNECT "
                                                     "(HTTPS_PROXY) for anything else")
                try:
                    host, port = url.hostname, url.port or 80
                except ValueError:
                    return await _reply(writer, 400, "bad port")
                path = (url.path or "/") + (f"?{url.query}" if url.query else "")
            if host is None or port is None:
                return await _reply(writer, 400, "bad destination")
            addresses, reason = await self.decide(host, port)
            if not addresses:
                self._record(host, port, False, reason)
                return await _reply(writer, 403, f"egress refused: {reason}")
            up_reader, upstream, address, err = await self._connect(addresses, port)
            if upstream is None:
                self._record(host, port, False, f"connect failed: {err}", addresses[0])
                return await _reply(writer, 502, f"cannot connect to {host}:{port}: {err}")
            self._record(host, port, True, reason, address)
            if method == "CONNECT":
                writer.write(f"{version} 200 Connection established\r\n\r\n".encode("latin-1"))
            else:
                kept = [ln for ln in lines[1:] if ln.split(b":", 1)[0].strip().lower() not in _DROP_REQUEST_HEADERS]
                upstream.write(b"\r\n".join([f"{method} {path} {version}".encode("latin-1"), *kept,
                                             b"Connection: close", b"", b""]))
            await writer.drain()
            await asyncio.gather(_pump(reader, upstream), _pump(up_reader, writer))
        except (ConnectionError, OSError):
            pass
        finally:
            for w in (upstream, writer):
                if w is not None:
                    w.close()
                    with contextlib.suppress(Exception):
                        await w.wait_closed()

    async def _connect(self, addresses: list[str], port: int):
        err = "no address"
        for address in addresses:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(address, port), self.connect_timeout_s)
                return r, w, address, ""
            except (OSError, asyncio.TimeoutError) as e:
                err = str(e) or type(e).__name__
        return None, None, None, err


def _split_hostport(target: str, default: int) -> tuple[str | None, int | None]:
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = target.rpartition(":") if ":" in target else (target, "", "")
    if not port_text:
        return host or None, default
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        return None, None
    return host or None, int(port_text)


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
    except (ConnectionError, OSError):
        pass


async def _reply(writer: asyncio.StreamWriter, status: int, text: str) -> None:
    phrase = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway", 503: "Service Unavailable"}[status]
    body = (text + "\n").encode("utf-8", "replace")
    writer.write(f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                 f"Connection: close\r\n\r\n".encode() + body)
    with contextlib.suppress(ConnectionError, OSError):
        await writer.drain()
