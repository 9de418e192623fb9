"""Code handed to an interpreter (`python -c`, `perl -e`, `node -e`, `awk`...): what it runs, deletes, reads, opens."""

from __future__ import annotations

import re
from collections.abc import Callable

from domain.guardrails import paths
from domain.guardrails.verdict import RuleHit, Risk

CommandScanner = Callable[[str, int], list[RuleHit]]

_STR = r"""(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")"""
_RUNS_SHELL = re.compile(
    r"(?:os\.system|os\.popen|os\.exec\w*|subprocess\.\w+|commands\.getoutput|pty\.spawn|\bsystem|\bexec(?:Sync)?|"
    r"shell_exec|passthru|\bpopen|proc_open|spawn(?:Sync)?|execFile(?:Sync)?|IO\.popen|Kernel\.\w+|%x|qx)"
    r"\s*[\(\{\[]?\s*\[?\s*" + _STR)
_LIST_ARGS = re.compile(r"(?:subprocess\.\w+|os\.exec\w*|spawn(?:Sync)?|execFile(?:Sync)?)\s*\(\s*\[([^\]]*)\]")
_BACKTICK = re.compile(r"`([^`]{2,})`")
_DELETE = re.compile(r"(?:shutil\.rmtree|os\.remove|os\.unlink|os\.rmdir|os\.removedirs|\brmtree|rm_rf|rm_r|"
                     r"FileUtils\.rm\w*|fs\.rm(?:Sync)?|\.rmSync|\.rmdirSync|\.unlinkSync|fs\.rmdir(?:Sync)?|fs\.unlink(?:Sync)?|unlink|Path\()"
                     r"\s*\(?\s*(?:glob\s*\(\s*)?(?:os\.path\.expanduser\()?" + _STR)
_HOME_DELETE = re.compile(r"(?:rmtree|rm_rf|rmSync|rmdir)\s*\(\s*(?:os\.path\.expanduser\(\s*['\"]~['\"]\s*\)|"
                          r"os\.environ\[['\"]HOME['\"]\]|Path\.home\(\)|os\.homedir\(\)|ENV\[['\"]HOME['\"]\])")
_SOCKET = re.compile(r"socket\.socket|socket\(|\bsocket\b.*connect|TCPSocket|fsockopen|net\.(?:Socket|connect|"
                     r"createConnection)|IO::Socket|/dev/tcp/|/inet6?/tcp/|/inet6?/udp/")
# A reverse shell wires the socket to a shell: fds duplicated or handed over, or a shell reading the connection.
_FD_WIRE = re.compile(r"dup2|fdopen|fileno\s*\(\s*\)|pty\.spawn|[<>]&\s*\d|\.pipe\s*\(|\bstd(?:in|out)\s*[=:]\s*\w+|"
                      r"open\s*\(\s*STD(?:IN|OUT)|STDIN->|\$~|%d|sprintf|\|&")
_SHELL_PROG = re.compile(r"/bin/(?:ba|z|da|k|a)?sh\b|\b(?:ba|z)?sh\s+-i\b|['\"](?:ba|z|da)?sh['\"]|cmd(?:\.exe)?['\"]|"
                         r"powershell|pty\.spawn|\bsystem\b|\bexec\b")
_SPAWNS = _SHELL_PROG
_FORK = re.compile(r"while\s*(?:True|1|\(\s*(?:true|1)\s*\))\s*:?\s*[\{\n;]?\s*(?:os\.fork|fork|"
                   r"child_process\.fork|Process\.fork|pcntl_fork)|fork\s+while\s+fork|fork\s+while\s*\(?\s*1|"
                   r"loop\s*\{\s*fork|(?:os\.fork\(\)\s*;?\s*){3,}|for\s*\(\s*;;\s*\)\s*fork|"
                   r"(?:while\s*\(\s*(?:true|1)\s*\)|for\s*\(\s*;;\s*\))\s*\{[^}]{0,120}?(?:spawn|fork|exec)\w*\s*\(|"
                   r"while\s+(?:True|1)\s*:\s*(?:subprocess\.Popen|os\.spawn\w*|multiprocessing\.Process)|"
                   r"(?:while\s*\(?\s*(?:True|true|1)\s*\)?|for\s+\w+\s+in\s+(?:iter\s*\(|itertools\.count|count\s*\()|"
                   r"for\s*\(\s*;;\s*\)|\bloop\s*(?:do\b|\{)|until\s+false)[\s\S]{0,80}?\b(?:os\.|Process\.)?fork\s*[\({]")
_REMOTE = re.compile(r"urlopen|urllib|requests\.(?:get|post)|http\.client|https?\.get|fetch\(|LWP::|"
                     r"Net::HTTP|open-uri|URI\.open|file_get_contents\(\s*['\"]https?:")
_EVAL = re.compile(r"\bexec\s*\(|\beval\s*\(|\bFunction\s*\(|\bcompile\s*\(|\beval\b|instance_eval|"
                   r"\bsystem\s*\(|\|\s*(?:ba)?sh")
_B64_EXEC = re.compile(r"(?:b64decode|base64\.decode|decode64|Buffer\.from\([^)]*base64|base64_decode|atob)"
                       r"[\s\S]*?(?:exec|eval|system|popen|spawn)|(?:exec|eval|system)\s*\([\s\S]*?"
                       r"(?:b64decode|decode64|base64_decode|atob|Buffer\.from)")
_SETUID = re.compile(r"os\.setuid\(\s*0|setuid\(\s*0|os\.chmod\([^)]*0o?[4267]7[0-7]{2}|POSIX::setuid\(\s*0|"
                     r"Process::Sys\.setuid\(\s*0")
_WRITE_MODE = re.compile(r"open\s*\(\s*" + _STR + r"\s*,\s*['\"][wa]|writeFile(?:Sync)?\(\s*" + _STR +
                         r"|File\.write\(\s*" + _STR + r"|open\s*\(\s*\w+\s*,\s*['\"]>>?\s*" + _STR)
_PATH_LIT = re.compile(_STR)


def _lit(m: re.Match[str]) -> str:
    for g in m.groups():
        if g is not None:
            return g
    return ""


def _unescape(s: str) -> str:
    return s.replace("\\'", "'").replace('\\"', '"').replace("\\\\", "\\")


def scan_code(code: str, lang: str, depth: int, scan_command: CommandScanner) -> list[RuleHit]:
    hits: list[RuleHit] = []
    where = f"{lang} code"
    for m in _RUNS_SHELL.finditer(code):
        hits += scan_command(_unescape(_lit(m)), depth + 1)
    for m in _LIST_ARGS.finditer(code):
        words = [_lit(w) for w in _PATH_LIT.finditer(m.group(1))]
        if words:
            hits += scan_command(" ".join(_quote(w) for w in words), depth + 1)
    if lang in ("perl", "ruby", "php"):
        for m in _BACKTICK.finditer(code):
            hits += scan_command(m.group(1), depth + 1)
    for m in _DELETE.finditer(code):
        p = paths.clean(_unescape(_lit(m)))
        if paths.is_root(p) or paths.is_home(p) or paths.is_system_top(p):
            hits.append(RuleHit(rule="destructive_delete", risk=Risk.CRITICAL, detail=f"{where} deletes {p}"))
        elif paths.is_system(p):
            hits.append(RuleHit(rule="destructive_delete", risk=Risk.HIGH, detail=f"{where} deletes {p}"))
        elif paths.is_platform(p):
            hits.append(RuleHit(rule="platform_tamper", risk=Risk.CRITICAL, detail=f"{where} deletes {p}"))
    if _HOME_DELETE.search(code):
        hits.append(RuleHit(rule="destructive_delete", risk=Risk.CRITICAL, detail=f"{where} deletes the home directory"))
    if _SOCKET.search(code) and _SHELL_PROG.search(code):
        wired = _FD_WIRE.search(code)
        hits.append(RuleHit(rule="reverse_shell", risk=Risk.CRITICAL if wired else Risk.MEDIUM,
                            detail=f"{where} connects a socket to a shell" if wired else
                            f"{where} opens a socket and starts a shell"))
    if _FORK.search(code):
        hits.append(RuleHit(rule="fork_bomb", risk=Risk.CRITICAL, detail=f"{where} forks in an endless loop"))
    if _REMOTE.search(code) and _EVAL.search(code):
        hits.append(RuleHit(rule="remote_code_exec", risk=Risk.HIGH, detail=f"{where} downloads and runs code"))
    if _B64_EXEC.search(code):
        hits.append(RuleHit(rule="decode_to_shell", risk=Risk.HIGH, detail=f"{where} decodes and runs a payload"))
    if _SETUID.search(code):
        hits.append(RuleHit(rule="privilege_escalation", risk=Risk.HIGH, detail=f"{where} sets a setuid bit or uid 0"))
    written = {paths.clean(_lit(m)) for m in _WRITE_MODE.finditer(code)}
    for m in _PATH_LIT.finditer(code):
        p = paths.clean(_unescape(_lit(m)))
        if len(p) < 3 or len(p) > 300:
            continue
        if paths.is_secret(p) and not p.endswith("history"):
            hits.append(RuleHit(rule="credential_access", risk=Risk.HIGH, detail=f"{where} opens {p}"))
    for p in written:
        hits += classify_write(p, where)
    return hits


def _quote(w: str) -> str:
    return "'" + w.replace("'", "'\\''") + "'" if re.search(r"[^\w@%+=:,./~-]", w) or not w else w


def classify_write(p: str, where: str) -> list[RuleHit]:
    """Risk of writing to (or truncating) path p."""
    if not p or p in ("/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "-") or re.fullmatch(r"&?\d", p):
        return []
    if p.startswith("/dev/tcp/") or p.startswith("/dev/udp/"):
        return []  # judged as a network redirect
    if paths.is_block_device(p):
        return [RuleHit(rule="disk_wipe", risk=Risk.CRITICAL, detail=f"{where} writes to block device {p}")]
    if paths.is_platform(p):
        return [RuleHit(rule="platform_tamper", risk=Risk.CRITICAL, detail=f"{where} writes to platform state {p}")]
    if paths.is_priv_file(p):
        rule = "privilege_escalation" if "sudoers" in p or "pam" in p else "overwrite_system_file"
        return [RuleHit(rule=rule, risk=Risk.CRITICAL, detail=f"{where} writes to {p}")]
    if paths.is_persistence(p):
        return [RuleHit(rule="persistence", risk=Risk.HIGH, detail=f"{where} writes to {p}")]
    if paths.is_history(p):
        return [RuleHit(rule="clear_history", risk=Risk.HIGH, detail=f"{where} overwrites shell history {p}")]
    if paths.is_log(p):
        return [RuleHit(rule="wipe_logs", risk=Risk.HIGH, detail=f"{where} overwrites log {p}")]
    if paths.is_defence(p):
        return [RuleHit(rule="disable_defences", risk=Risk.HIGH, detail=f"{where} writes to {p}")]
    if re.match(r"^/(?:boot|bin|sbin|lib\w*|usr)(?:/|$)", p):
        return [RuleHit(rule="overwrite_system_file", risk=Risk.CRITICAL, detail=f"{where} writes to {p}")]
    if p.startswith("/etc/"):
        return [RuleHit(rule="overwrite_system_file", risk=Risk.HIGH, detail=f"{where} writes to {p}")]
    return []
