"""Command rules, family module: Deleting, shredding, moving away, overwriting and opening up files and folders."""

from __future__ import annotations

import re

from domain.guardrails import paths
from domain.guardrails.code_rules import classify_write
from domain.guardrails.shell.analyzer import (SHELLS, Analyzer, _flags, _hit, _name, _operands,
                                              _opts_with_arg, unwrap)
from domain.guardrails.shell.parser import Cmd
from domain.guardrails.shell.registry import handles, rule
from domain.guardrails.verdict import Risk

DESTRUCTIVE_DELETE = rule('destructive_delete', 'destruction',
                          'deletes or moves away the root, home, system or user-data folders')
DELETE_OUTSIDE_WORKSPACE = rule('delete_outside_workspace', 'low_signal',
                                'deletes something outside the working folder')
SHRED_FILES = rule('shred_files', 'destruction', 'overwrites files beyond recovery')
MOVE_TO_DEVNULL = rule('move_to_devnull', 'destruction', 'moves files to /dev/null')
DESTRUCTIVE_PERMISSIONS = rule('destructive_permissions', 'destruction',
                               'recursive chmod/chown of broad folders, secrets made world-readable')
OVERWRITE_SYSTEM_FILE = rule('overwrite_system_file', 'destruction', 'writes over system files')


def delete_target(an: Analyzer, p: str, recursive: bool, what: str, filtered: bool = False) -> None:
    raw = p
    if an.cwd and not p.startswith(("/", "~", "$")):
        p = an.cwd.rstrip("/") + "/" + p
    p = paths.clean(p)
    drop = 1 if filtered else 0
    if paths.is_platform(p):
        an.add("platform_tamper", Risk.CRITICAL, f"{what} platform state {p}")
    elif paths.is_history(p):
        an.add("clear_history", Risk.HIGH, f"{what} shell history {p}")
    elif paths.is_log(p):
        an.add("wipe_logs", Risk.HIGH, f"{what} logs {p}")
    elif paths.is_root(p) or (paths.is_home(p) and (recursive or p.endswith("*"))):
        an.add("destructive_delete", Risk.CRITICAL if not drop else Risk.HIGH, f"{what} {p}")
    elif paths.is_system_top(p) and recursive:
        an.add("destructive_delete", Risk.CRITICAL if not drop else Risk.HIGH, f"{what} system directory {p}")
    elif paths.is_system(p) and not paths.is_temp(p):
        if paths.is_block_device(p):
            an.add("disk_wipe", Risk.HIGH, f"{what} device {p}")
        elif not p.startswith("/proc"):
            core = re.match(r"^/(?:etc|boot|bin|sbin|lib\w*|usr)(?:/|$)", p) or recursive
            an.add("destructive_delete", Risk.HIGH if core and not drop else Risk.MEDIUM,
                     f"{what} system path {p}")
    elif (sub := paths.home_sub(p)) is not None:
        if paths.is_secret(p) or paths.is_secret_dir(p):
            an.add("destructive_delete", Risk.HIGH, f"{what} keys or credentials {p}")
        elif paths.is_important_home(sub) and recursive:
            an.add("destructive_delete", Risk.HIGH if not drop else Risk.MEDIUM, f"{what} user data {p}")
        else:
            an.add("delete_outside_workspace", Risk.LOW, f"{what} {p} in the home directory")
    elif paths.is_temp(p):
        an.add("delete_outside_workspace", Risk.LOW, f"{what} temporary path {p}")
    elif p.startswith("/") and recursive:
        an.add("delete_outside_workspace", Risk.LOW if filtered or p in ("/tmp", "/var/tmp") else Risk.MEDIUM,
                 f"{what} absolute path {p}")
    elif re.match(r"^\$\{?\w+\}?/?\*?$", raw) and recursive:
        an.add("destructive_delete", Risk.HIGH, f"{what} {raw}: an unset variable would make this /")
    elif re.match(r"^(?:\.\./){2,}|^\.\.?/?\*?$", p) and recursive:
        an.add("delete_outside_workspace", Risk.MEDIUM if p.startswith("..") else Risk.LOW,
                 f"{what} {p} (the current or a parent folder)")


@handles('rm', 'unlink', 'rmdir', 'srm')
def rm(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    flags = _flags(argv)
    recursive = "r" in flags.lower() or "--recursive" in argv
    targets = _operands(argv) + an._xargs_items(cmd)
    for t in targets:
        delete_target(an, t, recursive, "deletes")
    if "--no-preserve-root" in argv:
        an.add("destructive_delete", Risk.CRITICAL, "rm --no-preserve-root")


@handles('shred', 'wipe')
def shred(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    for t in _operands(argv):
        p = paths.clean(t)
        if paths.is_block_device(p):
            an.add("disk_wipe", Risk.CRITICAL, f"shreds device {p}")
        elif paths.is_history(p):
            an.add("clear_history", Risk.HIGH, f"shreds shell history {p}")
        elif paths.is_log(p):
            an.add("wipe_logs", Risk.HIGH, f"shreds logs {p}")
        elif paths.is_system(p) or paths.is_home(p) or paths.is_root(p):
            an.add("shred_files", Risk.CRITICAL, f"shreds {p}")
        else:
            an.add("shred_files", Risk.LOW if paths.is_temp(p) or not p.startswith(("/", "~")) else Risk.HIGH,
                     f"shreds {p} beyond recovery")


@handles('mv')
def mv(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    ops = _operands(argv)
    if len(ops) >= 2:
        dest = paths.clean(ops[-1])
        for src in ops[:-1]:
            s = paths.clean(src)
            if dest == "/dev/null":
                risk = Risk.CRITICAL if paths.is_root(s) or paths.is_home(s) or paths.is_system(s) else Risk.HIGH
                an.add("move_to_devnull", risk, f"moves {s} to /dev/null")
            elif paths.is_root(s) or paths.is_home(s) or paths.is_system_top(s):
                an.add("destructive_delete", Risk.HIGH, f"moves away {s}")
            elif paths.is_history(s) or paths.is_log(s):
                an.add("wipe_logs" if paths.is_log(s) else "clear_history", Risk.HIGH, f"moves away {s}")
        for hit in classify_write(dest, "mv"):
            an.hits.append(hit)


@handles('cp', 'install', 'rsync')
def cp(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    ops = _operands(argv)
    if len(ops) >= 2:
        an.hits += classify_write(paths.clean(ops[-1]), _name(argv[0]))
        if ops[0] in ("/dev/zero", "/dev/urandom", "/dev/random") and paths.is_block_device(paths.clean(ops[-1])):
            an.add("disk_wipe", Risk.CRITICAL, "copies zeros over a block device")


@handles('ln')
def ln(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    ops = _operands(argv)
    if len(ops) >= 2 and ops[0] == "/dev/null":
        p = paths.clean(ops[-1])
        if paths.is_history(p):
            an.add("clear_history", Risk.HIGH, f"links {p} to /dev/null")
        elif paths.is_log(p):
            an.add("wipe_logs", Risk.HIGH, f"links {p} to /dev/null")


@handles('chmod')
def chmod(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    ops = _operands(argv)
    if not ops:
        return
    mode, targets = ops[0], [paths.clean(t) for t in ops[1:]]
    recursive = "R" in _flags(argv) or "--recursive" in argv
    if re.search(r"[ugoa]*[+=]\w*s|^[0-7]?[4267][0-7]{3}$", mode):
        an.add("privilege_escalation", Risk.HIGH, f"sets the setuid/setgid bit ({mode})")
    for t in targets:
        broad = paths.is_root(t) or paths.is_home(t) or paths.is_system_top(t)
        if broad and recursive:
            an.add("destructive_permissions", Risk.CRITICAL, f"chmod -R {mode} {t}")
        elif (paths.is_secret(t) or paths.is_priv_file(t)) and re.search(r"[0-7]?[0-7][0-7][4-7]$|o\+|a\+", mode):
            an.add("destructive_permissions", Risk.HIGH, f"makes {t} readable by everyone")
        elif paths.is_system(t) and re.fullmatch(r"0*[0-7]?7[0-7]7|0+|a?[+=]rwx|[ugoa]*-\w+", mode):
            an.add("destructive_permissions", Risk.HIGH, f"chmod {mode} {t}")


@handles('chown', 'chgrp')
def chown(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    ops = _operands(argv)
    recursive = "R" in _flags(argv) or "--recursive" in argv
    for t in (paths.clean(x) for x in ops[1:]):
        if recursive and (paths.is_root(t) or paths.is_system_top(t) or paths.is_home(t)):
            an.add("destructive_permissions", Risk.CRITICAL, f"chown -R {ops[0]} {t}")


@handles('truncate')
def truncate(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    for t in _operands(argv):
        if re.fullmatch(r"\d+[KMG]?", t):
            continue
        p = paths.clean(t)
        if paths.is_log(p):
            an.add("wipe_logs", Risk.HIGH, f"truncates {p}")
        else:
            an.hits += classify_write(p, "truncate")


@handles('tee')
def tee(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    for t in _operands(argv):
        an.hits += classify_write(paths.clean(t), "tee")


@handles('sed')
def sed(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if any(a.startswith("-i") or a == "--in-place" for a in argv[1:]):
        ops = _operands(argv)
        for t in ops[1:]:
            an.hits += classify_write(paths.clean(t), "sed -i")


@handles('find')
def find(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
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
            delete_target(an, r, True, "find -delete removes", filtered)
    for i, a in enumerate(argv):
        if a in ("-exec", "-execdir", "-ok", "-okdir"):
            inner = []
            for b in argv[i + 1:]:
                if b in (";", "\\;", "+"):
                    break
                inner.append(b)
            if inner:
                sub = [x.replace("{}", roots[0]) for x in inner]
                before = len(an.hits)
                an.command(Cmd(argv=sub), *unwrap(sub, []))
                if filtered:
                    for j in range(before, len(an.hits)):
                        h = an.hits[j]
                        if h.rule == "destructive_delete" and h.risk == Risk.CRITICAL:
                            an.hits[j] = _hit(h.rule, Risk.HIGH, h.detail + " (filtered by find)")


@handles('xargs')
def xargs(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
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
        an._stdin_code(Cmd(argv=sub_argv, pipe_from=cmd.pipe_from), sub_argv, "shell")
    an.command(sub, sub_argv, wrappers)
    if _name(sub_argv[0] if sub_argv else "") in ("rm", "shred") and not items and "r" in _flags(sub_argv).lower():
        an.add("delete_outside_workspace", Risk.MEDIUM, "xargs rm -r with targets read from input")


@handles('parallel')
def parallel(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    ops = _operands(argv)
    if ops:
        an.nested(" ".join(ops).split(":::")[0])


@handles('eval')
def eval(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    an.nested(" ".join(argv[1:]))
