"""From stored bytes to chunks: decode text or extract PDF pages, then the pure chunkers (domain/chunking)."""

from __future__ import annotations

import io
import logging

from domain.chunking import MAX_CHARS, Chunk, Kind, chunk
from domain.rag import BadUpload, decode_text


def pdf_pages(name: str, data: bytes) -> list[str]:
    """Each page's text (pypdf); raises BadUpload for a corrupt PDF or one without extractable text."""
    if not data[:1024].lstrip().startswith(b"%PDF-"):
        raise BadUpload("corrupt", f"{name} is not a PDF (no %PDF- header)")
    import pypdf

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise BadUpload("corrupt", f"{name} is an encrypted PDF")
        pages = [(page.extract_text() or "") for page in reader.pages]
    except BadUpload:
        raise
    except Exception as e:  # noqa: BLE001 - pypdf raises many types for malformed files
        raise BadUpload("corrupt", f"{name}: cannot read the PDF ({type(e).__name__}: {e})") from None
    if not any(p.strip() for p in pages):
        raise BadUpload("no_text", f"{name} has no extractable text (a scanned PDF needs OCR first)")
    return pages


def chunks_of(name: str, kind: Kind, data: bytes, max_chars: int = MAX_CHARS) -> list[Chunk]:
    """All chunks of a file's content; raises BadUpload when there is nothing to index."""
    if kind == "pdf":
        out = chunk("pdf", pages=pdf_pages(name, data), max_chars=max_chars)
    else:
        out = chunk(kind, decode_text(name, data), max_chars=max_chars)
    if not out:
        raise BadUpload("empty", f"{name} has no text to index")
    return out
