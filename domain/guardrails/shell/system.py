"""Command rules, family module: Services, scheduled jobs, processes, power and accounts, root shells."""

from __future__ import annotations

import re

from domain.guardrails.shell.analyzer import (DEFENCE_SERVICES, PLATFORM_PROCS,
                                              Analyzer, _name, _operands,
                                              _opts_with_arg, _q)
from domain.guardrails.shell.parser import Cmd
from domain.guardrails.shell.registry import handles, rule
from domain.guardrails.verdict import Risk

PERSISTENCE = rule('persistence', 'persistence',
                   'installs a way back in: cron, at, services, start-up files, new accounts')
SERVICE_CHANGE = rule('service_change', 'low_signal', 'enables or changes a service')
KILL_ALL_PROCESSES = rule('kill_all_processes', 'destruction', 'signals every process')
POWER = rule("power_state", "power_account", "shuts down, reboots or halts the machine")
ACCOUNT = rule("account_change", "power_account", "changes passwords, locks, expires or deletes user accounts")
PRIVILEGE_ESCALATION = rule('privilege_escalation', 'privilege_escalation',
                            'root shells, setuid bits, sudoers, admin groups, capabilities')


@handles('crontab')
def crontab(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    args = argv[1:]
    if args[:1] in (["-l"],) or ("-l" in args and "-u" in args and len(args) <= 3):
        return
    if "-r" in args:
        an.add("persistence", Risk.MEDIUM, "crontab -r removes scheduled jobs")
    elif "-e" in args:
        an.add("persistence", Risk.MEDIUM, "crontab -e edits scheduled jobs")
    else:
        an.add("persistence", Risk.HIGH, "crontab installs scheduled jobs")


@handles('at')
def at(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if not any(a in ("-l", "-r", "-d") for a in argv[1:]):
        an.add("persistence", Risk.MEDIUM, "at schedules a job")


@handles('systemctl')
def systemctl(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    ops = [a for a in argv[1:] if not a.startswith("-")]
    if not ops:
        return
    verb, units = ops[0], ops[1:]
    if verb in ("stop", "disable", "mask", "kill") and any(DEFENCE_SERVICES.match(u) for u in units):
        an.add("disable_defences", Risk.HIGH, f"systemctl {verb} {' '.join(units)}")
    elif verb in ("stop", "disable", "mask", "kill") and any(PLATFORM_PROCS.search(u) for u in units):
        an.add("platform_tamper", Risk.CRITICAL, f"systemctl {verb} {' '.join(units)}")
    elif verb in ("enable", "link", "preset", "daemon-reload") or (verb == "start" and "--user" in argv):
        an.add("service_change", Risk.MEDIUM, f"systemctl {verb} {' '.join(units)}")
    elif verb in ("poweroff", "halt", "reboot", "kexec", "isolate", "rescue", "emergency"):
        an.add("kill_all_processes", Risk.HIGH, f"systemctl {verb}")


@handles('service')
def service(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    ops = argv[1:]
    if len(ops) >= 2 and ops[1] == "stop":
        if DEFENCE_SERVICES.match(ops[0]):
            an.add("disable_defences", Risk.HIGH, f"service {ops[0]} stop")
        elif PLATFORM_PROCS.search(ops[0]):
            an.add("platform_tamper", Risk.CRITICAL, f"service {ops[0]} stop")


@handles('launchctl')
def launchctl(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if any(a in ("load", "bootstrap", "submit") for a in argv[1:]):
        an.add("persistence", Risk.MEDIUM, "launchctl loads a job")
    if any(a in ("unload", "bootout") for a in argv[1:]) and re.search(r"security|firewall|xprotect|mrt",
                                                                       " ".join(argv).lower()):
        an.add("disable_defences", Risk.HIGH, "unloads a security agent")


@handles('kill')
def kill(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    ops = _operands(argv)
    if "-1" in argv[1:] and (len(ops) == 0 or argv[-1] == "-1"):
        an.add("kill_all_processes", Risk.HIGH, "kill -1 signals every process")
    kill_names(an, argv, ops)


def kill_names(an: Analyzer, argv: list[str], ops: list[str]) -> None:
    joined = " ".join(ops)
    if DEFENCE_SERVICES.search(joined) or re.search(r"\b(?:auditd|falcon|osqueryd|sysmon|rsyslogd|fail2ban)",
                                                     joined):
        an.add("disable_defences", Risk.HIGH, f"{_name(argv[0])} {joined}")
    if (_name(argv[0]) != "kill" or re.search(r"\$\(\s*(?:pgrep|pidof|pgrep -f)", joined)) and \
            PLATFORM_PROCS.search(joined):
        an.add("platform_tamper", Risk.CRITICAL, f"{_name(argv[0])} {joined} stops the platform")


@handles('pkill', 'killall')
def pkill(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    kill_names(an, argv, _operands(argv))


@handles('usermod', 'gpasswd')
def usermod(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    joined = " ".join(argv)
    if re.search(r"-\w*G\w*\s+\S*\b(?:sudo|wheel|root|admin|adm|docker|lxd|disk|shadow)\b", joined) or \
            re.search(r"-u\s+0\b", joined) or (_name(argv[0]) == "gpasswd" and "-a" in argv and re.search(
                r"\b(?:sudo|wheel|root|admin|adm|docker|lxd|disk|shadow)$", joined)):
        an.add("privilege_escalation", Risk.HIGH, "adds a user to an administrative group")


@handles('useradd', 'adduser')
def useradd(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    joined = " ".join(argv)
    if re.search(r"-u\s*0\b|-o\b", joined) or re.search(r"-\w*G\s+\S*\b(?:sudo|wheel|root|admin)\b", joined):
        an.add("privilege_escalation", Risk.CRITICAL, "creates a user with root rights")
    else:
        an.add("persistence", Risk.HIGH, "creates a user account")


@handles('passwd')
def passwd(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if "root" in argv or "-d" in argv:
        an.add("privilege_escalation", Risk.HIGH, "changes the root password")


@handles('visudo')
def visudo(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if "-c" not in argv:
        an.add("privilege_escalation", Risk.HIGH, "edits sudoers")


@handles('setcap')
def setcap(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if re.search(r"cap_(?:setuid|setgid|sys_admin|dac_override|sys_ptrace)", " ".join(argv)):
        an.add("privilege_escalation", Risk.HIGH, "grants a dangerous capability")


@handles('su')
def su(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    args = argv[1:]
    if "-c" in args:
        i = args.index("-c")
        an.nested(" ".join(args[i + 1:i + 2]))
        an.add("privilege_escalation", Risk.MEDIUM, "su -c runs a command as another user")
    else:
        an.add("privilege_escalation", Risk.HIGH, "su opens a shell as another user")


@handles('docker', 'kubectl', 'podman')
def docker(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if len(argv) > 2 and argv[1] == "exec":
        ops = _opts_with_arg(argv[2:], {"-u", "-w", "-e", "--user", "--workdir", "--env"})
        if len(ops) > 1:
            an.nested(" ".join(_q(x) for x in ops[1:]))
    if "--privileged" in argv and any(a.startswith("-v") or a == "--volume" for a in argv) and \
            any(re.match(r"^/:", a) for a in argv):
        an.add("privilege_escalation", Risk.HIGH, "mounts the host root into a privileged container")


@handles("shutdown", "reboot", "poweroff", "halt", "init", "telinit", "loginctl", "shutdown.exe", "Stop-Computer",
         "Restart-Computer")
def power(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    name, args = _name(argv[0]), argv[1:]
    if any(a in ("--help", "-h", "--version") for a in args) and name != "shutdown":
        return
    if name == "shutdown" and any(a in ("-c", "--show", "-k") for a in args):
        return  # cancel, show, or only warn
    if name in ("init", "telinit"):
        if args[:1] and args[0] in ("0", "6", "1", "s", "S"):
            an.add(POWER, Risk.HIGH, f"{name} {args[0]} changes the run level")
        return
    if name == "loginctl":
        if args[:1] and args[0] in ("poweroff", "reboot", "halt", "kexec", "terminate-user", "kill-user",
                                    "terminate-session", "kill-session", "terminate-seat"):
            an.add(POWER if args[0] in ("poweroff", "reboot", "halt", "kexec") else ACCOUNT, Risk.HIGH,
                   f"loginctl {' '.join(args[:2])}")
        return
    an.add(POWER, Risk.HIGH, f"{' '.join(argv[:3])}")


@handles("chpasswd", "chgpasswd", "newusers")
def chpasswd(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    an.add(ACCOUNT, Risk.HIGH, f"{_name(argv[0])} sets passwords in bulk")


@handles("passwd")
def passwd_change(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    ops = _operands(argv)
    scripted = "--stdin" in argv or cmd.pipe_from is not None or any(op == "<<<" for op, _ in cmd.redirects)
    if "root" in argv or "-d" in argv:
        return  # privilege_escalation, above
    if any(a in ("-l", "--lock", "-e", "--expire", "-x", "--maxdays", "-u", "--unlock") for a in argv[1:]) or \
            (ops and scripted) or (ops and ops[0] not in ("$USER", "$(whoami)")):
        an.add(ACCOUNT, Risk.HIGH, f"passwd {' '.join(argv[1:3])} changes another account")
    elif scripted:
        an.add(ACCOUNT, Risk.MEDIUM, "passwd fed from a pipe")


@handles("usermod", "chage", "pw", "vipw", "chsh")
def account_mod(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    name, joined = _name(argv[0]), " ".join(argv[1:])
    if name == "usermod" and re.search(r"(?:^|\s)(?:-\w*[LpeU]\w*|--lock|--expiredate|--password|--unlock)\b", joined):
        an.add(ACCOUNT, Risk.HIGH, f"usermod {joined[:60]} locks, expires or re-passwords an account")
    elif name == "usermod" and re.search(r"-s\s+\S*(?:nologin|false)\b", joined):
        an.add(ACCOUNT, Risk.HIGH, "usermod takes away an account's shell")
    elif name == "chage" and re.search(r"-\w*E\s*0\b|-\w*E\s*\d{4}-|-\w*[Md]\s*0\b", joined):
        an.add(ACCOUNT, Risk.HIGH, f"chage {joined[:60]} expires an account")
    elif name == "pw" and re.search(r"\buser(?:del|mod)\b", joined):
        an.add(ACCOUNT, Risk.HIGH, f"pw {joined[:60]}")
    elif name == "vipw":
        an.add(ACCOUNT, Risk.HIGH, "vipw edits the password file")


@handles("userdel", "deluser", "groupdel", "delgroup", "luserdel", "Remove-LocalUser")
def account_delete(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if any(a in ("--help", "-h") for a in argv[1:]) or len(argv) < 2:
        return
    an.add(ACCOUNT, Risk.HIGH, f"{' '.join(argv[:4])} deletes an account")


@handles("net", "net.exe")
def net_user(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    low = [a.lower() for a in argv[1:]]
    if low[:1] == ["user"] and (any(a in ("/delete", "/del", "/active:no") for a in low) or len(low) >= 3):
        an.add(ACCOUNT, Risk.HIGH, f"net {' '.join(argv[1:3])}")
