"""Ingestion activities: prepare (validate + chunk a stored version), embed a batch of its chunks (staged rows,
invisible to search), commit (swap the document's chunks in one transaction), discard (a failed attempt), remove
(a deleted file). Inputs carry ids and content hashes; chunk text is re-derived from the content-addressed blob.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.db.models import ChunkRow, DocumentRow, DocumentVersionRow
from activities.embeddings import Embedder
from activities.lockdown_gate import LockdownGate
from activities.rag.extract import chunks_of
from activities.uploads import UnknownVersion, Uploads, atomic_write
from domain.chunking import MAX_CHARS, Chunk
from domain.guardrails import Verdict, scan_text
from domain.paths import safe_path
from domain.permissions import Actor, Operation
from domain.rag import (
    BadUpload,
    CommitInput,
    CommitResult,
    FLAG_AT,
    EmbedBatch,
    IngestInput,
    PrepareResult,
    RemoveInput,
    finding_of,
)
from domain.activity_inputs import DiscardInput

log = logging.getLogger("hybrid_llm.rag")


def _bad(e: BadUpload | UnknownVersion) -> ApplicationError:
    code = e.code if isinstance(e, BadUpload) else "unknown_version"
    return ApplicationError(str(e), code, type="BadUpload", non_retryable=True)


ScanDocument = Callable[[str], Verdict]


def rules_scan(text: str) -> Verdict:
    """The guardrails' rules on a document's text (when no worker scanner is given)."""
    return scan_text(text, source="document")


def count_terms(session: Session, version_id: int, sign: int) -> None:
    """Add (+1) or take away (-1) a version's chunks in the term statistics that search's inverse document
    frequency reads (`rag_terms`), in the caller's transaction: only the versions search answers from count."""
    stats = f"SELECT word, ndoc FROM ts_stat('SELECT tsv FROM chunks WHERE version_id = {int(version_id)}')"
    session.execute(sa.text(f"""
        INSERT INTO rag_terms (lexeme, chunks)
        SELECT lexeme, n FROM (SELECT word AS lexeme, :sign * ndoc AS n FROM ({stats}) st
                               UNION ALL SELECT '', :sign * count(*) FROM chunks WHERE version_id = :v) terms
        ORDER BY lexeme  -- one lock order for every transaction: no deadlocks between concurrent commits
        ON CONFLICT (lexeme) DO UPDATE SET chunks = greatest(rag_terms.chunks + excluded.chunks, 0)"""),
                    {"sign": sign, "v": version_id})


class IngestActivities:
    def __init__(self, engine: sa.Engine, uploads: Uploads, embedder: Embedder, gate: LockdownGate,
                 max_chars: int = MAX_CHARS, scan: ScanDocument | None = None, flag_at: str = FLAG_AT) -> None:
        self.engine = engine
        self.uploads = uploads
        self.embedder = embedder
        self.gate = gate
        self.max_chars = max_chars
        self.scan = scan or rules_scan  # every chunk is scanned as a document at ingestion
        self.flag_at = flag_at
        self._cache: tuple[str, list[Chunk]] | None = None  # the last version's chunks (batches re-use them)
        self._lock = threading.Lock()

    def chunks(self, name: str, kind: str, sha: str) -> list[Chunk]:
        with self._lock:
            if self._cache is not None and self._cache[0] == sha:
                return self._cache[1]
        out = chunks_of(name, kind, self.uploads.read_blob(sha), self.max_chars)  # type: ignore[arg-type]
        with self._lock:
            self._cache = (sha, out)
        return out

    @activity.defn(name="rag.prepare")
    def prepare(self, inp: IngestInput) -> PrepareResult:
        """Find the version, decide whether there is anything to do, and count its chunks."""
        with Session(self.engine) as s, s.begin():
            doc = s.scalar(sa.select(DocumentRow).where(DocumentRow.path == inp.path))
            row = doc and s.scalar(sa.select(DocumentVersionRow).where(
                DocumentVersionRow.document_id == doc.id, DocumentVersionRow.version == inp.version))
            if doc is None or row is None or row.sha256 != inp.sha256:
                raise ApplicationError(f"{inp.path} v{inp.version} with content {str(inp.sha256)[:12]} is not in "
                                       "the upload history", type="UnknownVersion", non_retryable=True)
            result = PrepareResult(document_id=doc.id, version_id=row.id, action="index")
            if doc.current_version_id == row.id:
                return result.model_copy(update={"action": "unchanged", "chunks": row.chunks or 0})
            latest = s.scalar(sa.select(sa.func.max(DocumentVersionRow.version))
                              .where(DocumentVersionRow.document_id == doc.id))
            if latest is not None and latest > row.version:
                row.status = "superseded"
                return result.model_copy(update={"action": "superseded"})
            try:
                chunks = self.chunks(inp.path, row.kind or "text", row.sha256)
            except (BadUpload, UnknownVersion) as e:
                row.status, row.error = "failed", str(e)
                s.commit()
                raise _bad(e) from None
            row.status, row.chunks, row.error = "indexing", len(chunks), None
            return result.model_copy(update={"chunks": len(chunks)})

    @activity.defn(name="rag.embed")
    def embed(self, batch: EmbedBatch) -> int:
        """Embed chunks [start, end) of a version and stage them (idempotent); chunks whose text and section are
        already embedded anywhere reuse that vector."""
        with Session(self.engine) as s:
            row = s.get(DocumentVersionRow, batch.version_id)
            doc = row and s.get(DocumentRow, row.document_id)
            if row is None or doc is None or row.sha256 != batch.sha256:
                raise ApplicationError(f"version {batch.version_id} is gone", type="UnknownVersion",
                                       non_retryable=True)
            path, kind, document_id = doc.path, row.kind or "text", doc.id
        try:
            part = self.chunks(path, kind, batch.sha256)[batch.start:batch.end]
        except (BadUpload, UnknownVersion) as e:
            raise _bad(e) from None
        with self.engine.connect() as conn:
            known = {(r.sha256, r.section, r.lead): r.embedding for r in conn.execute(
                sa.select(ChunkRow.sha256, ChunkRow.section, ChunkRow.lead, ChunkRow.embedding)
                .distinct(ChunkRow.sha256, ChunkRow.section, ChunkRow.lead)
                .where(ChunkRow.sha256.in_({c.sha256 for c in part})))}
        todo = [c for c in part if (c.sha256, c.section, c.lead) not in known]
        activity.heartbeat(batch.start)
        vectors = self.embedder.encode([c.embed_text for c in todo]) if todo else []
        fresh = {(c.sha256, c.section, c.lead): v for c, v in zip(todo, vectors)}
        findings = [finding_of(self.scan(c.text), self.flag_at) for c in part]
        rows = [dict(document_id=document_id, version_id=batch.version_id, position=c.position, sha256=c.sha256,
                     text=c.text, section=c.section, lead=c.lead, start_line=c.start_line, end_line=c.end_line,
                     page=c.page, flagged=f is not None, finding=f.model_dump(mode="json") if f else None,
                     embedding=fresh.get((c.sha256, c.section, c.lead), known.get((c.sha256, c.section, c.lead))))
                for c, f in zip(part, findings)]
        flagged = [c.position for c, f in zip(part, findings) if f is not None]
        if flagged:
            log.warning("%s: chunks %s carry instructions (flagged: %s)", path, flagged[:20],
                        ", ".join(sorted({r for f in findings if f for r in f.rules})))
        if rows:
            with self.engine.begin() as conn:
                conn.execute(pg_insert(ChunkRow).on_conflict_do_nothing(constraint="chunks_version_position"), rows)
        return len(part)

    @activity.defn(name="rag.commit")
    def commit(self, inp: CommitInput) -> CommitResult:
        """Make the staged version the one search answers from, and delete earlier versions' chunks, in one
        transaction; an older version than the current one is discarded instead."""
        with self.gate.admit(f"indexing document {inp.document_id}"), Session(self.engine) as s, s.begin():
            doc = s.scalar(sa.select(DocumentRow).where(DocumentRow.id == inp.document_id).with_for_update())
            row = s.get(DocumentVersionRow, inp.version_id)
            assert doc is not None and row is not None
            if doc.current_version_id == row.id:  # a retried commit that already happened
                return CommitResult(action="indexed", chunks=row.chunks or 0, removed=0)
            current = s.get(DocumentVersionRow, doc.current_version_id) if doc.current_version_id else None
            newer_deletion = s.scalar(sa.select(sa.func.count()).select_from(DocumentVersionRow).where(
                DocumentVersionRow.document_id == doc.id, DocumentVersionRow.version > row.version,
                DocumentVersionRow.sha256.is_(None)))
            if (current is not None and current.version > row.version) or newer_deletion:
                s.execute(sa.delete(ChunkRow).where(ChunkRow.version_id == row.id))
                row.status = "superseded"
                return CommitResult(action="superseded", chunks=0, removed=0)
            staged = s.scalar(sa.select(sa.func.count()).select_from(ChunkRow).where(ChunkRow.version_id == row.id))
            if staged != row.chunks:
                raise ApplicationError(f"{doc.path} v{row.version}: {staged} of {row.chunks} chunks staged",
                                       type="IncompleteIngestion", non_retryable=True)
            older = sa.select(DocumentVersionRow.id).where(DocumentVersionRow.document_id == doc.id,
                                                           DocumentVersionRow.version < row.version)
            if current is not None:
                count_terms(s, current.id, -1)
            removed = s.execute(sa.delete(ChunkRow).where(ChunkRow.document_id == doc.id,
                                                          ChunkRow.version_id.in_(older))).rowcount
            if current is not None:
                current.status = "superseded"
            count_terms(s, row.id, +1)
            doc.current_version_id, doc.updated_at = row.id, sa.func.now()
            row.status, row.error = "indexed", None
            path, version, sha = doc.path, row.version, row.sha256
            manifest = [dict(id=c.id, position=c.position, sha256=c.sha256, start_line=c.start_line,
                             end_line=c.end_line, section=c.section, page=c.page, flagged=c.flagged)
                        for c in s.execute(sa.select(ChunkRow.id, ChunkRow.position, ChunkRow.sha256,
                                                     ChunkRow.start_line, ChunkRow.end_line, ChunkRow.section,
                                                     ChunkRow.page, ChunkRow.flagged)
                                           .where(ChunkRow.version_id == row.id)
                                           .order_by(ChunkRow.position))]
            result = CommitResult(action="indexed", chunks=staged, removed=removed)
        self._write_manifest(inp.document_id, {"path": path, "version": version, "sha256": sha, "chunks": manifest})
        return result

    @activity.defn(name="rag.discard")
    def discard(self, inp: DiscardInput) -> int:
        """A failed ingestion: drop its staged chunks; the previous version stays searchable."""
        with Session(self.engine) as s, s.begin():
            row = s.get(DocumentVersionRow, inp.version_id)
            doc = row and s.get(DocumentRow, row.document_id)
            if row is None or doc is None or doc.current_version_id == row.id:
                return 0
            row.status, row.error = "failed", inp.error[:2000]
            return s.execute(sa.delete(ChunkRow).where(ChunkRow.version_id == row.id)).rowcount

    @activity.defn(name="rag.remove")
    def remove(self, inp: RemoveInput) -> int:
        """A deleted file: its chunks go (unless it came back meanwhile as a newer version)."""
        with self.gate.admit(f"removing {inp.path} from the index"), Session(self.engine) as s, s.begin():
            doc = s.scalar(sa.select(DocumentRow).where(DocumentRow.path == inp.path).with_for_update())
            if doc is None:
                return 0
            current = s.get(DocumentVersionRow, doc.current_version_id) if doc.current_version_id else None
            if current is not None and current.version > inp.version:
                return 0
            older = sa.select(DocumentVersionRow.id).where(DocumentVersionRow.document_id == doc.id,
                                                           DocumentVersionRow.version < inp.version)
            if current is not None:
                count_terms(s, current.id, -1)
            removed = s.execute(sa.delete(ChunkRow).where(ChunkRow.document_id == doc.id,
                                                          ChunkRow.version_id.in_(older))).rowcount
            if current is not None:
                current.status = "superseded"
            doc.current_version_id, doc.updated_at = None, sa.func.now()
            document_id = doc.id
        self._write_manifest(document_id, None)
        return removed

    def _write_manifest(self, document_id: int, manifest: dict | None) -> None:
        """rag/manifests/<document id>.json: what is indexed for a document (chunk ids and hashes)."""
        path = safe_path(f"rag/manifests/{document_id}.json")
        files = self.uploads.files
        decision = files.check(Actor.SYSTEM, Operation.WRITE, path.posix, self.uploads.policy, locked=False)
        if not decision.allowed:
            log.warning("manifest %s not written: %s", path.posix, decision.reason)
            return
        target = files.resolve(path).real
        with self.gate.admit(f"writing {path.posix}"):
            if manifest is None:
                target.unlink(missing_ok=True)
            else:
                atomic_write(target, json.dumps(manifest, indent=1).encode())

    def all(self) -> list:
        return [self.prepare, self.embed, self.commit, self.discard, self.remove]
