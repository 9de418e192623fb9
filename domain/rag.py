"""Documents, versions, ingestion, search and context: the contracts (durable: add optional fields only).

Pure: no I/O. Workflows carry ids and content hashes, never document text or embeddings; search results and
retrieved context do carry chunk text (small: k passages).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.chunking import Kind

SHA256 = r"^[0-9a-f]{64}$"
MAX_K = 100
MAX_QUERY_CHARS = 2000
DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024

EXTENSIONS: dict[str, Kind] = {
    **dict.fromkeys((".txt", ".text", ".rst", ".log", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml",
                     ".toml", ".ini", ".cfg", ".xml", ".html", ".htm", ".tex"), "text"),
    **dict.fromkeys((".md", ".markdown", ".mdown", ".mkd"), "markdown"),
    ".py": "python", ".pyi": "python",
    **dict.fromkeys((".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".go", ".rs", ".java", ".kt", ".kts", ".scala",
                     ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".cs", ".swift", ".rb", ".php", ".sh",
                     ".bash", ".zsh", ".sql", ".lua", ".pl", ".r", ".dart", ".css", ".scss", ".vue"), "code"),
    ".pdf": "pdf",
}
# Files without an extension that are text by convention.
PLAIN_NAMES = frozenset({"readme", "license", "copying", "changelog", "makefile", "dockerfile", "notes", "todo"})


class BadUpload(ValueError):
    """Content that cannot be indexed; `code` is stable: empty, too_large, unsupported, binary, undecodable,
    no_text, corrupt."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def kind_for(name: str) -> Kind:
    """The chunker for a file name; raises BadUpload(unsupported)."""
    base = name.rsplit("/", 1)[-1]
    dot = base.rfind(".")
    ext = base[dot:].lower() if dot > 0 else ""
    if ext in EXTENSIONS:
        return EXTENSIONS[ext]
    if not ext and base.lower() in PLAIN_NAMES:
        return "text"
    known = ", ".join(sorted({".txt", ".md", ".py", ".js", ".go", ".rs", ".pdf", "..."}))
    raise BadUpload("unsupported", f"{base}: unsupported file type {ext or '(no extension)'!r} "
                                   f"(text, Markdown, source code and PDF are indexed: {known})")


def check_size(name: str, size: int, max_bytes: int) -> None:
    if size == 0:
        raise BadUpload("empty", f"{name} is empty")
    if size > max_bytes:
        raise BadUpload("too_large", f"{name} is {size:,} bytes, over the limit of {max_bytes:,} bytes "
                                     "(HYBRID_MAX_UPLOAD_BYTES)")


def decode_text(name: str, data: bytes) -> str:
    """UTF-8 text (a BOM is dropped); raises BadUpload for binary content, bad encodings and blank files."""
    if b"\x00" in data[:65536] or b"\x00" in data:
        raise BadUpload("binary", f"{name} looks binary (contains NUL bytes), not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BadUpload("undecodable", f"{name} is not valid UTF-8 ({e.reason} at byte {e.start}); "
                                       "convert it to UTF-8 first") from None
    controls = sum(1 for ch in text[:65536] if ord(ch) < 32 and ch not in "\n\r\t\f\v")
    if controls > max(8, len(text[:65536]) // 100):
        raise BadUpload("binary", f"{name} looks binary ({controls} control characters), not text")
    if not text.strip():
        raise BadUpload("empty", f"{name} has no text (only whitespace)")
    return text


# ---------------------------------------------------------------------------------------------- uploads
Source = Literal["upload", "watch", "restore", "deleted"]
Status = Literal["stored", "indexing", "indexed", "failed", "superseded", "deleted"]


class UploadReceipt(BaseModel):
    """A stored upload: which version of which path, by content hash."""

    path: str  # platform-relative, e.g. uploads/notes.md
    version: int
    sha256: str | None  # None: the file was deleted
    size: int
    kind: Kind | None = None
    created: bool  # False: same content as the latest version, nothing new stored


class VersionInfo(BaseModel):
    version: int
    sha256: str | None
    size: int
    kind: str | None
    source: str
    status: str
    chunks: int | None
    error: str | None = None
    created_at: datetime
    current: bool  # the version search answers from


class FileHistory(BaseModel):
    path: str
    versions: list[VersionInfo]


# ---------------------------------------------------------------------------------------------- ingestion
class IngestInput(BaseModel):
    """Index `version` of `path` (content `sha256`), or remove the path's chunks when `sha256` is None."""

    model_config = ConfigDict(extra="forbid")

    path: str
    version: int = Field(ge=1)
    sha256: str | None = Field(default=None, pattern=SHA256)
    batch_size: int = Field(default=256, ge=1, le=4096, description="Chunks embedded per activity.")


class PrepareResult(BaseModel):
    document_id: int
    version_id: int
    action: Literal["index", "unchanged", "superseded"]
    chunks: int = 0


class EmbedBatch(BaseModel):
    version_id: int
    sha256: str = Field(pattern=SHA256)
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class CommitInput(BaseModel):
    document_id: int
    version_id: int


class CommitResult(BaseModel):
    action: Literal["indexed", "superseded"]
    chunks: int
    removed: int  # chunks of earlier versions deleted in the same transaction


class RemoveInput(BaseModel):
    path: str
    version: int


class IngestProgress(BaseModel):
    path: str = ""
    version: int = 0
    stage: Literal["queued", "preparing", "embedding", "committing", "removing", "done", "failed", "paused"] = "queued"
    done: int = 0
    total: int = 0


class IngestResult(BaseModel):
    path: str
    version: int
    sha256: str | None
    action: Literal["indexed", "unchanged", "superseded", "removed"]
    chunks: int
    removed: int = 0


def ingest_workflow_id(path: str, version: int) -> str:
    """One ingestion per (path, version): a repeated start finds the same workflow."""
    return f"ingest-{hashlib.sha256(path.encode()).hexdigest()[:20]}-v{version}"


# ---------------------------------------------------------------------------------------------- search
SearchMode = Literal["hybrid", "vector", "text"]


class SearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    k: int = Field(default=5, ge=1, le=MAX_K)
    mode: SearchMode = Field(default="hybrid", description="hybrid: meaning and words fused (RRF); vector: "
                                                           "meaning only; text: full-text only.")
    per_document: int | None = Field(default=None, ge=1, le=MAX_K,
                                     description="At most this many passages of one document (default: the "
                                                 "worker's HYBRID_RAG_PER_DOCUMENT).")


class Evidence(BaseModel):
    rule: str
    risk: str
    detail: str


class Finding(BaseModel):
    """What the guardrails found in a chunk at ingestion: it is kept, flagged, and left out of request context
    unless the operator allows flagged chunks (HYBRID_RAG_ALLOW_FLAGGED)."""

    risk: str
    rules: list[str]
    evidence: list[Evidence] = Field(default_factory=list)


FLAG_AT = "medium"  # a chunk whose scan reaches this risk is flagged
_RISKS = ("none", "low", "medium", "high", "critical")


def finding_of(verdict, flag_at: str = FLAG_AT) -> Finding | None:
    """The finding to record for a chunk's guardrails verdict (a domain.guardrails.Verdict), or None when the
    verdict stays below `flag_at`."""
    risk = str(getattr(verdict.risk, "value", verdict.risk))
    if _RISKS.index(risk) < _RISKS.index(flag_at):
        return None
    evidence = [Evidence(rule=h.rule, risk=str(getattr(h.risk, "value", h.risk)), detail=h.detail[:300])
                for h in verdict.hits if _RISKS.index(str(getattr(h.risk, "value", h.risk))) > 0][:10]
    return Finding(risk=risk, rules=list(verdict.rules)[:20], evidence=evidence)


class SearchHit(BaseModel):
    chunk_id: int
    chunk_sha256: str
    text: str
    score: float  # cosine similarity, higher is closer
    source: str  # the file, e.g. uploads/notes.md
    version: int
    version_sha256: str
    position: int  # chunk number in that version
    start_line: int
    end_line: int
    section: str | None = None
    page: int | None = None
    flagged: bool = False  # the guardrails found instructions in it at ingestion (see `finding`)
    finding: Finding | None = None
    vector_rank: int | None = None  # its rank among the nearest vectors (None: not among them)
    text_rank: int | None = None  # its rank in the full-text search (None: no match)
    similarity: float | None = None  # cosine similarity to the query

    def citation(self) -> str:
        where = f"p. {self.page}, " if self.page else ""
        return f"{self.source} v{self.version}, {where}lines {self.start_line}-{self.end_line}"


class SearchResults(BaseModel):
    query: str
    results: list[SearchHit]
    took_ms: float = 0.0


class RetrieveRequest(SearchQuery):
    """Chunks for a request's context (same as a search, plus the formatted context block). Flagged chunks are
    left out unless the worker's operator allows them (HYBRID_RAG_ALLOW_FLAGGED)."""


class RetrievedContext(BaseModel):
    query: str
    chunks: list[SearchHit]
    context: str  # numbered passages: "[1] uploads/a.md v2, lines 3-9\n<text>"
    chunk_ids: list[int]
    chunk_sha256s: list[str]
    withheld: int = 0  # flagged chunks that matched but were left out of the context


def format_context(hits: list[SearchHit]) -> str:
    if not hits:
        return ""
    parts = ["Sources (cite them by number, e.g. [1]):"]
    for i, h in enumerate(hits, start=1):
        parts.append(f"[{i}] {h.citation()}\n{h.text.strip()}")
    return "\n\n".join(parts)


def retrieved(query: str, hits: list[SearchHit], withheld: int = 0) -> RetrievedContext:
    return RetrievedContext(query=query, chunks=hits, context=format_context(hits),
                            chunk_ids=[h.chunk_id for h in hits], chunk_sha256s=[h.chunk_sha256 for h in hits],
                            withheld=withheld)


# ---------------------------------------------------------------------------------------------- context
ContextScope = Literal["global", "model"]
MODEL_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
CONTEXT_KEY = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$"
MAX_CONTEXT_CHARS = 256_000


class _Scoped(BaseModel):
    scope: ContextScope = "global"
    model_id: str | None = Field(default=None, pattern=MODEL_ID)

    @model_validator(mode="after")
    def _model_scope_needs_model(self):
        if (self.scope == "model") != (self.model_id is not None):
            raise ValueError("model_id is required for scope 'model' and not allowed for scope 'global'")
        return self


class ContextGet(_Scoped):
    """Global entries (system state, alerts, conversation history) or one model's (task, working memory);
    `key` None reads all of them."""

    model_config = ConfigDict(extra="forbid")

    key: str | None = Field(default=None, pattern=CONTEXT_KEY)


class ContextPut(_Scoped):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=CONTEXT_KEY)
    value: str = Field(max_length=MAX_CONTEXT_CHARS)
    updated_by: str | None = Field(default=None, max_length=200)


class ContextEntry(BaseModel):
    scope: ContextScope
    model_id: str | None = None
    key: str
    value: str
    updated_at: datetime
    updated_by: str | None = None


class ContextEntries(BaseModel):
    entries: list[ContextEntry]


def citations(context: RetrievedContext) -> list[dict]:
    """What a request's result says about the passages its model saw, numbered as in the context block."""
    return [{"n": i, "source": h.source, "version": h.version, "position": h.position, "chunk_id": h.chunk_id,
             "chunk_sha256": h.chunk_sha256, "score": round(h.score, 4), "cite": h.citation()}
            for i, h in enumerate(context.chunks, start=1)]
