"""Versioned uploads: every content of a file under uploads/ is kept, content-addressed, in
`uploads/.versions/<sha256>` (written by the system actor only), and each version is a row in PostgreSQL.

Used by the entry points (the CLI, the API: they hold the bytes) and by the worker's watcher. Validation comes
first, so bad input leaves nothing behind; every write is atomic (temp file + rename) and admitted through the
lockdown gate.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from activities.db.models import DocumentRow, DocumentVersionRow
from activities.filesystem import PathRefused, PlatformFiles, atomic_write
from activities.lockdown_gate import LockdownGate
from activities.rag.extract import chunks_of
from domain.chunking import Kind
from domain.paths import VERSIONS, SafePath, UnsafePath, safe_path
from domain.permissions import Actor, Operation, PermissionPolicy
from domain.rag import (
    DEFAULT_MAX_UPLOAD_BYTES,
    BadUpload,
    FileHistory,
    UploadReceipt,
    VersionInfo,
    check_size,
    kind_for,
    sha256_hex,
)


class UploadRefused(Exception):
    """The path is unsafe, not under uploads/, or the policy refuses the write; `code` is stable."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class UnknownVersion(LookupError):
    """No such file or version in the history."""


def upload_path(name: str) -> SafePath:
    """`notes.md` or `uploads/notes.md` -> uploads/notes.md; never into uploads/.versions/."""
    try:
        path = safe_path(name)
        if path.parts[0] != "uploads":
            path = safe_path(f"uploads/{name}")
    except UnsafePath as e:
        raise UploadRefused("path", f"unsafe path {name!r}: {e.reason}") from None
    if len(path.parts) < 2:
        raise UploadRefused("path", "name a file inside uploads/")
    if path.zone != "uploads" or any(p.startswith(".") for p in path.parts[1:]):
        raise UploadRefused("path", f"{path.posix}: hidden names and {VERSIONS}/ are the platform's own")
    return path


class Uploads:
    def __init__(self, files: PlatformFiles, engine: sa.Engine, gate: LockdownGate,
                 policy: PermissionPolicy | None = None, max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> None:
        self.files = files
        self.engine = engine
        self.gate = gate
        self.policy = policy or PermissionPolicy()
        self.max_bytes = max_bytes

    # -- validation -------------------------------------------------------------------------------------------
    def validate(self, path: SafePath, data: bytes) -> Kind:
        """Raise BadUpload unless the content can be indexed (decodes, has text, chunks)."""
        name = path.parts[-1]
        check_size(name, len(data), self.max_bytes)
        kind = kind_for(name)
        chunks_of(name, kind, data)
        return kind

    # -- writing ----------------------------------------------------------------------------------------------
    def put(self, name: str, data: bytes, source: str = "upload") -> UploadReceipt:
        """Store `data` as the new content of uploads/NAME (a no-op when it is the latest version already)."""
        path = upload_path(name)
        kind = self.validate(path, data)
        sha = sha256_hex(data)
        with self.gate.admit(f"storing {path.posix}"):
            self._store_blob(sha, data)
            target = self._resolve(path, Actor.USER)
            current = target.read_bytes() if target.is_file() else None
            if current is None or sha256_hex(current) != sha:
                atomic_write(target, data)
            return self._record(path.posix, sha, len(data), kind, source)

    def snapshot(self, name: str) -> UploadReceipt | None:
        """Version what is on disk now (the watcher): a new version, a deletion, or None when nothing changed
        or the path was never known. Raises BadUpload for content that cannot be indexed."""
        path = upload_path(name)
        target = self._resolve(path, Actor.SYSTEM, Operation.READ)
        if not target.exists():
            with self.gate.admit(f"recording the deletion of {path.posix}"):
                return self._record(path.posix, None, 0, None, "deleted")
        if not target.is_file():
            return None
        data = target.read_bytes()[: self.max_bytes + 1]
        kind = self.validate(path, data)
        sha = sha256_hex(data)
        with self.gate.admit(f"versioning {path.posix}"):
            self._store_blob(sha, data)
            return self._record(path.posix, sha, len(data), kind, "watch")

    def restore(self, name: str, version: int) -> UploadReceipt:
        """Make an earlier version the current content again (as a new version; the history keeps growing)."""
        path = upload_path(name)
        old = self._version(path.posix, version)
        if old.sha256 is None:
            raise UnknownVersion(f"{path.posix} v{version} is a deletion, not content; pick another version")
        data = self.read_blob(old.sha256)
        with self.gate.admit(f"restoring {path.posix} v{version}"):
            atomic_write(self._resolve(path, Actor.USER), data)
            return self._record(path.posix, old.sha256, len(data), old.kind, f"restore:v{version}")

    # -- reading ----------------------------------------------------------------------------------------------
    def read_blob(self, sha: str) -> bytes:
        target = self._resolve(safe_path(f"uploads/{VERSIONS}/{sha}"), Actor.SYSTEM, Operation.READ)
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            raise UnknownVersion(f"stored content {sha[:12]} is missing from uploads/{VERSIONS}/") from None
        if sha256_hex(data) != sha:
            raise UnknownVersion(f"stored content {sha[:12]} is corrupt (its hash does not match)")
        return data

    def history(self, name: str) -> FileHistory:
        path = upload_path(name)
        with Session(self.engine) as s:
            doc = s.scalar(sa.select(DocumentRow).where(DocumentRow.path == path.posix))
            if doc is None:
                raise UnknownVersion(f"{path.posix} has no history (never uploaded)")
            rows = s.scalars(sa.select(DocumentVersionRow).where(DocumentVersionRow.document_id == doc.id)
                             .order_by(DocumentVersionRow.version)).all()
            return FileHistory(path=path.posix, versions=[_info(r, doc.current_version_id) for r in rows])

    def _version(self, path: str, version: int) -> DocumentVersionRow:
        with Session(self.engine) as s:
            row = s.scalar(sa.select(DocumentVersionRow).join(DocumentRow, DocumentRow.id == DocumentVersionRow.document_id)
                           .where(DocumentRow.path == path, DocumentVersionRow.version == version))
            if row is None:
                raise UnknownVersion(f"{path} has no version {version} (see `hybrid-llm files history {path}`)")
            s.expunge(row)
            return row

    # -- internals --------------------------------------------------------------------------------------------
    def _resolve(self, path: SafePath, actor: Actor, op: Operation = Operation.WRITE) -> Path:
        for area in ("uploads", f"uploads/{VERSIONS}"):
            os.makedirs(self.files.root / area, exist_ok=True)
        decision = self.files.check(actor, op, path.posix, self.policy, locked=False)
        if not decision.allowed:
            raise UploadRefused("denied", f"{op.value} {path.posix} refused: {decision.reason}")
        try:
            return self.files.resolve(path).real
        except (UnsafePath, PathRefused) as e:
            raise UploadRefused("path", f"{path.posix}: {e}") from None

    def _store_blob(self, sha: str, data: bytes) -> None:
        target = self._resolve(safe_path(f"uploads/{VERSIONS}/{sha}"), Actor.SYSTEM)
        if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == sha:
            return  # content-addressed: already there
        atomic_write(target, data)

    def _record(self, path: str, sha: str | None, size: int, kind: str | None, source: str) -> UploadReceipt | None:
        """A new version row unless the latest already has this content; one writer per document at a time."""
        with Session(self.engine) as s, s.begin():
            if sha is None and s.scalar(sa.select(DocumentRow.id).where(DocumentRow.path == path)) is None:
                return None
            s.execute(pg_insert(DocumentRow).values(path=path).on_conflict_do_nothing(index_elements=["path"]))
            doc = s.scalar(sa.select(DocumentRow).where(DocumentRow.path == path).with_for_update())
            latest = s.scalar(sa.select(DocumentVersionRow).where(DocumentVersionRow.document_id == doc.id)
                              .order_by(DocumentVersionRow.version.desc()).limit(1))
            if latest is not None and latest.sha256 == sha:
                return UploadReceipt(path=path, version=latest.version, sha256=sha, size=latest.size,
                                     kind=latest.kind, created=False)
            if latest is None and sha is None:
                return None
            number = (latest.version if latest else 0) + 1
            s.add(DocumentVersionRow(document_id=doc.id, version=number, sha256=sha, size=size, kind=kind,
                                     source=source, status="stored" if sha else "deleted"))
            doc.updated_at = sa.func.now()
            return UploadReceipt(path=path, version=number, sha256=sha, size=size, kind=kind, created=True)


def _info(row: DocumentVersionRow, current_id: int | None) -> VersionInfo:
    return VersionInfo(version=row.version, sha256=row.sha256, size=row.size, kind=row.kind, source=row.source,
                       status=row.status, chunks=row.chunks, error=row.error, created_at=row.created_at,
                       current=row.id == current_id)


__all__ = ["BadUpload", "UnknownVersion", "UploadRefused", "Uploads", "upload_path"]
