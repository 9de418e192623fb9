"""Benchmark the sandbox egress proxy: a connection + one small HTTP exchange through the proxy (unix socket,
CONNECT, the proxy's grant and address checks, its own connect) against the same exchange made directly, same run.

    from bench.egress import egress_overhead     # egress_overhead(runs=200) -> dict (bench/security.py calls it)
    python bench/egress.py [--runs 200]          # one JSON object as the last line of stdout

  egress_proxy_overhead_ms_p50   p50(through the proxy) - p50(direct), in ms
  egress_direct_ms_p50, egress_proxy_ms_p50, egress_proxy_ratio_p50

The destination is a local server, reached under a granted name through the proxy's test route (the same seam
the tests use), since the proxy refuses loopback otherwise.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from activities.sandbox._egress import EgressProxy  # noqa: E402
from domain.egress import parse_grants  # noqa: E402

REQUEST = b"GET / HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n"
REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


def _server() -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.recv(65536)
                    conn.sendall(REPLY)
                except OSError:
                    pass

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def _read_all(s: socket.socket) -> bytes:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


def _direct(port: int) -> float:
    t = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(REQUEST)
        data = _read_all(s)
    assert data.endswith(b"ok"), data
    return time.perf_counter() - t


def _proxied(sock_path: str, port: int) -> float:
    t = time.perf_counter()
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock_path)
        s.sendall(f"CONNECT bench.test:{port} HTTP/1.1\r\n\r\n".encode())
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += s.recv(1)
        assert head.startswith(b"HTTP/1.1 200"), head
        s.sendall(REQUEST)
        data = _read_all(s)
    assert data.endswith(b"ok"), data
    return time.perf_counter() - t


def egress_overhead(runs: int = 200) -> dict:
    srv, port = _server()
    try:
        with tempfile.TemporaryDirectory() as d:
            sock = Path(d) / "egress.sock"
            with EgressProxy(sock, parse_grants([f"bench.test:{port}"]), test_routes={"bench.test": "127.0.0.1"}):
                direct, proxied = [], []
                for i in range(runs + 5):  # interleaved, so load on the machine hits both alike
                    d_s, p_s = _direct(port), _proxied(str(sock), port)
                    if i >= 5:
                        direct.append(d_s)
                        proxied.append(p_s)
    finally:
        srv.close()
    d50, p50 = statistics.median(direct) * 1000, statistics.median(proxied) * 1000
    return {"egress_proxy_overhead_ms_p50": round(p50 - d50, 3), "egress_direct_ms_p50": round(d50, 3),
            "egress_proxy_ms_p50": round(p50, 3), "egress_proxy_ratio_p50": round(p50 / d50, 2) if d50 else None,
            "egress_runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    print(json.dumps(egress_overhead(args.runs)))


if __name__ == "__main__":
    main()
