"""Command rules, family module: database clients running destructive statements (psql, mysql/mariadb, sqlite3,
mongo/mongosh, redis-cli, clickhouse-client, cqlsh, sqlcmd, duckdb): DROP, TRUNCATE, DELETE or UPDATE without
WHERE, dropDatabase/deleteMany({}), FLUSHALL. The statement may come from -c/-e/--eval/--query, a positional
argument, a here-string, a heredoc, or echo/printf piped in."""

from __future__ import annotations

import re

from domain.guardrails.shell.analyzer import Analyzer, _name, unwrap
from domain.guardrails.shell.parser import Cmd
from domain.guardrails.shell.registry import handles, rule
from domain.guardrails.verdict import Risk

DATABASE_DESTROY = rule("database_destroy", "database_destroy",
                        "drops or empties a database, schema, table or collection through a client")

CLIENTS = ("psql", "mysql", "mariadb", "sqlite3", "sqlite", "mongo", "mongosh", "redis-cli", "clickhouse-client",
           "clickhouse", "cqlsh", "sqlcmd", "duckdb", "cockroach", "valkey-cli", "keydb-cli")
_STMT_FLAGS = {"-c", "--command", "-e", "--execute", "--eval", "--query", "-q", "-Q", "--cmd"}

_SQL_DROP = re.compile(r"\bdrop\s+(?:database|schema|table|keyspace|collection|user|role|owned)\b", re.I)
_SQL_TRUNCATE = re.compile(r"\btruncate\s+(?:table\s+)?\w", re.I)
_SQL_DELETE = re.compile(r"\bdelete\s+from\s+[\w.\"`\[\]]+\s*(?:;|$|\)|'|\")", re.I)
_SQL_UPDATE_ALL = re.compile(r"\bupdate\s+[\w.\"`]+\s+set\b(?![^;]*\bwhere\b)", re.I)
_MONGO = re.compile(r"dropDatabase\s*\(|\.drop\s*\(\s*\)|\.(?:deleteMany|remove)\s*\(\s*\{\s*\}\s*\)", re.I)
_REDIS = re.compile(r"^\s*(?:flushall|flushdb)\b", re.I)


def destructive(sql: str) -> str | None:
    """What a statement destroys, or None."""
    for pat, what in ((_SQL_DROP, "drops"), (_SQL_TRUNCATE, "truncates"), (_SQL_DELETE, "deletes every row of"),
                      (_SQL_UPDATE_ALL, "rewrites every row of"), (_MONGO, "drops or empties"),
                      (_REDIS, "flushes")):
        m = pat.search(sql)
        if m:
            return f"{what}: {m.group(0).strip()[:60]}"
    return None


def statements(cmd: Cmd, argv: list[str]) -> list[str]:
    name = _name(argv[0])
    out: list[str] = []
    args = argv[1:]
    for i, a in enumerate(args):
        if a in _STMT_FLAGS and i + 1 < len(args):
            out.append(args[i + 1])
        elif a.startswith(("--command=", "--execute=", "--eval=", "--query=")):
            out.append(a.split("=", 1)[1])
        elif re.fullmatch(r"-[ce].+", a) and name in ("psql", "mysql", "mariadb"):
            out.append(a[2:])
    positional, skip = [], False
    for a in args:  # options that take a value (-h host, -p port, -u user, -d db...) are not statements
        if skip:
            skip = False
        elif a in ("-h", "-p", "-a", "-n", "-u", "--user", "--pass", "-d", "--host", "--port", "-U", "-P", "--db",
                   "--tls", "--cacert", "--cert", "--key", "-s", "--sni", "-c", "-e", "--eval", "--command",
                   "--execute", "--query", "-q", "-Q", "--cmd"):
            skip = True
        elif not a.startswith("-"):
            positional.append(a)
    if name in ("sqlite3", "sqlite", "duckdb") and len(positional) >= 2:
        out.append(" ".join(positional[1:]))
    if name in ("redis-cli", "valkey-cli", "keydb-cli") and positional:
        out.append(" ".join(positional))
    if cmd.heredoc:
        out.append(cmd.heredoc)
    out += [t for op, t in cmd.redirects if op == "<<<"]
    for u in cmd.upstream():
        words = unwrap(list(u.argv), [])[0]
        if words and _name(words[0]) in ("echo", "printf", "cat") and not (_name(words[0]) == "cat" and
                                                                            not u.heredoc):
            out.append(u.heredoc or " ".join(words[1:]))
    return out


@handles(*CLIENTS)
def client(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    for sql in statements(cmd, argv):
        what = destructive(sql)
        if what:
            an.add(DATABASE_DESTROY, Risk.HIGH, f"{_name(argv[0])} {what}")


@handles("dropdb", "dropuser", "mysqladmin")
def admin(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if _name(argv[0]) != "mysqladmin" or any(a in ("drop", "shutdown") for a in argv[1:]):
        an.add(DATABASE_DESTROY, Risk.HIGH, f"{' '.join(argv[:3])}")
