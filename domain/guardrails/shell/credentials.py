"""Command rules, family module: Reading keys, tokens and the environment, and sending them away."""

from __future__ import annotations

import re

from domain.guardrails import paths
from domain.guardrails.shell.analyzer import (DOWNLOADERS, NETCAT, SECRET_VAR, Analyzer, _flags, _name, _operands,
                                              _opts_with_arg, unwrap, META_READ)
from domain.guardrails.shell.parser import Cmd
from domain.guardrails.shell.registry import every_command, handles, rule
from domain.guardrails.verdict import Risk

CREDENTIAL_ACCESS = rule('credential_access', 'credential_access', 'reads private keys, tokens or password stores')
CREDENTIAL_EXFILTRATION = rule('credential_exfiltration', 'credential_access', 'sends secrets over the network')
SECRET_ENV_DUMP = rule('secret_env_dump', 'credential_access', 'prints secret environment variables')
ENV_DUMP = rule('env_dump', 'low_signal', 'prints the whole environment')
DISCOVERY = rule("credential_discovery", "credential_discovery",
                 "searches the disk for keys or passwords and archives or sends what it finds")
LIST_SECRETS = rule('list_secrets', 'low_signal', 'lists a secrets folder')


@handles('security')
def security(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if any(a in ("find-generic-password", "find-internet-password", "dump-keychain", "export",
                 "find-certificate") for a in argv[1:]) and (re.search(r"[wg]", _flags(argv)) or "dump-keychain" in argv
                                                             or "export" in argv):
        an.add("credential_access", Risk.HIGH, "reads secrets from the keychain")


@handles('secret-tool')
def secret_tool(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if any(a in ("lookup", "search") for a in argv[1:]):
        an.add("credential_access", Risk.HIGH, "reads secrets from the keyring")


@handles('gpg')
def gpg(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if any(a.startswith("--export-secret") for a in argv):
        an.add("credential_access", Risk.HIGH, "exports private keys")


@handles('printenv')
def printenv(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    ops = _operands(argv)
    if any(SECRET_VAR.search(o) for o in ops):
        an.add("secret_env_dump", Risk.HIGH, f"prints secret variables {' '.join(ops)}")
    elif not ops:
        env_dump(an, cmd, _name(argv[0]))


@handles('env')
def env(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if len(argv) == 1:
        env_dump(an, cmd, "env")


@handles('export')
def export(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if argv[1:] == ["-p"] or len(argv) == 1:
        env_dump(an, cmd, "export")


def env_dump(an: Analyzer, cmd: Cmd, what: str) -> None:
    an.add("env_dump", Risk.MEDIUM, f"{what} prints every environment variable")
    an.names.add("__env_dump__")


@handles('grep', 'egrep', 'rg')
def grep(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    up = [_name(u.argv[0]) for u in cmd.upstream() if u.argv]
    if any(n in ("env", "printenv", "set", "export", "declare") for n in up) and \
            SECRET_VAR.search(" ".join(argv[1:])):
        an.add("secret_env_dump", Risk.HIGH, "filters the environment for secrets")


@handles('echo', 'printf')
def echo(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    for a in argv[1:]:
        for m in re.finditer(r"\$\{?(\w+)", a):
            if SECRET_VAR.search(m.group(1)):
                an.add("secret_env_dump", Risk.HIGH, f"prints secret variable {m.group(1)}")


@every_command
def reads(an: Analyzer, cmd: Cmd, argv: list[str], name: str) -> None:
    args = argv[1:]
    if name in ("grep", "egrep", "rg", "ag", "ack", "zgrep"):
        ops = [a for a in args if not a.startswith("-")]
        args = ops[1:] if ops and "-e" not in args and "-f" not in args else ops
    if name in ("echo", "printf", "ssh", "scp") and name != "scp":
        return
    targets = [a for a in args if not a.startswith("-") or "=" in a]
    if name in ("cp", "mv", "install", "ln") and len(targets) > 1:
        targets = targets[:-1]
    targets = [t.split("=", 1)[1] if t.startswith("-") else t for t in targets]
    targets += [t.lstrip("@") for t in args if t.startswith("@")]
    targets += [t for op, t in cmd.redirects if op in ("<", "<>")]
    network = name in DOWNLOADERS | NETCAT | {"scp", "rsync", "sftp", "ftp", "socat", "smbclient"}
    for t in targets:
        p = paths.clean(t.lstrip("@"))
        if name == "scp" and ":" in t and not t.startswith("/"):
            continue
        if paths.is_secret(p):
            if paths.is_history(p) and name not in ("cat", "cp", "scp", "curl"):
                continue
            if name in META_READ and name not in ("git",):
                if name in ("ls", "stat", "file", "test", "[", "find", "du", "tree"):
                    an.add("list_secrets", Risk.LOW, f"{name} looks at {p}")
                continue
            if network or (name == "scp"):
                an.add("credential_exfiltration", Risk.CRITICAL, f"{name} sends {p} over the network")
            else:
                an.add("credential_access", Risk.HIGH, f"{name} reads {p}")
        elif paths.is_secret_dir(p):
            if name in ("ls", "stat", "find", "tree", "du", "file"):
                an.add("list_secrets", Risk.LOW, f"{name} lists {p}")
            elif name in ("tar", "zip", "cp", "rsync", "scp", "7z", "gzip") or network:
                an.add("credential_access", Risk.HIGH, f"{name} copies {p}")
    if network:
        for u in cmd.upstream():
            u_argv = unwrap(list(u.argv), [])[0]
            un = _name(u_argv[0]) if u_argv else ""
            if any(paths.is_secret(paths.clean(a)) for a in u.argv[1:]) and un not in ("ls",):
                an.add("credential_exfiltration", Risk.CRITICAL, f"pipes secrets into {name}")
            if un in ("env", "printenv") or "__env_dump__" in an.names and un in ("env", "printenv", "set"):
                an.add("credential_exfiltration", Risk.CRITICAL, f"sends the environment through {name}")


_SECRET_NAME = re.compile(r"id_(?:rsa|dsa|ecdsa|ed25519)|\.pem\b|\.key\b|\.ppk\b|\.p12\b|\.pfx\b|\.kdbx?\b|\.jks\b|"
                          r"\.env\b|credentials|\.netrc|\.pgpass|known_hosts|authorized_keys|wallet|keystore|"
                          r"\.aws|\.ssh|\.kube|kubeconfig|\.gnupg|\.docker/config|secrets?\b|passw(?:or)?d|shadow|"
                          r"token|\.git-credentials|\.npmrc|\.pypirc|htpasswd|\.ovpn\b", re.I)
_SECRET_CONTENT = re.compile(r"PRIVATE KEY|AKIA|ASIA|aws_secret|secret|passw(?:or)?d|passwd|api[_-]?key|token|"
                             r"BEGIN\b|ghp_|xox[bp]-|sk-[A-Za-z0-9]|bearer|credential", re.I)
ARCHIVERS = {"tar", "zip", "7z", "7za", "rar", "cpio", "gzip", "bzip2", "xz", "zstd", "pax", "ar", "base64"}
SENDERS = DOWNLOADERS | NETCAT | {"scp", "rsync", "sftp", "ftp", "socat", "smbclient", "ssh", "telnet", "openssl",
                                  "rclone", "aws", "gsutil", "mail", "sendmail", "mutt", "sshpass"}


def _is_secret_search(argv: list[str]) -> bool:
    """find/locate/grep looking for key files or secret markers."""
    if not argv:
        return False
    name = _name(argv[0])
    if name in ("find", "fd", "fdfind", "locate", "mlocate", "plocate", "ls"):
        return any(_SECRET_NAME.search(a) for a in argv[1:]) and name != "ls"
    if name in ("grep", "egrep", "rg", "ag", "ack", "zgrep", "git"):
        pats = [a for a in argv[1:] if not a.startswith("-")][:1]
        pats += [argv[i + 1] for i, a in enumerate(argv[1:-1], 1) if a in ("-e", "--regexp")]
        recursive = any(re.fullmatch(r"-\w*[rR]\w*", a) or a in ("--recursive", "-r") for a in argv[1:]) or \
            name in ("rg", "ag", "ack")
        return recursive and any(_SECRET_CONTENT.search(p) for p in pats)
    return False


def _inner(argv: list[str]) -> list[str]:
    """The program xargs or find -exec runs, if any."""
    name = _name(argv[0]) if argv else ""
    if name == "xargs":
        return _opts_with_arg(argv[1:], {"-I", "-n", "-P", "-L", "-d", "-s", "-E", "-a", "--max-args",
                                         "--max-procs", "--delimiter", "--arg-file", "--replace"})
    if name in ("find", "fd", "fdfind"):
        for i, a in enumerate(argv):
            if a in ("-exec", "-execdir", "-ok", "-x", "--exec", "-X", "--exec-batch"):
                return argv[i + 1:]
    return []


def _sink(argv: list[str]) -> str | None:
    """'network' or 'archive' when this stage sends or packs what it reads."""
    for words in (argv, _inner(argv)):
        if not words:
            continue
        words = unwrap(list(words), [])[0]
        n = _name(words[0]) if words else ""
        if n in SENDERS:
            return "network"
        if n in ARCHIVERS:
            return "archive"
    return None


@every_command
def discovery(an: Analyzer, cmd: Cmd, argv: list[str], name: str) -> None:
    """Credential discovery whose results go to an archive or the network, in one pipeline or one find/xargs."""
    stages = [unwrap(list(u.argv), [])[0] for u in reversed(cmd.upstream())] + [argv]
    searched = False
    for words in stages:
        if searched:
            sink = _sink(words)
            if sink is not None:
                an.add(DISCOVERY, Risk.CRITICAL if sink == "network" else Risk.HIGH,
                       f"searches for credentials and {'sends' if sink == 'network' else 'archives'} them "
                       f"({_name(words[0])})")
                return
        if _is_secret_search(words):
            searched = True
            inner = _inner(words)
            sink = _sink(inner) if inner else None
            if sink is not None:
                an.add(DISCOVERY, Risk.CRITICAL if sink == "network" else Risk.HIGH,
                       f"{_name(words[0])} finds credentials and runs {_name(inner[0])} on them")
                return
    # only the last stage of a pipeline reports, so a pipeline is judged once
