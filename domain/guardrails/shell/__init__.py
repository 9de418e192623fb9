"""Shell commands: the parser (parser.py), the analyzer core (analyzer.py) and one module per attack family, each
declaring its rules next to the checks that raise them (registry.py derives the rule list).

Families: destructive_fs, disk, interpreters, databases, cloud, network (downloads, reverse shells, tunnels and
listeners), system (services, jobs, power and accounts, root shells), defences (security tooling, history, logs),
credentials (reading and sending secrets, credential discovery), platform (this platform's own controls).
"""

from domain.guardrails.shell.parser import Cmd, Parsed, command_name, decode_escapes, parse  # noqa: F401
from domain.guardrails.shell import registry  # noqa: E402
from domain.guardrails.shell.analyzer import Analyzer, analyze, unwrap  # noqa: E402,F401
from domain.guardrails.shell import (  # noqa: E402,F401  (importing a family registers its checks)
    cloud, credentials, databases, defences, destructive_fs, disk, interpreters, network, platform, system)

RULES: dict[str, list[str]] = registry.families()

__all__ = ["RULES", "Analyzer", "Cmd", "Parsed", "analyze", "command_name", "decode_escapes", "parse", "registry",
           "unwrap"]
