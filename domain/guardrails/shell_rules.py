"""Rules over parsed shell commands: judge what each simple command does, after unwrapping sudo/env/xargs/...

Every finding is a RuleHit; names are stable (see `RULES`).
"""

from __future__ import annotations

import re

from domain.guardrails import paths
from domain.guardrails.code_rules import classify_write, scan_code
from domain.guardrails.shell import Cmd, Parsed, decode_escapes, parse
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

RULES = {
    "destruction": ["destructive_delete", "destructive_permissions", "overwrite_system_file", "shred_files",
                    "move_to_devnull", "kill_all_processes"],
    "disk_wipe": ["disk_wipe"],
    "fork_bomb": ["fork_bomb"],
    "remote_code_exec": ["remote_code_exec", "decode_to_shell", "encoded_payload"],
    "reverse_shell": ["reverse_shell"],
    "credential_access": ["credential_access", "credential_exfiltration", "secret_env_dump"],
    "privilege_escalation": ["privilege_escalation"],
    "persistence": ["persistence"],
    "disable_defences": ["disable_defences"],
    "history_logs": ["clear_history", "wipe_logs"],
    "platform_tamper": ["platform_tamper"],
    "low_signal": ["delete_outside_workspace", "elevated_command", "list_secrets", "env_dump", "unparsed_command",
                   "dynamic_command", "service_change", "unicode_obfuscation", "oversized_input"],
}


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
            argv, wrappers = unwrap(cmd.argv, assigns)
            self.names.add(_name(argv[0]) if argv else "")
            self.command(cmd, argv, wrappers)
            self.redirects(cmd, argv)
        self.assignments(assigns)
        self.whole_line()
        return self.hits

    # --- per command -------------------------------------------------------------------------------------
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
        handler = getattr(self, "_cmd_" + re.sub(r"\W", "_", name), None)
        if handler is not None:
            handler(cmd, argv)
        if name in SHELLS or name in ("source", "."):
            self._shell(cmd, argv)
        elif name in _INTERP:
            self._interpreter(cmd, argv, name)
        self._reads(cmd, argv, name)
        self._platform(argv, name)

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
        up = cmd.upstream()
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

    # --- specific commands --------------------------------------------------------------------------------
    def _delete_target(self, p: str, recursive: bool, what: str, filtered: bool = False) -> None:
        raw = p
        if self.cwd and not p.startswith(("/", "~", "$")):
            p = self.cwd.rstrip("/") + "/" + p
        p = paths.clean(p)
        drop = 1 if filtered else 0
        if paths.is_platform(p):
            self.add("platform_tamper", Risk.CRITICAL, f"{what} platform state {p}")
        elif paths.is_history(p):
            self.add("clear_history", Risk.HIGH, f"{what} shell history {p}")
        elif paths.is_log(p):
            self.add("wipe_logs", Risk.HIGH, f"{what} logs {p}")
        elif paths.is_root(p) or (paths.is_home(p) and (recursive or p.endswith("*"))):
            self.add("destructive_delete", Risk.CRITICAL if not drop else Risk.HIGH, f"{what} {p}")
        elif paths.is_system_top(p) and recursive:
            self.add("destructive_delete", Risk.CRITICAL if not drop else Risk.HIGH, f"{what} system directory {p}")
        elif paths.is_system(p) and not paths.is_temp(p):
            if paths.is_block_device(p):
                self.add("disk_wipe", Risk.HIGH, f"{what} device {p}")
            elif not p.startswith("/proc"):
                core = re.match(r"^/(?:etc|boot|bin|sbin|lib\w*|usr)(?:/|$)", p) or recursive
                self.add("destructive_delete", Risk.HIGH if core and not drop else Risk.MEDIUM,
                         f"{what} system path {p}")
        elif (sub := paths.home_sub(p)) is not None:
            if paths.is_secret(p) or paths.is_secret_dir(p):
                self.add("destructive_delete", Risk.HIGH, f"{what} keys or credentials {p}")
            elif paths.is_important_home(sub) and recursive:
                self.add("destructive_delete", Risk.HIGH if not drop else Risk.MEDIUM, f"{what} user data {p}")
            else:
                self.add("delete_outside_workspace", Risk.LOW, f"{what} {p} in the home directory")
        elif paths.is_temp(p):
            self.add("delete_outside_workspace", Risk.LOW, f"{what} temporary path {p}")
        elif p.startswith("/") and recursive:
            self.add("delete_outside_workspace", Risk.LOW if filtered or p in ("/tmp", "/var/tmp") else Risk.MEDIUM,
                     f"{what} absolute path {p}")
        elif re.match(r"^\$\{?\w+\}?/?\*?$", raw) and recursive:
            self.add("destructive_delete", Risk.HIGH, f"{what} {raw}: an unset variable would make this /")
        elif re.match(r"^(?:\.\./){2,}|^\.\.?/?\*?$", p) and recursive:
            self.add("delete_outside_workspace", Risk.MEDIUM if p.startswith("..") else Risk.LOW,
                     f"{what} {p} (the current or a parent folder)")

    def _cmd_cd(self, cmd: Cmd, argv: list[str]) -> None:
        ops = _operands(argv)
        target = paths.clean(ops[0]) if ops else "~"
        if target.startswith(("/", "~")):
            self.cwd = target
        elif self.cwd:
            self.cwd = paths.clean(self.cwd.rstrip("/") + "/" + target)

    _cmd_pushd = _cmd_cd

    def _cmd_curl(self, cmd: Cmd, argv: list[str]) -> None:
        args = argv[1:]
        for i, a in enumerate(args):
            if a in ("-o", "--output", "-O", "--output-document") and i + 1 < len(args) and args[i + 1] != "-" \
                    and not args[i + 1].startswith(("http:", "https:", "ftp:")):
                self.downloaded.add(paths.clean(args[i + 1]))
            elif a.startswith("-O") and len(a) > 2 and a[2:] != "-":
                self.downloaded.add(paths.clean(a[2:]))
        if _name(argv[0]) == "wget" or "-O" in args or "--remote-name" in args:
            for a in args:
                if re.match(r"(?:https?|ftp)://", a):
                    base = a.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
                    if base:
                        self.downloaded.add(base)

    _cmd_wget = _cmd_curl

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

    def _cmd_rm(self, cmd: Cmd, argv: list[str]) -> None:
        flags = _flags(argv)
        recursive = "r" in flags.lower() or "--recursive" in argv
        targets = _operands(argv) + self._xargs_items(cmd)
        for t in targets:
            self._delete_target(t, recursive, "deletes")
        if "--no-preserve-root" in argv:
            self.add("destructive_delete", Risk.CRITICAL, "rm --no-preserve-root")

    _cmd_unlink = _cmd_rm
    _cmd_rmdir = _cmd_rm
    _cmd_srm = _cmd_rm

    def _cmd_shred(self, cmd: Cmd, argv: list[str]) -> None:
        for t in _operands(argv):
            p = paths.clean(t)
            if paths.is_block_device(p):
                self.add("disk_wipe", Risk.CRITICAL, f"shreds device {p}")
            elif paths.is_history(p):
                self.add("clear_history", Risk.HIGH, f"shreds shell history {p}")
            elif paths.is_log(p):
                self.add("wipe_logs", Risk.HIGH, f"shreds logs {p}")
            elif paths.is_system(p) or paths.is_home(p) or paths.is_root(p):
                self.add("shred_files", Risk.CRITICAL, f"shreds {p}")
            else:
                self.add("shred_files", Risk.LOW if paths.is_temp(p) or not p.startswith(("/", "~")) else Risk.HIGH,
                         f"shreds {p} beyond recovery")

    _cmd_wipe = _cmd_shred

    def _cmd_mv(self, cmd: Cmd, argv: list[str]) -> None:
        ops = _operands(argv)
        if len(ops) >= 2:
            dest = paths.clean(ops[-1])
            for src in ops[:-1]:
                s = paths.clean(src)
                if dest == "/dev/null":
                    risk = Risk.CRITICAL if paths.is_root(s) or paths.is_home(s) or paths.is_system(s) else Risk.HIGH
                    self.add("move_to_devnull", risk, f"moves {s} to /dev/null")
                elif paths.is_root(s) or paths.is_home(s) or paths.is_system_top(s):
                    self.add("destructive_delete", Risk.HIGH, f"moves away {s}")
                elif paths.is_history(s) or paths.is_log(s):
                    self.add("wipe_logs" if paths.is_log(s) else "clear_history", Risk.HIGH, f"moves away {s}")
            for hit in classify_write(dest, "mv"):
                self.hits.append(hit)

    def _cmd_cp(self, cmd: Cmd, argv: list[str]) -> None:
        ops = _operands(argv)
        if len(ops) >= 2:
            self.hits += classify_write(paths.clean(ops[-1]), _name(argv[0]))
            if ops[0] in ("/dev/zero", "/dev/urandom", "/dev/random") and paths.is_block_device(paths.clean(ops[-1])):
                self.add("disk_wipe", Risk.CRITICAL, "copies zeros over a block device")

    _cmd_install = _cmd_cp
    _cmd_rsync = _cmd_cp

    def _cmd_ln(self, cmd: Cmd, argv: list[str]) -> None:
        ops = _operands(argv)
        if len(ops) >= 2 and ops[0] == "/dev/null":
            p = paths.clean(ops[-1])
            if paths.is_history(p):
                self.add("clear_history", Risk.HIGH, f"links {p} to /dev/null")
            elif paths.is_log(p):
                self.add("wipe_logs", Risk.HIGH, f"links {p} to /dev/null")

    def _cmd_chmod(self, cmd: Cmd, argv: list[str]) -> None:
        ops = _operands(argv)
        if not ops:
            return
        mode, targets = ops[0], [paths.clean(t) for t in ops[1:]]
        recursive = "R" in _flags(argv) or "--recursive" in argv
        if re.search(r"[ugoa]*[+=]\w*s|^[0-7]?[4267][0-7]{3}$", mode):
            self.add("privilege_escalation", Risk.HIGH, f"sets the setuid/setgid bit ({mode})")
        for t in targets:
            broad = paths.is_root(t) or paths.is_home(t) or paths.is_system_top(t)
            if broad and recursive:
                self.add("destructive_permissions", Risk.CRITICAL, f"chmod -R {mode} {t}")
            elif (paths.is_secret(t) or paths.is_priv_file(t)) and re.search(r"[0-7]?[0-7][0-7][4-7]$|o\+|a\+", mode):
                self.add("destructive_permissions", Risk.HIGH, f"makes {t} readable by everyone")
            elif paths.is_system(t) and re.fullmatch(r"0*[0-7]?7[0-7]7|0+|a?[+=]rwx|[ugoa]*-\w+", mode):
                self.add("destructive_permissions", Risk.HIGH, f"chmod {mode} {t}")

    def _cmd_chown(self, cmd: Cmd, argv: list[str]) -> None:
        ops = _operands(argv)
        recursive = "R" in _flags(argv) or "--recursive" in argv
        for t in (paths.clean(x) for x in ops[1:]):
            if recursive and (paths.is_root(t) or paths.is_system_top(t) or paths.is_home(t)):
                self.add("destructive_permissions", Risk.CRITICAL, f"chown -R {ops[0]} {t}")

    _cmd_chgrp = _cmd_chown

    def _cmd_chattr(self, cmd: Cmd, argv: list[str]) -> None:
        if any(paths.is_log(paths.clean(t)) or paths.is_system(paths.clean(t)) for t in _operands(argv)[1:]):
            self.add("disable_defences", Risk.MEDIUM, "changes file attributes of system files")

    def _cmd_truncate(self, cmd: Cmd, argv: list[str]) -> None:
        for t in _operands(argv):
            if re.fullmatch(r"\d+[KMG]?", t):
                continue
            p = paths.clean(t)
            if paths.is_log(p):
                self.add("wipe_logs", Risk.HIGH, f"truncates {p}")
            else:
                self.hits += classify_write(p, "truncate")

    def _cmd_dd(self, cmd: Cmd, argv: list[str]) -> None:
        for a in argv[1:]:
            if a.startswith("of="):
                p = paths.clean(a[3:])
                self.hits += classify_write(p, "dd")

    def _cmd_mkfs(self, cmd: Cmd, argv: list[str]) -> None:
        ops = _operands(argv)
        if ops and not any(o.startswith("/dev/") for o in ops) and all(re.search(r"\.(?:img|iso|raw|bin|qcow2?)$", o)
                                                                    or not o.startswith("/") for o in ops):
            return  # formats an image file
        self.add("disk_wipe", Risk.CRITICAL, f"{argv[0]} formats {' '.join(_operands(argv)[-1:]) or 'a device'}")

    def _cmd_wipefs(self, cmd: Cmd, argv: list[str]) -> None:
        if "-n" not in argv and "--no-act" not in argv:
            self.add("disk_wipe", Risk.CRITICAL, "wipefs erases filesystem signatures")

    def _cmd_blkdiscard(self, cmd: Cmd, argv: list[str]) -> None:
        self.add("disk_wipe", Risk.CRITICAL, "blkdiscard discards every block of a device")

    def _cmd_fdisk(self, cmd: Cmd, argv: list[str]) -> None:
        if not any(a in ("-l", "--list", "-s", "--show", "-d", "--dump", "print") for a in argv[1:]):
            if any(paths.is_block_device(paths.clean(o)) for o in argv[1:]) or _name(argv[0]) != "fdisk":
                self.add("disk_wipe", Risk.CRITICAL, f"{_name(argv[0])} rewrites a partition table")

    _cmd_sfdisk = _cmd_fdisk
    _cmd_parted = _cmd_fdisk
    _cmd_gdisk = _cmd_fdisk
    _cmd_sgdisk = _cmd_fdisk
    _cmd_cfdisk = _cmd_fdisk

    def _cmd_hdparm(self, cmd: Cmd, argv: list[str]) -> None:
        if any("security-erase" in a for a in argv):
            self.add("disk_wipe", Risk.CRITICAL, "hdparm secure-erases a disk")

    def _cmd_badblocks(self, cmd: Cmd, argv: list[str]) -> None:
        if "w" in _flags(argv):
            self.add("disk_wipe", Risk.CRITICAL, "badblocks -w overwrites a disk")

    def _cmd_find(self, cmd: Cmd, argv: list[str]) -> None:
        roots = []
        for a in argv[1:]:
            if a.startswith("-") or a in ("(", "!", ")"):
                break
            roots.append(a)
        roots = roots or ["."]
        filtered = any(a in ("-name", "-iname", "-path", "-ipath", "-regex", "-newer", "-mtime", "-size", "-user",
                             "-empty", "-mmin", "-perm") for a in argv)
        if "-delete" in argv:
            for r in roots:
                self._delete_target(r, True, "find -delete removes", filtered)
        for i, a in enumerate(argv):
            if a in ("-exec", "-execdir", "-ok", "-okdir"):
                inner = []
                for b in argv[i + 1:]:
                    if b in (";", "\\;", "+"):
                        break
                    inner.append(b)
                if inner:
                    sub = [x.replace("{}", roots[0]) for x in inner]
                    before = len(self.hits)
                    self.command(Cmd(argv=sub), *unwrap(sub, []))
                    if filtered:
                        for j in range(before, len(self.hits)):
                            h = self.hits[j]
                            if h.rule == "destructive_delete" and h.risk == Risk.CRITICAL:
                                self.hits[j] = _hit(h.rule, Risk.HIGH, h.detail + " (filtered by find)")

    def _xargs_items(self, cmd: Cmd) -> list[str]:
        return getattr(cmd, "_xargs", [])

    def _cmd_xargs(self, cmd: Cmd, argv: list[str]) -> None:
        inner = _opts_with_arg(argv[1:], {"-I", "-n", "-P", "-L", "-d", "-s", "-E", "-a", "--max-args",
                                          "--max-procs", "--delimiter", "--arg-file", "--replace"})
        if not inner:
            return
        items: list[str] = []
        for u in cmd.upstream()[:1]:
            n = _name(u.argv[0]) if u.argv else ""
            if n in ("echo", "printf"):
                items = " ".join(u.argv[1:]).split()
            elif n == "find":
                items = [a for a in u.argv[1:2] if not a.startswith("-")] or ["."]
            elif n == "ls":
                items = [a.rstrip("/") + "/*" for a in u.argv[1:] if not a.startswith("-")]
            elif not n:
                items = []
        sub = Cmd(argv=list(inner))
        sub._xargs = items  # type: ignore[attr-defined]
        sub_argv, wrappers = unwrap(list(inner), [])
        if _name(sub_argv[0] if sub_argv else "") in SHELLS | {"eval"}:
            self._stdin_code(Cmd(argv=sub_argv, pipe_from=cmd.pipe_from), sub_argv, "shell")
        self.command(sub, sub_argv, wrappers)
        if _name(sub_argv[0] if sub_argv else "") in ("rm", "shred") and not items and "r" in _flags(sub_argv).lower():
            self.add("delete_outside_workspace", Risk.MEDIUM, "xargs rm -r with targets read from input")

    def _cmd_parallel(self, cmd: Cmd, argv: list[str]) -> None:
        ops = _operands(argv)
        if ops:
            self.nested(" ".join(ops).split(":::")[0])

    def _cmd_eval(self, cmd: Cmd, argv: list[str]) -> None:
        self.nested(" ".join(argv[1:]))

    def _cmd_su(self, cmd: Cmd, argv: list[str]) -> None:
        args = argv[1:]
        if "-c" in args:
            i = args.index("-c")
            self.nested(" ".join(args[i + 1:i + 2]))
            self.add("privilege_escalation", Risk.MEDIUM, "su -c runs a command as another user")
        else:
            self.add("privilege_escalation", Risk.HIGH, "su opens a shell as another user")

    def _cmd_ssh(self, cmd: Cmd, argv: list[str]) -> None:
        ops = _opts_with_arg(argv[1:], {"-i", "-p", "-l", "-o", "-F", "-J", "-L", "-R", "-D", "-b", "-c", "-e",
                                        "-m", "-S", "-W", "-w", "-E", "-O", "-Q", "-B"})
        if len(ops) > 1:
            self.nested(" ".join(ops[1:]))

    def _cmd_docker(self, cmd: Cmd, argv: list[str]) -> None:
        if len(argv) > 2 and argv[1] == "exec":
            ops = _opts_with_arg(argv[2:], {"-u", "-w", "-e", "--user", "--workdir", "--env"})
            if len(ops) > 1:
                self.nested(" ".join(_q(x) for x in ops[1:]))
        if "--privileged" in argv and any(a.startswith("-v") or a == "--volume" for a in argv) and \
                any(re.match(r"^/:", a) for a in argv):
            self.add("privilege_escalation", Risk.HIGH, "mounts the host root into a privileged container")

    _cmd_kubectl = _cmd_docker
    _cmd_podman = _cmd_docker

    def _cmd_awk(self, cmd: Cmd, argv: list[str]) -> None:
        ops = _opts_with_arg(argv[1:], {"-F", "-v", "-f"})
        if ops:
            self.code(ops[0], "awk")

    _cmd_gawk = _cmd_awk
    _cmd_mawk = _cmd_awk
    _cmd_nawk = _cmd_awk

    def _cmd_nc(self, cmd: Cmd, argv: list[str]) -> None:
        if any(a in ("-e", "-c", "--exec", "--sh-exec", "--lua-exec") or re.fullmatch(r"-\w*[ec]", a)
               for a in argv[1:]):
            self.add("reverse_shell", Risk.CRITICAL, f"{_name(argv[0])} attaches a program to a network connection")
        up = [_name(u.argv[0]) for u in cmd.upstream() if u.argv]
        if any(n in SHELLS for n in up):
            self.add("reverse_shell", Risk.CRITICAL, "pipes a shell into a network connection")
        for r_op, target in cmd.redirects:
            if r_op == "<" and (paths.is_secret(paths.clean(target))):
                self.add("credential_exfiltration", Risk.CRITICAL, f"sends {target} over the network")

    _cmd_ncat = _cmd_nc
    _cmd_netcat = _cmd_nc
    _cmd_nc_traditional = _cmd_nc
    _cmd_nc_openbsd = _cmd_nc

    def _cmd_telnet(self, cmd: Cmd, argv: list[str]) -> None:
        up = [_name(u.argv[0]) for u in cmd.upstream() if u.argv]
        if any(n in SHELLS for n in up):
            self.add("reverse_shell", Risk.CRITICAL, "pipes a shell into telnet")

    _cmd_openssl = _cmd_telnet

    def _cmd_socat(self, cmd: Cmd, argv: list[str]) -> None:
        joined = " ".join(argv[1:]).lower()
        if re.search(r"\b(?:exec|system):", joined) and re.search(r"tcp|udp|ssl|openssl", joined):
            self.add("reverse_shell", Risk.CRITICAL, "socat connects a program to the network")
        elif re.search(r"tcp[\w-]*-listen", joined) and "pty" in joined:
            self.add("reverse_shell", Risk.HIGH, "socat exposes a terminal on the network")

    def _cmd_mkfifo(self, cmd: Cmd, argv: list[str]) -> None:
        self.names.add("mkfifo")

    def _cmd_mknod(self, cmd: Cmd, argv: list[str]) -> None:
        if "p" in argv[1:]:
            self.names.add("mkfifo")

    def _cmd_crontab(self, cmd: Cmd, argv: list[str]) -> None:
        args = argv[1:]
        if args[:1] in (["-l"],) or ("-l" in args and "-u" in args and len(args) <= 3):
            return
        if "-r" in args:
            self.add("persistence", Risk.MEDIUM, "crontab -r removes scheduled jobs")
        elif "-e" in args:
            self.add("persistence", Risk.MEDIUM, "crontab -e edits scheduled jobs")
        else:
            self.add("persistence", Risk.HIGH, "crontab installs scheduled jobs")

    def _cmd_at(self, cmd: Cmd, argv: list[str]) -> None:
        if not any(a in ("-l", "-r", "-d") for a in argv[1:]):
            self.add("persistence", Risk.MEDIUM, "at schedules a job")

    def _cmd_systemctl(self, cmd: Cmd, argv: list[str]) -> None:
        ops = [a for a in argv[1:] if not a.startswith("-")]
        if not ops:
            return
        verb, units = ops[0], ops[1:]
        if verb in ("stop", "disable", "mask", "kill") and any(DEFENCE_SERVICES.match(u) for u in units):
            self.add("disable_defences", Risk.HIGH, f"systemctl {verb} {' '.join(units)}")
        elif verb in ("stop", "disable", "mask", "kill") and any(PLATFORM_PROCS.search(u) for u in units):
            self.add("platform_tamper", Risk.CRITICAL, f"systemctl {verb} {' '.join(units)}")
        elif verb in ("enable", "link", "preset", "daemon-reload") or (verb == "start" and "--user" in argv):
            self.add("service_change", Risk.MEDIUM, f"systemctl {verb} {' '.join(units)}")
        elif verb in ("poweroff", "halt", "reboot", "kexec", "isolate", "rescue", "emergency"):
            self.add("kill_all_processes", Risk.HIGH, f"systemctl {verb}")

    def _cmd_service(self, cmd: Cmd, argv: list[str]) -> None:
        ops = argv[1:]
        if len(ops) >= 2 and ops[1] == "stop":
            if DEFENCE_SERVICES.match(ops[0]):
                self.add("disable_defences", Risk.HIGH, f"service {ops[0]} stop")
            elif PLATFORM_PROCS.search(ops[0]):
                self.add("platform_tamper", Risk.CRITICAL, f"service {ops[0]} stop")

    def _cmd_launchctl(self, cmd: Cmd, argv: list[str]) -> None:
        if any(a in ("load", "bootstrap", "submit") for a in argv[1:]):
            self.add("persistence", Risk.MEDIUM, "launchctl loads a job")
        if any(a in ("unload", "bootout") for a in argv[1:]) and re.search(r"security|firewall|xprotect|mrt",
                                                                           " ".join(argv).lower()):
            self.add("disable_defences", Risk.HIGH, "unloads a security agent")

    def _cmd_setenforce(self, cmd: Cmd, argv: list[str]) -> None:
        if argv[1:2] in (["0"], ["Permissive"], ["permissive"]):
            self.add("disable_defences", Risk.HIGH, "setenforce 0 turns SELinux enforcement off")

    def _cmd_ufw(self, cmd: Cmd, argv: list[str]) -> None:
        if any(a in ("disable", "reset") for a in argv[1:]):
            self.add("disable_defences", Risk.HIGH, f"ufw {' '.join(argv[1:])}")
        elif "default" in argv and "allow" in argv:
            self.add("disable_defences", Risk.HIGH, "ufw default allow")

    def _cmd_iptables(self, cmd: Cmd, argv: list[str]) -> None:
        args = argv[1:]
        if any(a in ("-F", "--flush", "-X", "--delete-chain", "-Z") for a in args) or \
                ("-P" in args and "ACCEPT" in args) or ("--policy" in args and "ACCEPT" in args):
            self.add("disable_defences", Risk.HIGH, f"{_name(argv[0])} {' '.join(args)}")

    _cmd_ip6tables = _cmd_iptables
    _cmd_iptables_legacy = _cmd_iptables

    def _cmd_nft(self, cmd: Cmd, argv: list[str]) -> None:
        if "flush" in argv or ("delete" in argv and "table" in argv):
            self.add("disable_defences", Risk.HIGH, "nft flushes the firewall")

    def _cmd_auditctl(self, cmd: Cmd, argv: list[str]) -> None:
        if "-D" in argv or ("-e" in argv and "0" in argv):
            self.add("disable_defences", Risk.HIGH, "auditctl removes audit rules")

    def _cmd_aa_teardown(self, cmd: Cmd, argv: list[str]) -> None:
        self.add("disable_defences", Risk.HIGH, "aa-teardown unloads AppArmor")

    def _cmd_apparmor_parser(self, cmd: Cmd, argv: list[str]) -> None:
        if "-R" in argv or "--remove" in argv:
            self.add("disable_defences", Risk.HIGH, "removes an AppArmor profile")

    def _cmd_sysctl(self, cmd: Cmd, argv: list[str]) -> None:
        if any(re.match(r"kernel\.(?:randomize_va_space|yama\.ptrace_scope)=0", a) for a in argv):
            self.add("disable_defences", Risk.HIGH, "sysctl weakens kernel protections")

    def _cmd_Set_MpPreference(self, cmd: Cmd, argv: list[str]) -> None:
        if any("Disable" in a for a in argv):
            self.add("disable_defences", Risk.HIGH, "turns Windows Defender off")

    def _cmd_kill(self, cmd: Cmd, argv: list[str]) -> None:
        ops = _operands(argv)
        if "-1" in argv[1:] and (len(ops) == 0 or argv[-1] == "-1"):
            self.add("kill_all_processes", Risk.HIGH, "kill -1 signals every process")
        self._kill_names(argv, ops)

    def _kill_names(self, argv: list[str], ops: list[str]) -> None:
        joined = " ".join(ops)
        if DEFENCE_SERVICES.search(joined) or re.search(r"\b(?:auditd|falcon|osqueryd|sysmon|rsyslogd|fail2ban)",
                                                         joined):
            self.add("disable_defences", Risk.HIGH, f"{_name(argv[0])} {joined}")
        if (_name(argv[0]) != "kill" or re.search(r"\$\(\s*(?:pgrep|pidof|pgrep -f)", joined)) and \
                PLATFORM_PROCS.search(joined):
            self.add("platform_tamper", Risk.CRITICAL, f"{_name(argv[0])} {joined} stops the platform")

    def _cmd_pkill(self, cmd: Cmd, argv: list[str]) -> None:
        self._kill_names(argv, _operands(argv))

    _cmd_killall = _cmd_pkill

    def _cmd_history(self, cmd: Cmd, argv: list[str]) -> None:
        if any(a in ("-c", "-cw", "-wc") for a in argv[1:]) or ("-w" in argv and "/dev/null" in argv) or \
                "-d" in argv:
            self.add("clear_history", Risk.HIGH, "history " + " ".join(argv[1:]))

    def _cmd_set(self, cmd: Cmd, argv: list[str]) -> None:
        if "+o" in argv and "history" in argv:
            self.add("clear_history", Risk.HIGH, "set +o history stops recording commands")

    def _cmd_unset(self, cmd: Cmd, argv: list[str]) -> None:
        if any(a in ("HISTFILE", "HISTFILESIZE", "HISTSIZE") for a in argv):
            self.add("clear_history", Risk.HIGH, "unset HISTFILE stops recording commands")

    def _cmd_journalctl(self, cmd: Cmd, argv: list[str]) -> None:
        if any(a.startswith("--vacuum") for a in argv):
            self.add("wipe_logs", Risk.HIGH, "journalctl --vacuum deletes system logs")

    def _cmd_wevtutil(self, cmd: Cmd, argv: list[str]) -> None:
        if any(a.lower() in ("cl", "clear-log") for a in argv):
            self.add("wipe_logs", Risk.HIGH, "wevtutil clears event logs")

    def _cmd_Clear_EventLog(self, cmd: Cmd, argv: list[str]) -> None:
        self.add("wipe_logs", Risk.HIGH, "Clear-EventLog")

    def _cmd_usermod(self, cmd: Cmd, argv: list[str]) -> None:
        joined = " ".join(argv)
        if re.search(r"-\w*G\w*\s+\S*\b(?:sudo|wheel|root|admin|adm|docker|lxd|disk|shadow)\b", joined) or \
                re.search(r"-u\s+0\b", joined) or (_name(argv[0]) == "gpasswd" and "-a" in argv and re.search(
                    r"\b(?:sudo|wheel|root|admin|adm|docker|lxd|disk|shadow)$", joined)):
            self.add("privilege_escalation", Risk.HIGH, "adds a user to an administrative group")

    _cmd_gpasswd = _cmd_usermod

    def _cmd_useradd(self, cmd: Cmd, argv: list[str]) -> None:
        joined = " ".join(argv)
        if re.search(r"-u\s*0\b|-o\b", joined) or re.search(r"-\w*G\s+\S*\b(?:sudo|wheel|root|admin)\b", joined):
            self.add("privilege_escalation", Risk.CRITICAL, "creates a user with root rights")
        else:
            self.add("persistence", Risk.HIGH, "creates a user account")

    _cmd_adduser = _cmd_useradd

    def _cmd_passwd(self, cmd: Cmd, argv: list[str]) -> None:
        if "root" in argv or "-d" in argv:
            self.add("privilege_escalation", Risk.HIGH, "changes the root password")

    def _cmd_visudo(self, cmd: Cmd, argv: list[str]) -> None:
        if "-c" not in argv:
            self.add("privilege_escalation", Risk.HIGH, "edits sudoers")

    def _cmd_setcap(self, cmd: Cmd, argv: list[str]) -> None:
        if re.search(r"cap_(?:setuid|setgid|sys_admin|dac_override|sys_ptrace)", " ".join(argv)):
            self.add("privilege_escalation", Risk.HIGH, "grants a dangerous capability")

    def _cmd_tee(self, cmd: Cmd, argv: list[str]) -> None:
        for t in _operands(argv):
            self.hits += classify_write(paths.clean(t), "tee")

    def _cmd_sed(self, cmd: Cmd, argv: list[str]) -> None:
        if any(a.startswith("-i") or a == "--in-place" for a in argv[1:]):
            ops = _operands(argv)
            for t in ops[1:]:
                self.hits += classify_write(paths.clean(t), "sed -i")


    def _cmd_security(self, cmd: Cmd, argv: list[str]) -> None:
        if any(a in ("find-generic-password", "find-internet-password", "dump-keychain", "export",
                     "find-certificate") for a in argv[1:]) and (re.search(r"[wg]", _flags(argv)) or "dump-keychain" in argv
                                                                 or "export" in argv):
            self.add("credential_access", Risk.HIGH, "reads secrets from the keychain")

    def _cmd_secret_tool(self, cmd: Cmd, argv: list[str]) -> None:
        if any(a in ("lookup", "search") for a in argv[1:]):
            self.add("credential_access", Risk.HIGH, "reads secrets from the keyring")

    def _cmd_gpg(self, cmd: Cmd, argv: list[str]) -> None:
        if any(a.startswith("--export-secret") for a in argv):
            self.add("credential_access", Risk.HIGH, "exports private keys")

    def _cmd_printenv(self, cmd: Cmd, argv: list[str]) -> None:
        ops = _operands(argv)
        if any(SECRET_VAR.search(o) for o in ops):
            self.add("secret_env_dump", Risk.HIGH, f"prints secret variables {' '.join(ops)}")
        elif not ops:
            self._env_dump(cmd, _name(argv[0]))

    def _cmd_env(self, cmd: Cmd, argv: list[str]) -> None:
        if len(argv) == 1:
            self._env_dump(cmd, "env")

    def _cmd_export(self, cmd: Cmd, argv: list[str]) -> None:
        if argv[1:] == ["-p"] or len(argv) == 1:
            self._env_dump(cmd, "export")

    def _env_dump(self, cmd: Cmd, what: str) -> None:
        self.add("env_dump", Risk.MEDIUM, f"{what} prints every environment variable")
        self.names.add("__env_dump__")

    def _cmd_grep(self, cmd: Cmd, argv: list[str]) -> None:
        up = [_name(u.argv[0]) for u in cmd.upstream() if u.argv]
        if any(n in ("env", "printenv", "set", "export", "declare") for n in up) and \
                SECRET_VAR.search(" ".join(argv[1:])):
            self.add("secret_env_dump", Risk.HIGH, "filters the environment for secrets")

    _cmd_egrep = _cmd_grep
    _cmd_rg = _cmd_grep

    def _cmd_echo(self, cmd: Cmd, argv: list[str]) -> None:
        for a in argv[1:]:
            for m in re.finditer(r"\$\{?(\w+)", a):
                if SECRET_VAR.search(m.group(1)):
                    self.add("secret_env_dump", Risk.HIGH, f"prints secret variable {m.group(1)}")

    _cmd_printf = _cmd_echo

    # --- cross-cutting ------------------------------------------------------------------------------------
    def _reads(self, cmd: Cmd, argv: list[str], name: str) -> None:
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
                        self.add("list_secrets", Risk.LOW, f"{name} looks at {p}")
                    continue
                if network or (name == "scp"):
                    self.add("credential_exfiltration", Risk.CRITICAL, f"{name} sends {p} over the network")
                else:
                    self.add("credential_access", Risk.HIGH, f"{name} reads {p}")
            elif paths.is_secret_dir(p):
                if name in ("ls", "stat", "find", "tree", "du", "file"):
                    self.add("list_secrets", Risk.LOW, f"{name} lists {p}")
                elif name in ("tar", "zip", "cp", "rsync", "scp", "7z", "gzip") or network:
                    self.add("credential_access", Risk.HIGH, f"{name} copies {p}")
        if network:
            for u in cmd.upstream():
                u_argv = unwrap(list(u.argv), [])[0]
                un = _name(u_argv[0]) if u_argv else ""
                if any(paths.is_secret(paths.clean(a)) for a in u.argv[1:]) and un not in ("ls",):
                    self.add("credential_exfiltration", Risk.CRITICAL, f"pipes secrets into {name}")
                if un in ("env", "printenv") or "__env_dump__" in self.names and un in ("env", "printenv", "set"):
                    self.add("credential_exfiltration", Risk.CRITICAL, f"sends the environment through {name}")

    def _platform(self, argv: list[str], name: str) -> None:
        args = [a for a in argv[1:] if not a.startswith("-")]
        if name in ("temporal", "tctl"):
            joined = " ".join(args)
            if re.search(r"\b(?:workflow|wf)\s+(?:terminate|cancel|delete|reset|signal|update)", joined) or \
                    re.search(r"\bnamespace\s+delete|\bbatch\b.*\b(?:terminate|cancel)|\bserver\b.*\bstop", joined):
                self.add("platform_tamper", Risk.CRITICAL, f"{name} {joined[:80]}")
        if name in ("hybrid-llm", "hybrid_llm") or (name == "python" and "hybrid_llm.cli.main" in argv):
            joined = " ".join(args)
            if re.search(r"\block(?:down)?\s+(?:release|unlock|disable|off)|^down\b|\bdown$|"
                         r"\bapprovals?\s+(?:approve|grant)|\bworker\s+stop|\bstack\s+down", joined):
                self.add("platform_tamper", Risk.CRITICAL, f"{name} {joined[:80]}")
        if name in ("psql", "pg_ctl", "dropdb", "pg_ctlcluster") and re.search(
                r"\bstop\b|drop\s+(?:database|table|schema)|truncate|\bdelete\s+from", " ".join(argv), re.I):
            self.add("platform_tamper", Risk.CRITICAL, f"{name} stops or drops the platform database")
        if name == "dropdb":
            self.add("platform_tamper", Risk.CRITICAL, "dropdb")

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


def analyze(parsed: Parsed, depth: int = 0) -> list[RuleHit]:
    hits = Analyzer(parsed, depth).run()
    return hits
