"""The analyzer core: peel wrappers off each simple command, hand it to the checks the family modules registered
for its name (registry.HANDLERS) and to those that look at every command (registry.EVERY), follow code into nested
shells and interpreters, and judge redirects, assignments and the line as a whole.
"""

from __future__ import annotations

import re

from domain.guardrails import paths
from domain.guardrails.code_rules import classify_write, scan_code
from domain.guardrails.shell import registry
from domain.guardrails.shell.parser import Cmd, Parsed, decode_escapes, parse
from domain.guardrails.verdict import RuleHit, Risk

MAX_DEPTH = 4

SHELLS = {"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "csh", "tcsh", "rbash", "yash", "pwsh",
          "powershell"}
DOWNLOADERS = {"curl", "wget", "fetch", "aria2c", "http", "https", "lwp-download", "lwp-request", "tftp", "ftp",
               "GET", "xh", "httpie", "Invoke-WebRequest", "iwr"}
NETCAT = {"nc", "ncat", "netcat", "nc.traditional", "nc.openbsd", "pwncat"}
DECODERS = {"base64", "base32", "xxd", "openssl", "uudecode", "tr", "rev", "gunzip", "zcat", "gzip", "bzip2",
            "xz", "basenc"}
PLATFORM_PROCS = re.compile(r"temporal|worker|postgres|postmaster|hybrid[-_]llm|uvicorn|llama|pg_ctl")
DEFENCE_SERVICES = re.compile(r"^(?:auditd?|apparmor|firewalld|ufw|iptables|nftables|selinux|falco\w*|clam[\w-]*|"
                              r"ossec\w*|wazuh\w*|falcon-sensor|osqueryd?|sysmon\w*|rsyslog|syslog\w*|"
                              r"systemd-journald|fail2ban|aide|crowdstrike|auditbeat|tripwire)(?:\.service)?$")
SECRET_VAR = re.compile(r"KEY|SECRET|TOKEN|PASS|CRED|PRIVATE|AUTH|SESSION", re.I)
_INTERP = {"python": ("-c",), "pypy": ("-c",), "perl": ("-e", "-E"), "ruby": ("-e",), "node": ("-e", "--eval", "-p",
           "--print"), "nodejs": ("-e", "--eval", "-p"), "php": ("-r",), "lua": ("-e",), "deno": ("eval",),
           "bun": ("-e", "--eval"), "osascript": ("-e",), "Rscript": ("-e",), "tclsh": (), "jshell": ()}
META_READ = {"ls", "stat", "file", "test", "[", "chmod", "chown", "ssh", "ssh-add", "ssh-keygen", "touch", "mkdir",
             "du", "wc", "echo", "printf", "ssh-copy-id", "realpath", "dirname", "basename", "which", "cd", "exa",
             "tree", "lsattr", "git", "find", "diff", "md5sum", "sha256sum"}



DYNAMIC_COMMAND = registry.rule("dynamic_command", "low_signal", "the command name is computed at run time")
ELEVATED = registry.rule("elevated_command", "low_signal", "runs a command as root")
UNPARSED = registry.rule("unparsed_command", "low_signal", "could not parse a command that has risky constructs")
OVERSIZED = registry.rule("oversized_input", "low_signal", "input longer than the parser's limit")
ENCODED = registry.rule("encoded_payload", "remote_code_exec", "an encoding (base64, hex, rot13...) hides a finding")
UNICODE = registry.rule("unicode_obfuscation", "low_signal", "invisible or look-alike characters")
SCANNER_ERROR = registry.rule("scanner_error", "low_signal", "the scanner failed on this input")


def _hit(rule: str, risk: Risk, detail: str) -> RuleHit:
    return RuleHit(rule=rule, risk=risk, detail=detail[:300])


def _opts_with_arg(argv: list[str], with_arg: set[str]) -> list[str]:
    """Drop leading options (and the arguments of those in with_arg); return the rest."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return argv[i + 1:]
        if not a.startswith("-") or a == "-":
            return argv[i:]
        if a in with_arg:
            i += 1
        i += 1
    return []


def unwrap(argv: list[str], assigns: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """Peel wrappers (sudo, env, nice, timeout, busybox, ...) off a command; return (inner argv, wrappers)."""
    wrappers: list[str] = []
    for _ in range(10):
        if not argv:
            break
        before = argv
        name = _name(argv[0])
        rest = argv[1:]
        if name in ("sudo", "doas", "pkexec", "run0"):
            if any(a in ("-i", "-s", "--login", "--shell") or re.fullmatch(r"-\w*[is]\w*", a) for a in rest[:3]) \
                    and not _opts_with_arg(rest, {"-u", "-g", "-h", "-p", "-C", "-r", "-t", "-U", "-D"}):
                wrappers.append(name + "-shell")
                return ["bash"], wrappers
            argv = _opts_with_arg(rest, {"-u", "-g", "-h", "-p", "-C", "-r", "-t", "-U", "-D", "--user"})
        elif name == "env":
            out = _opts_with_arg(rest, {"-u", "-C", "--unset", "--chdir"})
            if rest[:1] == ["-S"] or (rest and rest[0].startswith("-S")):
                out = " ".join(rest[1:]).split()
            while out and re.match(r"^\w+=", out[0]):
                k, _, v = out[0].partition("=")
                assigns.append((k, v))
                out = out[1:]
            argv = out
        elif name in ("nice", "ionice", "chrt", "taskset"):
            argv = _opts_with_arg(rest, {"-n", "-c", "-p", "--adjustment", "--class"})
            if name in ("chrt", "taskset") and argv and re.fullmatch(r"[\dx,a-f-]+", argv[0]):
                argv = argv[1:]
        elif name in ("nohup", "time", "setsid", "stdbuf", "unbuffer", "caffeinate", "torsocks", "proxychains",
                      "proxychains4", "catchsegv", "faketime", "command", "builtin", "exec", "then", "do", "else",
                      "!", "coproc", "sg", "firejail", "strace", "ltrace", "gdb", "valgrind", "tsp", "nq"):
            if name == "command" and rest[:1] in (["-v"], ["-V"]):
                return [], wrappers
            argv = _opts_with_arg(rest, {"-a", "-o", "-e", "-p", "-s", "-u", "-E"} if name in ("strace", "ltrace", "exec")
                                  else set())
        elif name == "timeout":
            argv = _opts_with_arg(rest, {"-s", "-k", "--signal", "--kill-after"})[1:]
        elif name == "busybox" or name == "toybox":
            argv = rest
        elif name == "chroot":
            argv = _opts_with_arg(rest, {"--userspec", "--groups"})[1:] or ["bash"]
        elif name in ("runuser", "su") and "--" in rest:
            argv = rest[rest.index("--") + 1:]
        elif name == "flock":
            rest = _opts_with_arg(rest, {"-w", "-E", "--timeout"})
            argv = rest[1:]
        elif name == "watch":
            inner = _opts_with_arg(rest, {"-n", "-d", "--interval"})
            argv = " ".join(inner).split()
        else:
            break
        if not argv:
            return before, wrappers  # the wrapper runs alone (`env`, `nohup`): judge it as itself
        wrappers.append(name)
    return argv, wrappers


def _name(word: str) -> str:
    name = word.lstrip("\\")
    if "/" in name:
        name = name.rstrip("/").rsplit("/", 1)[-1]
    if re.fullmatch(r"python[\d.]*m?", name):
        return "python"
    if re.fullmatch(r"perl[\d.]*|ruby[\d.]*|php[\d.]*|lua[\d.]*", name):
        return re.sub(r"[\d.]+$", "", name)
    if re.fullmatch(r"mkfs(?:\.\w+)?|mke2fs|mkswap|mkdosfs|mkntfs|newfs\w*", name):
        return "mkfs"
    return name


def _operands(argv: list[str]) -> list[str]:
    out, opts_done = [], False
    for a in argv[1:]:
        if a == "--" and not opts_done:
            opts_done = True
            continue
        if a.startswith("-") and not opts_done and a != "-":
            continue
        out.append(a)
    return out


def _flags(argv: list[str]) -> str:
    return "".join(a[1:] for a in argv[1:] if re.fullmatch(r"-[A-Za-z]+", a))


class Analyzer:
    def __init__(self, parsed: Parsed, depth: int) -> None:
        self.parsed = parsed
        self.depth = depth
        self.hits: list[RuleHit] = []
        self.names: set[str] = set()
        self.cwd: str | None = None
        self.downloaded: set[str] = set()

    def add(self, rule: str, risk: Risk, detail: str) -> None:
        self.hits.append(_hit(rule, risk, detail))

    def nested(self, code: str) -> None:
        if self.depth < MAX_DEPTH and code.strip():
            self.hits += analyze(parse(code, self.depth + 1), self.depth + 1)

    def code(self, code: str, lang: str) -> None:
        if self.depth < MAX_DEPTH and code.strip():
            self.hits += scan_code(code, lang, self.depth, lambda c, d: analyze(parse(c, d), d) if d <= MAX_DEPTH else [])

    def run(self) -> list[RuleHit]:
        assigns = list(self.parsed.assignments)
        for cmd in self.parsed.commands:
            before = len(self.hits)
            argv, wrappers = unwrap(cmd.argv, assigns)
            self.names.add(_name(argv[0]) if argv else "")
            self.command(cmd, argv, wrappers)
            self.redirects(cmd, argv)
            if cmd.span is not None and self.depth == 0:  # evidence: the command (and what pipes into it)
                start = min([cmd.span[0]] + [u.span[0] for u in cmd.upstream() if u.span is not None])
                for i in range(before, len(self.hits)):
                    if self.hits[i].span is None:
                        self.hits[i] = self.hits[i].model_copy(update={"span": (start, cmd.span[1])})
        self.assignments(assigns)
        self.whole_line()
        return self.hits

    def command(self, cmd: Cmd, argv: list[str], wrappers: list[str]) -> None:
        if any(w.endswith("-shell") for w in wrappers):
            self.add("privilege_escalation", Risk.HIGH, f"{wrappers[-1].removesuffix('-shell')} opens a root shell")
        if not argv:
            return
        name = _name(argv[0])
        if any(w in ("sudo", "doas", "pkexec", "run0") for w in wrappers):
            self.add("elevated_command", Risk.LOW, f"runs {name} as root")
        if argv[0].startswith(("$(", "`", "<(")) or (argv[0].startswith("$") and len(argv[0]) > 1):
            raw = argv[0]
            if re.search(r"\b(?:curl|wget|fetch)\b", raw):
                self.add("remote_code_exec", Risk.HIGH, "runs the output of a download as a command")
            elif re.search(r"\bbase64\b|\bxxd\b|\brev\b|\\x[0-9a-f]{2}", raw):
                self.add("decode_to_shell", Risk.HIGH, "runs decoded text as a command")
            else:
                self.add("dynamic_command", Risk.LOW, f"command name computed at run time: {raw[:60]}")
        self._ran_download(argv, name)
        if name in SHELLS and any(w in ("sudo", "doas", "pkexec", "run0", "su") for w in wrappers) and not any(
                re.fullmatch(r"-\w*c\w*", a) for a in argv[1:]) and not [a for a in argv[1:] if not a.startswith("-")]:
            self.add("privilege_escalation", Risk.HIGH, f"opens a root shell ({name})")
        for check in registry.HANDLERS.get(registry.key(name), ()):
            check(self, cmd, argv)
        if name in SHELLS or name in ("source", "."):
            self._shell(cmd, argv)
        elif name in _INTERP:
            self._interpreter(cmd, argv, name)
        for check in registry.EVERY:
            check(self, cmd, argv, name)

    def _shell(self, cmd: Cmd, argv: list[str]) -> None:
        args = argv[1:]
        code = None
        for i, a in enumerate(args):
            if _name(argv[0]) in ("pwsh", "powershell") and a.lower() in ("-enc", "-encodedcommand", "-e", "-ec"):
                self.add("decode_to_shell", Risk.HIGH, "PowerShell runs an encoded command")
                return
            if re.fullmatch(r"-\w*c\w*", a) and not a.startswith("--"):
                code = next((x for x in args[i + 1:] if not x.startswith("-")), "")
                break
            if a.startswith("-Command") or a.lower() in ("-c", "-command", "-encodedcommand", "-enc", "-e"):
                code = " ".join(args[i + 1:])
                if a.lower().startswith("-e"):
                    self.add("decode_to_shell", Risk.HIGH, "PowerShell runs an encoded command")
                break
        if code is not None:
            self.nested(code)
            return
        operands = [a for a in args if not a.startswith("-")]
        for op in operands:
            if op.startswith("<(") and re.search(r"\b(?:curl|wget|fetch|nc)\b", op):
                self.add("remote_code_exec", Risk.HIGH, "runs a script streamed from the network")
        if operands and not operands[0].startswith("<("):
            return  # runs a script file: judged by the download-then-run rule
        self._stdin_code(cmd, argv, "shell")

    def _stdin_code(self, cmd: Cmd, argv: list[str], lang: str) -> None:
        """A shell or interpreter reading its program from stdin: judge where that program comes from."""
        if cmd.heredoc:
            self.nested(cmd.heredoc) if lang == "shell" else self.code(cmd.heredoc, lang)
        for r_op, target in cmd.redirects:
            if r_op == "<<<":
                self.nested(target) if lang == "shell" else self.code(target, lang)
        up = [Cmd(argv=unwrap(list(u.argv), [])[0], redirects=u.redirects, heredoc=u.heredoc, pipe_from=u.pipe_from)
              for u in cmd.upstream()]  # `sudo curl ..`, `nohup wget ..` upstream: judge the program, not the wrapper
        names = [_name(u.argv[0]) if u.argv else "" for u in up]
        if any(n in DOWNLOADERS for n in names):
            self.add("remote_code_exec", Risk.HIGH, f"pipes a download into {_name(argv[0])}")
        if any(n in NETCAT or n in ("telnet", "openssl", "socat") for n in names):
            self.add("reverse_shell", Risk.CRITICAL, f"pipes a network connection into {_name(argv[0])}")
        decoder = [u for u, n in zip(up, names) if n in DECODERS and (n not in ("openssl",) or "-d" in u.argv
                   or "base64" in u.argv or "enc" in u.argv)]
        if decoder:
            self.add("decode_to_shell", Risk.HIGH, f"decodes data ({_name(decoder[0].argv[0])}) into a shell")
        for u, n in zip(up, names):
            if n in ("echo", "printf"):
                text = " ".join(a for a in u.argv[1:] if not re.fullmatch(r"-[neE]+", a))
                text = decode_escapes(text) if n == "printf" or "-e" in u.argv else text
                if not decoder:
                    self.nested(text) if lang == "shell" else self.code(text, lang)
            if n == "cat" and u.heredoc:
                self.nested(u.heredoc) if lang == "shell" else self.code(u.heredoc, lang)

    def _interpreter(self, cmd: Cmd, argv: list[str], name: str) -> None:
        flags = _INTERP[name]
        args = argv[1:]
        for i, a in enumerate(args):
            if a in flags or (name in ("perl", "ruby") and re.fullmatch(r"-\w*[eE]", a)) or \
                    (name == "python" and re.fullmatch(r"-\w*c", a)):
                if i + 1 < len(args):
                    self.code(args[i + 1], name)
                return
            if a.startswith("-c") and name == "python" and len(a) > 2:
                self.code(a[2:], name)
                return
        operands = [a for a in args if not a.startswith("-")]
        if not operands or operands[0] == "-":
            self._stdin_code(cmd, argv, name)

    def _ran_download(self, argv: list[str], name: str) -> None:
        if not self.downloaded or not argv:
            return
        cands = [argv[0]]
        if name in SHELLS or name in _INTERP or name in ("source", "."):
            cands += [a for a in argv[1:] if not a.startswith("-")][:1]
        for c in cands:
            p = paths.clean(c)
            if p in self.downloaded or p.lstrip("./") in self.downloaded or \
                    (self.cwd and p.startswith("./") and p[2:] in self.downloaded):
                self.add("remote_code_exec", Risk.HIGH, f"runs the downloaded file {p}")

    def _xargs_items(self, cmd: Cmd) -> list[str]:
        return getattr(cmd, "_xargs", [])

    def redirects(self, cmd: Cmd, argv: list[str]) -> None:
        name = _name(argv[0]) if argv else ""
        for op, target in cmd.redirects:
            t = target.strip()
            if t.startswith(("/dev/tcp/", "/dev/udp/")):
                if name in SHELLS or name in ("exec", "") or not argv or re.search(r"-i\b", " ".join(argv)):
                    self.add("reverse_shell", Risk.CRITICAL, f"connects {name or 'a descriptor'} to {t}")
                else:
                    self.add("reverse_shell", Risk.HIGH, f"opens a raw network socket {t}")
                continue
            if op in (">", ">>", ">|", "&>", ">&", "&>>", "<>"):
                p = paths.clean(t)
                if op == ">" and not argv and paths.is_log(p):
                    self.add("wipe_logs", Risk.HIGH, f"empties {p}")
                    continue
                for hit in classify_write(p, f"{name or 'redirect'} {op}"):
                    if hit.rule == "disk_wipe" and name == "cat" and not any(
                            a in ("/dev/zero", "/dev/urandom", "/dev/random") for a in argv):
                        pass
                    self.hits.append(hit)

    def assignments(self, assigns: list[tuple[str, str]]) -> None:
        for k, v in assigns:
            if k == "HISTFILE" and v in ("/dev/null", "") or k in ("HISTSIZE", "HISTFILESIZE", "SAVEHIST") and v == "0":
                self.add("clear_history", Risk.HIGH, f"{k}={v} stops recording history")

    def whole_line(self) -> None:
        for fname, body in self.parsed.functions.items():
            calls = [c for c in body if c.argv and c.argv[0] == fname]
            if len(calls) >= 2 or any(c.background or c.pipe_from is not None for c in calls):
                self.add("fork_bomb", Risk.CRITICAL, f"function {fname} spawns copies of itself")
        self_calls = [c for c in self.parsed.commands if c.argv and c.argv[0] in ("$0", "${0}", "$BASH_SOURCE")
                      and (c.background or c.pipe_from is not None)]
        if len(self_calls) >= 2:
            self.add("fork_bomb", Risk.CRITICAL, "the script starts copies of itself in the background")
        if "mkfifo" in self.names and (self.names & (NETCAT | {"telnet", "openssl", "socat"})) and \
                (self.names & SHELLS):
            self.add("reverse_shell", Risk.CRITICAL, "named pipe between a shell and a network connection")


def _q(w: str) -> str:
    return "'" + w.replace("'", "'\\''") + "'" if re.search(r"\s", w) else w


@registry.handles("cd", "pushd")
def _cd(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    """Track the working folder so relative deletes after `cd /` are judged where they land."""
    ops = _operands(argv)
    target = paths.clean(ops[0]) if ops else "~"
    if target.startswith(("/", "~")):
        an.cwd = target
    elif an.cwd:
        an.cwd = paths.clean(an.cwd.rstrip("/") + "/" + target)


def analyze(parsed: Parsed, depth: int = 0) -> list[RuleHit]:
    hits = Analyzer(parsed, depth).run()
    return hits
