"""Chunkers: split a document into passages small enough to embed, along its own structure.

Pure and deterministic: the same text always gives the same chunks (ingestion re-chunks a stored version by
its content hash instead of carrying chunk text through workflow history).

- text: sections by underlined (reStructuredText-style) headings when there are any, then paragraphs (blank
  lines) packed up to `max_chars`; an overlong paragraph by sentences, then hard.
- Markdown: sections by ATX headings (not inside code fences); each chunk carries its heading path.
- Every chunk of a section carries its heading path (`section`) and, when it does not hold it itself, the first
  sentence of its section (or of the nearest enclosing one: `lead`); both are embedded and indexed with the
  text, so a passage from the middle of a long section still says what it is about.
- Python: top-level definitions via `ast` (classes split by method when large); module code between them
  grouped; a file that does not parse falls back to blocks.
- other source code: blocks that end where brace depth returns to zero at a blank line.
- PDF: the text of each page (extracted by the caller), chunked as text, with its page number.
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

Kind = Literal["text", "markdown", "python", "code", "pdf"]

MAX_CHARS = 1200
MIN_CHARS = 200  # pieces smaller than this are merged with their neighbour when they fit


class Chunk(BaseModel):
    model_config = ConfigDict(frozen=True)

    position: int  # 0-based order in the document
    text: str
    start_line: int  # 1-based, inclusive (of the page for PDFs)
    end_line: int
    section: str | None = None  # heading path, definition name
    page: int | None = None  # 1-based, PDFs only
    lead: str | None = None  # the first sentence of its section, when the chunk does not contain it


    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def embed_text(self) -> str:
        """What is embedded: the heading path (when the text does not already start with it) and the lead."""
        head = []
        if self.section and not self.text.lstrip("# ").startswith(self.section.rsplit(" > ", 1)[-1]):
            head.append(self.section)
        if self.lead:
            head.append(self.lead)
        return "\n".join([*head, self.text])


class _Piece(BaseModel):
    """A span of lines before packing."""

    text: str
    start: int
    end: int
    section: str | None = None
    leads: tuple[str, ...] = ()  # first sentences of the sections on its path, outermost first


def chunk(kind: Kind, text: str = "", pages: Sequence[str] = (), max_chars: int = MAX_CHARS) -> list[Chunk]:
    if kind == "pdf":
        return chunk_pdf(pages, max_chars)
    splitter = {"text": _text_pieces, "markdown": _markdown_pieces, "python": _python_pieces,
                "code": _code_pieces}[kind]
    return _number(_pack(splitter(text, max_chars), max_chars))


def chunk_pdf(pages: Sequence[str], max_chars: int = MAX_CHARS) -> list[Chunk]:
    out: list[Chunk] = []
    for number, page in enumerate(pages, start=1):
        for c in _pack(_text_pieces(page, max_chars), max_chars):
            out.append(Chunk(position=0, text=c.text, start_line=c.start, end_line=c.end, page=number))
    return [c.model_copy(update={"position": i}) for i, c in enumerate(out)]


def _number(pieces: Iterable[_Piece]) -> list[Chunk]:
    return [Chunk(position=i, text=p.text, start_line=p.start, end_line=p.end, section=p.section,
                  lead=_lead_for(p)) for i, p in enumerate(pieces)]


MAX_LEAD_CHARS = 240
_NOT_A_LEAD = re.compile(r"^(?:(?:New|Changed|Added|Deprecated|Removed) in version|Note:|See also|Warning:|"
                         r"Example|For example)", re.IGNORECASE)


def _lead_for(piece: _Piece) -> str | None:
    """The first sentence of the innermost section on the piece's path that the piece does not already hold."""
    flat = " ".join(piece.text.split())
    for lead in reversed(piece.leads):
        if lead and lead not in flat:
            return lead
    return None


def first_sentence(text: str) -> str | None:
    """The first sentence of a paragraph of prose (None for tables, code and lists of symbols)."""
    flat = " ".join(text.split())
    if not flat or flat[0] in "|+`>" or flat.startswith(("::", "...", ">>>")):
        return None
    sentence = _SENTENCE.split(flat, maxsplit=1)[0]
    if _NOT_A_LEAD.match(sentence):
        return None
    if len(sentence) > MAX_LEAD_CHARS:
        cut = sentence.rfind(" ", 0, MAX_LEAD_CHARS)
        sentence = sentence[:cut if cut > 0 else MAX_LEAD_CHARS] + " ..."
    return sentence if sum(ch.isalpha() for ch in sentence) >= 12 else None


def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _blocks(lines: Sequence[str], offset: int = 1, section: str | None = None) -> list[_Piece]:
    """Runs of non-blank lines (paragraphs)."""
    out: list[_Piece] = []
    start = None
    for i, line in enumerate([*lines, ""]):
        if line.strip():
            if start is None:
                start = i
        elif start is not None:
            out.append(_Piece(text="\n".join(lines[start:i]), start=offset + start, end=offset + i - 1,
                              section=section))
            start = None
    return out


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=\S)")


def _split_long(piece: _Piece, max_chars: int) -> list[_Piece]:
    """A piece over the limit: by lines, then sentences, then hard cuts; line numbers kept approximately."""
    if len(piece.text) <= max_chars:
        return [piece]
    out: list[_Piece] = []
    lines = piece.text.split("\n")
    if len(lines) > 1:
        buf: list[str] = []
        start = piece.start
        for i, line in enumerate(lines):
            if buf and len("\n".join([*buf, line])) > max_chars:
                out.extend(_split_long(piece.model_copy(update={"text": "\n".join(buf), "start": start,
                                                                "end": piece.start + i - 1}), max_chars))
                buf, start = [], piece.start + i
            buf.append(line)
        if buf:
            out.extend(_split_long(piece.model_copy(update={"text": "\n".join(buf), "start": start}), max_chars))
        return out
    sentences = _SENTENCE.split(piece.text)
    buf_s = ""
    for s in sentences:
        while len(s) > max_chars:  # one enormous "sentence": cut at a space near the limit when there is one
            cut = s.rfind(" ", max_chars // 2, max_chars)
            cut = cut if cut > 0 else max_chars
            if buf_s:
                out.append(piece.model_copy(update={"text": buf_s}))
                buf_s = ""
            out.append(piece.model_copy(update={"text": s[:cut].rstrip()}))
            s = s[cut:].lstrip()
        if buf_s and len(buf_s) + 1 + len(s) > max_chars:
            out.append(piece.model_copy(update={"text": buf_s}))
            buf_s = ""
        buf_s = f"{buf_s} {s}" if buf_s else s
    if buf_s:
        out.append(piece.model_copy(update={"text": buf_s}))
    return [p for p in out if p.text.strip()]


def _pack(pieces: Iterable[_Piece], max_chars: int) -> list[_Piece]:
    """Merge consecutive small pieces of the same section up to `max_chars`; split the ones over it."""
    out: list[_Piece] = []
    for piece in pieces:
        for p in _split_long(piece, max_chars):
            last = out[-1] if out else None
            if (last is not None and last.section == p.section
                    and len(last.text) + 2 + len(p.text) <= max_chars
                    and (len(last.text) < MIN_CHARS or len(p.text) < MIN_CHARS or len(last.text) + len(p.text)
                         <= max_chars * 3 // 4)):
                out[-1] = _Piece(text=f"{last.text}\n\n{p.text}", start=last.start, end=p.end, section=p.section,
                                 leads=p.leads)
            else:
                out.append(p)
    return out


_UNDERLINE = re.compile(r"^([=\-~*^#+\"'`:.])\1{2,}\s*$")


def _underlined(lines: Sequence[str], i: int) -> str | None:
    """The underline character when line i is a heading underlined by line i + 1 (reStructuredText style)."""
    if i + 1 >= len(lines):
        return None
    title, under = lines[i].strip(), lines[i + 1].rstrip()
    m = _UNDERLINE.match(under.strip())
    if not m or not title or title[0] in "|+" or _UNDERLINE.match(title) or lines[i + 1][:1].isspace():
        return None
    if len(under.strip()) < max(3, len(title) * 2 // 3) or len(title) > 120:
        return None
    if i > 0 and lines[i - 1].strip():  # inside a paragraph: a line of dashes there is a rule, not a heading
        return None
    return m.group(1)


def _text_pieces(text: str, max_chars: int) -> list[_Piece]:
    """Paragraphs; under underlined headings (as in reStructuredText and Sphinx text output) by section."""
    lines = _lines(text)
    heads = [(i, c) for i in range(len(lines)) if (c := _underlined(lines, i))]
    if not heads:
        return _with_leads(_blocks(lines))
    out: list[_Piece] = []
    levels: list[str] = []  # underline characters in order of first use: the heading levels
    path: list[tuple[int, str, str | None]] = []  # (level, title, first sentence)
    out += _blocks(lines[:heads[0][0]])  # text before the first heading
    for n, (i, char) in enumerate(heads):
        if char not in levels:
            levels.append(char)
        level = levels.index(char)
        end = heads[n + 1][0] if n + 1 < len(heads) else len(lines)
        body = _blocks(lines[i + 2:end], offset=i + 3)
        lead = next((s for b in body if (s := first_sentence(b.text))), None)
        path = [p for p in path if p[0] < level] + [(level, lines[i].strip(), lead)]
        section = " > ".join(t for _, t, _ in path)
        leads = tuple(s for _, _, s in path if s)
        out += [b.model_copy(update={"section": section, "leads": leads}) for b in body]
    return out


def _with_leads(pieces: list[_Piece]) -> list[_Piece]:
    """Pieces of one section: each carries the section's first sentence."""
    lead = next((s for p in pieces if (s := first_sentence(p.text))), None)
    return [p.model_copy(update={"leads": (lead,)}) for p in pieces] if lead else pieces


_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def _markdown_pieces(text: str, max_chars: int) -> list[_Piece]:
    lines = _lines(text)
    out: list[_Piece] = []
    path: list[tuple[int, str]] = []
    leads: dict[tuple[tuple[int, str], ...], str | None] = {}  # a section's first sentence, by heading path
    section_start = 0
    fence: str | None = None

    def flush(end: int) -> None:
        section = " > ".join(t for _, t in path) or None
        body = lines[section_start:end]
        pieces = _blocks(body, offset=section_start + 1, section=section)
        prose = [p for p in pieces if not _HEADING.match(p.text.split("\n", 1)[0])] or pieces
        leads[tuple(path)] = next((s for p in prose if (s := first_sentence(_strip_heading(p.text)))), None)
        on_path = tuple(s for n in range(1, len(path) + 1) if (s := leads.get(tuple(path[:n]))))
        pieces = [p.model_copy(update={"leads": on_path}) for p in pieces]
        if pieces and path and _HEADING.match(lines[section_start]):
            # keep the heading line with the first paragraph of its section
            heading, *rest = pieces
            if rest and heading.end == heading.start:  # a lone heading line: the section name carries it
                if len(heading.text) + len(rest[0].text) + 2 <= max_chars:
                    rest[0] = _Piece(text=f"{heading.text}\n\n{rest[0].text}", start=heading.start,
                                     end=rest[0].end, section=section, leads=rest[0].leads)
                pieces = rest
        out.extend(pieces)

    for i, line in enumerate(lines):
        if m := _FENCE.match(line):
            fence = None if fence == m.group(1) else (fence or m.group(1))
            continue
        if fence is not None:
            continue
        if m := _HEADING.match(line):
            flush(i)
            level, title = len(m.group(1)), m.group(2).strip()
            path = [(lvl, t) for lvl, t in path if lvl < level] + [(level, title)]
            section_start = i
    flush(len(lines))
    # A heading with no text of its own (followed directly by a subsection) names its subsections already.
    content = [p for p in out if not (p.start == p.end and _HEADING.match(p.text))]
    return content or out


def _strip_heading(text: str) -> str:
    first, _, rest = text.partition("\n")
    return rest if _HEADING.match(first) else text


def _python_pieces(text: str, max_chars: int) -> list[_Piece]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return _code_pieces(text, max_chars)
    lines = _lines(text)
    out: list[_Piece] = []
    pending: list[tuple[int, int]] = []  # module-level statements between definitions

    def span(node: ast.AST) -> tuple[int, int]:
        start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])
        return start, node.end_lineno or node.lineno

    def emit(start: int, end: int, section: str | None) -> None:
        body = "\n".join(lines[start - 1:end]).strip("\n")
        if body.strip():
            out.append(_Piece(text=body, start=start, end=end, section=section))

    def flush_pending() -> None:
        if pending:
            emit(pending[0][0], pending[-1][1], None)
            pending.clear()

    for node in tree.body:
        start, end = span(node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            flush_pending()
            kind = "class" if isinstance(node, ast.ClassDef) else "def"
            name = f"{kind} {node.name}"
            size = len("\n".join(lines[start - 1:end]))
            if isinstance(node, ast.ClassDef) and size > max_chars:
                methods = [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
                cursor = start
                for m in methods:
                    m_start, m_end = span(m)
                    if m_start > cursor:
                        emit(cursor, m_start - 1, name)
                    emit(m_start, m_end, f"{name}.{m.name}")
                    cursor = m_end + 1
                if cursor <= end:
                    emit(cursor, end, name)
            else:
                emit(start, end, name)
        else:
            pending.append((start, end))
    flush_pending()
    return out


_OPEN, _CLOSE = "{([", "})]"


def _code_pieces(text: str, max_chars: int) -> list[_Piece]:
    """Top-level blocks: a blank line ends a block only when brackets are balanced there."""
    lines = _lines(text)
    out: list[_Piece] = []
    depth = 0
    start: int | None = None
    for i, line in enumerate([*lines, ""]):
        if start is None and line.strip():
            start = i
        for ch in line:
            if ch in _OPEN:
                depth += 1
            elif ch in _CLOSE:
                depth = max(0, depth - 1)
        if start is not None and not line.strip() and depth == 0:
            out.append(_Piece(text="\n".join(lines[start:i]).rstrip(), start=start + 1, end=i))
            start = None
    if start is not None:
        out.append(_Piece(text="\n".join(lines[start:]).rstrip(), start=start + 1, end=len(lines)))
    return [p for p in out if p.text.strip()]
