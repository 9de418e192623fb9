"""Command rules, family module: interpreters running code given on the command line (`python -c`, `perl -e`,
`node -e`, `ruby -e`, `php -r`, `lua -e`, `awk 'BEGIN{system(..)}'`). The analyzer core hands the code to
code_rules.scan_code, which judges what it runs, deletes, opens and connects; awk gets its program here."""

from __future__ import annotations

from domain.guardrails.shell.analyzer import Analyzer, _opts_with_arg
from domain.guardrails.shell.parser import Cmd
from domain.guardrails.shell.registry import handles, rule

# Raised by code_rules.scan_code on the code an interpreter runs (declared here: this family owns them).
FORK_BOMB = rule("fork_bomb", "fork_bomb", "code or a function that spawns copies of itself without end")
REVERSE_SHELL = rule("reverse_shell", "reverse_shell", "connects a shell or a program to a network connection")
REMOTE_CODE_EXEC = rule("remote_code_exec", "remote_code_exec", "runs code fetched from the network")
DECODE_TO_SHELL = rule("decode_to_shell", "remote_code_exec", "decodes a payload and runs it")


@handles("awk", "gawk", "mawk", "nawk", "busybox-awk")
def awk(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    ops = _opts_with_arg(argv[1:], {"-F", "-v", "-f"})
    if ops:
        an.code(ops[0], "awk")
