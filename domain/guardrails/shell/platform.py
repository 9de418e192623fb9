"""Command rules, family module: This platform's own controls: lockdown, workflows, the database, its processes."""

from __future__ import annotations

import re

from domain.guardrails.shell.analyzer import (Analyzer)
from domain.guardrails.shell.parser import Cmd
from domain.guardrails.shell.registry import every_command, rule
from domain.guardrails.verdict import Risk

from domain.guardrails.shell import databases

_PLATFORM_DB = re.compile(r"hybrid[-_]?llm|\bhybrid\b|\.hybrid-llm")
_PLATFORM_TABLES = re.compile(r"\b(?:principals|api_keys|approvals|permission\w*|grants|lockdown\w*|lockstop\w*|"
                              r"file_versions|document_versions|model_context|global_context|pool_state|"
                              r"audit\w*|alembic_version)\b", re.I)
_SQL_WRITE = re.compile(r"\b(?:update|insert|delete|drop|truncate|alter|grant|create\s+(?:user|role))\b", re.I)

PLATFORM_TAMPER = rule('platform_tamper', 'platform_tamper',
                       "stops, releases or rewrites this platform's controls and state")


@every_command
def platform(an: Analyzer, cmd: Cmd, argv: list[str], name: str) -> None:
    args = [a for a in argv[1:] if not a.startswith("-")]
    if name in ("temporal", "tctl"):
        joined = " ".join(args)
        if re.search(r"\b(?:workflow|wf)\s+(?:terminate|cancel|delete|reset|signal|update)", joined) or \
                re.search(r"\bnamespace\s+delete|\bbatch\b.*\b(?:terminate|cancel)|\bserver\b.*\bstop", joined):
            an.add("platform_tamper", Risk.CRITICAL, f"{name} {joined[:80]}")
    if name in ("hybrid-llm", "hybrid_llm") or (name == "python" and "hybrid_llm.cli.main" in argv):
        joined = " ".join(args)
        if re.search(r"\block(?:down)?\s+(?:release|unlock|disable|off)|^down\b|\bdown$|"
                     r"\bapprovals?\s+(?:approve|grant)|\bworker\s+stop|\bstack\s+down", joined):
            an.add("platform_tamper", Risk.CRITICAL, f"{name} {joined[:80]}")
    if name in ("pg_ctl", "pg_ctlcluster") and re.search(r"\b(?:stop|kill|promote)\b", " ".join(argv)):
        an.add(PLATFORM_TAMPER, Risk.CRITICAL, f"{name} stops the database server")
    if name in ("dropdb", "pg_dropcluster") and _PLATFORM_DB.search(" ".join(argv)):
        an.add(PLATFORM_TAMPER, Risk.CRITICAL, f"{name} drops the platform database")
    if name in databases.CLIENTS:
        joined = " ".join(argv)
        for sql in databases.statements(cmd, argv):
            touches = _PLATFORM_TABLES.search(sql)
            if _SQL_WRITE.search(sql) and (touches or (_PLATFORM_DB.search(joined) and databases.destructive(sql))):
                an.add(PLATFORM_TAMPER, Risk.CRITICAL, f"{name} rewrites platform state: {sql.strip()[:80]}")
