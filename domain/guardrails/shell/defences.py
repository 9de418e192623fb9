"""Command rules, family module: Turning off security tooling, clearing history and logs."""

from __future__ import annotations

import re

from domain.guardrails import paths
from domain.guardrails.shell.analyzer import (Analyzer, _name, _operands)
from domain.guardrails.shell.parser import Cmd
from domain.guardrails.shell.registry import handles, rule
from domain.guardrails.verdict import Risk

DISABLE_DEFENCES = rule('disable_defences', 'disable_defences',
                        'stops or weakens firewalls, audit, MAC and security agents')
CLEAR_HISTORY = rule('clear_history', 'history_logs', 'clears or stops shell history')
WIPE_LOGS = rule('wipe_logs', 'history_logs', 'deletes or empties logs')


@handles('chattr')
def chattr(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if any(paths.is_log(paths.clean(t)) or paths.is_system(paths.clean(t)) for t in _operands(argv)[1:]):
        an.add("disable_defences", Risk.MEDIUM, "changes file attributes of system files")


@handles('setenforce')
def setenforce(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if argv[1:2] in (["0"], ["Permissive"], ["permissive"]):
        an.add("disable_defences", Risk.HIGH, "setenforce 0 turns SELinux enforcement off")


@handles('ufw')
def ufw(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if any(a in ("disable", "reset") for a in argv[1:]):
        an.add("disable_defences", Risk.HIGH, f"ufw {' '.join(argv[1:])}")
    elif "default" in argv and "allow" in argv:
        an.add("disable_defences", Risk.HIGH, "ufw default allow")


@handles('iptables', 'ip6tables', 'iptables-legacy')
def iptables(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    args = argv[1:]
    if any(a in ("-F", "--flush", "-X", "--delete-chain", "-Z") for a in args) or \
            ("-P" in args and "ACCEPT" in args) or ("--policy" in args and "ACCEPT" in args):
        an.add("disable_defences", Risk.HIGH, f"{_name(argv[0])} {' '.join(args)}")


@handles('nft')
def nft(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if "flush" in argv or ("delete" in argv and "table" in argv):
        an.add("disable_defences", Risk.HIGH, "nft flushes the firewall")


@handles('auditctl')
def auditctl(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if "-D" in argv or ("-e" in argv and "0" in argv):
        an.add("disable_defences", Risk.HIGH, "auditctl removes audit rules")


@handles('aa-teardown')
def aa_teardown(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    an.add("disable_defences", Risk.HIGH, "aa-teardown unloads AppArmor")


@handles('apparmor_parser')
def apparmor_parser(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if "-R" in argv or "--remove" in argv:
        an.add("disable_defences", Risk.HIGH, "removes an AppArmor profile")


@handles('sysctl')
def sysctl(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if any(re.match(r"kernel\.(?:randomize_va_space|yama\.ptrace_scope)=0", a) for a in argv):
        an.add("disable_defences", Risk.HIGH, "sysctl weakens kernel protections")


@handles('Set-MpPreference')
def set_mppreference(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if any("Disable" in a for a in argv):
        an.add("disable_defences", Risk.HIGH, "turns Windows Defender off")


@handles('history')
def history(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if any(a in ("-c", "-cw", "-wc") for a in argv[1:]) or ("-w" in argv and "/dev/null" in argv) or \
            "-d" in argv:
        an.add("clear_history", Risk.HIGH, "history " + " ".join(argv[1:]))


@handles('set')
def set(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if "+o" in argv and "history" in argv:
        an.add("clear_history", Risk.HIGH, "set +o history stops recording commands")


@handles('unset')
def unset(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if any(a in ("HISTFILE", "HISTFILESIZE", "HISTSIZE") for a in argv):
        an.add("clear_history", Risk.HIGH, "unset HISTFILE stops recording commands")


@handles('journalctl')
def journalctl(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if any(a.startswith("--vacuum") for a in argv):
        an.add("wipe_logs", Risk.HIGH, "journalctl --vacuum deletes system logs")


@handles('wevtutil')
def wevtutil(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if any(a.lower() in ("cl", "clear-log") for a in argv):
        an.add("wipe_logs", Risk.HIGH, "wevtutil clears event logs")


@handles('Clear-EventLog')
def clear_eventlog(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    an.add("wipe_logs", Risk.HIGH, "Clear-EventLog")
