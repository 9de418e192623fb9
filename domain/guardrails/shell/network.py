"""Command rules, family module: Downloads, raw connections, reverse shells, tunnels and listeners."""

from __future__ import annotations

import re

from domain.guardrails import paths
from domain.guardrails.shell.analyzer import (SHELLS, Analyzer, _name, _opts_with_arg)
from domain.guardrails.shell.parser import Cmd
from domain.guardrails.shell.registry import handles, rule
from domain.guardrails.verdict import Risk

TUNNEL = rule("tunnel_listener", "tunnel_listener",
              "opens a listener, a reverse or SOCKS tunnel, or exposes a local port to the internet")


@handles('curl', 'wget')
def curl(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    args = argv[1:]
    for i, a in enumerate(args):
        if a in ("-o", "--output", "-O", "--output-document") and i + 1 < len(args) and args[i + 1] != "-" \
                and not args[i + 1].startswith(("http:", "https:", "ftp:")):
            an.downloaded.add(paths.clean(args[i + 1]))
        elif a.startswith("-O") and len(a) > 2 and a[2:] != "-":
            an.downloaded.add(paths.clean(a[2:]))
    if _name(argv[0]) == "wget" or "-O" in args or "--remote-name" in args:
        for a in args:
            if re.match(r"(?:https?|ftp)://", a):
                base = a.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
                if base:
                    an.downloaded.add(base)


@handles('nc', 'ncat', 'netcat', 'nc.traditional', 'nc.openbsd')
def nc(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if any(a in ("-e", "-c", "--exec", "--sh-exec", "--lua-exec") or re.fullmatch(r"-\w*[ec]", a)
           for a in argv[1:]):
        an.add("reverse_shell", Risk.CRITICAL, f"{_name(argv[0])} attaches a program to a network connection")
    up = [_name(u.argv[0]) for u in cmd.upstream() if u.argv]
    if any(n in SHELLS for n in up):
        an.add("reverse_shell", Risk.CRITICAL, "pipes a shell into a network connection")
    for r_op, target in cmd.redirects:
        if r_op == "<" and (paths.is_secret(paths.clean(target))):
            an.add("credential_exfiltration", Risk.CRITICAL, f"sends {target} over the network")


@handles('telnet', 'openssl')
def telnet(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    up = [_name(u.argv[0]) for u in cmd.upstream() if u.argv]
    if any(n in SHELLS for n in up):
        an.add("reverse_shell", Risk.CRITICAL, "pipes a shell into telnet")


@handles('socat')
def socat(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    joined = " ".join(argv[1:]).lower()
    if re.search(r"\b(?:exec|system):", joined) and re.search(r"tcp|udp|ssl|openssl", joined):
        an.add("reverse_shell", Risk.CRITICAL, "socat connects a program to the network")
    elif re.search(r"tcp[\w-]*-listen", joined) and "pty" in joined:
        an.add("reverse_shell", Risk.HIGH, "socat exposes a terminal on the network")


@handles('mkfifo')
def mkfifo(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    an.names.add("mkfifo")


@handles('mknod')
def mknod(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if "p" in argv[1:]:
        an.names.add("mkfifo")


@handles('ssh')
def ssh(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    ops = _opts_with_arg(argv[1:], {"-i", "-p", "-l", "-o", "-F", "-J", "-L", "-R", "-D", "-b", "-c", "-e",
                                    "-m", "-S", "-W", "-w", "-E", "-O", "-Q", "-B"})
    if len(ops) > 1:
        an.nested(" ".join(ops[1:]))


def _ssh_forwards(argv: list[str]) -> list[tuple[str, str]]:
    out = []
    for i, a in enumerate(argv[1:], 1):
        m = re.fullmatch(r"-(\w*?)([RLD])(.*)", a)
        if m and not a.startswith("--"):
            spec = m.group(3) or (argv[i + 1] if i + 1 < len(argv) else "")
            out.append((m.group(2), spec))
        elif a == "-o" and i + 1 < len(argv) and re.match(r"(?i)(?:Remote|Local|Dynamic)Forward", argv[i + 1]):
            out.append((argv[i + 1][0].upper(), argv[i + 1].split("=", 1)[-1]))
    return out


@handles("ssh", "autossh", "dbclient", "plink")
def ssh_tunnel(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    gateway = "-g" in argv or any(re.fullmatch(r"-\w*g\w*", a) for a in argv[1:] if not a.startswith("--"))
    for kind, spec in _ssh_forwards(argv):
        if kind == "R":
            an.add(TUNNEL, Risk.HIGH, f"ssh -R {spec}: a reverse tunnel lets a remote host reach in")
        elif kind == "D":
            an.add(TUNNEL, Risk.HIGH, f"ssh -D {spec}: a SOCKS proxy through this machine")
        elif gateway or spec.startswith(("0.0.0.0:", "*:", "[::]:")):
            an.add(TUNNEL, Risk.HIGH, f"ssh -L {spec} open to the whole network")
        else:
            an.add(TUNNEL, Risk.MEDIUM, f"ssh -L {spec}: a local port forward")


@handles("nc", "ncat", "netcat", "nc.traditional", "nc.openbsd", "pwncat")
def listener(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if any(a in ("-l", "--listen") or re.fullmatch(r"-[a-zA-Z]*l[a-zA-Z]*", a) for a in argv[1:]):
        # A bare listener is how people test ports; one that runs a program (-e/-c) is judged as a reverse shell
        # above, and one that keeps serving (-k) or relays (a pipe out) is an open door.
        relays = "--keep-open" in argv or cmd.pipe_from is not None or \
            any(re.fullmatch(r"-[a-zA-Z]*k[a-zA-Z]*", a) for a in argv[1:])
        an.add(TUNNEL, Risk.HIGH if relays else Risk.MEDIUM, f"{_name(argv[0])} listens for connections")


@handles("socat")
def socat_listener(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    joined = " ".join(argv[1:]).lower()
    if re.search(r"\b(?:tcp|udp|ssl|openssl|sctp)[46]?-(?:listen|l)\b|\b(?:tcp|udp)[46]?-l:", joined):
        relays = re.search(r"\s(?:tcp|udp|ssl|openssl|socks\w*|proxy)[46]?:|\s(?:exec|system):", joined)
        an.add(TUNNEL, Risk.HIGH if relays else Risk.MEDIUM, "socat listens on the network" +
               (" and relays it to another host or program" if relays else ""))


@handles("ngrok", "cloudflared", "chisel", "frpc", "frps", "bore", "lt", "localtunnel", "pagekite", "pagekite.py",
         "tailscale", "zrok", "serveo", "inlets", "gost", "iodine", "dnscat", "dnscat2", "ligolo", "rpivot")
def tunnel_tools(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    name, pos = _name(argv[0]), [a for a in argv[1:] if not a.startswith("-")]
    quiet = {"version", "help", "login", "logout", "status", "update", "config", "authtoken", "completion", "list",
             "ip", "ping", "netcheck", "whois", "cert", "diagnose"}
    if not pos and name in ("ngrok", "cloudflared", "tailscale"):
        return
    if pos and pos[0] in quiet or "--version" in argv or "--help" in argv:
        return
    if name == "tailscale" and not (pos and pos[0] in ("funnel", "serve")):
        return
    an.add(TUNNEL, Risk.HIGH, f"{name} {' '.join(pos[:3])} exposes this machine through a tunnel")


@handles("python")
def http_server(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if "-m" not in argv:
        return
    i = argv.index("-m")
    mod = argv[i + 1] if i + 1 < len(argv) else ""
    if mod not in ("http.server", "SimpleHTTPServer", "pyftpdlib", "smtpd", "uploadserver"):
        return
    args = argv[i + 2:]
    directory = next((args[j + 1] for j, a in enumerate(args[:-1]) if a in ("-d", "--directory")), ".")
    bind = next((args[j + 1] for j, a in enumerate(args[:-1]) if a in ("-b", "--bind")), "")
    d = paths.clean(directory)
    if paths.is_root(d) or paths.is_home(d) or paths.is_system_top(d) or paths.is_secret_dir(d):
        an.add(TUNNEL, Risk.HIGH, f"serves {d} over the network")
    elif bind in ("0.0.0.0", "::", "*"):
        an.add(TUNNEL, Risk.MEDIUM, f"serves {d} on every interface")
