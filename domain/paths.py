"""Requested paths: validated and normalised into platform-relative POSIX parts, or rejected with a reason.

Pure: no I/O. Symlinks are resolved against a real root by `activities.filesystem`. The rule is to reject,
never to repair: a path that needs decoding, stripping or case-folding to be understood is refused, so what
is checked is exactly what the filesystem will see. Only harmless spellings are normalised: `./`, repeated
and trailing slashes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Literal
from urllib.parse import unquote_to_bytes

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

Area = Literal["downloads", "uploads", "rag"]
Zone = Literal["downloads", "uploads", "uploads/.versions", "rag", "root"]
AREAS: tuple[Area, ...] = ("downloads", "uploads", "rag")
VERSIONS = ".versions"
MAX_SEGMENT_BYTES = 255
MAX_PATH_BYTES = 4096
MAX_DEPTH = 64

# Characters that give a path structure; no look-alike of them is accepted.
STRUCTURAL = frozenset("./\\:~%$")
# Look-alikes that NFKC leaves alone (NFKC already maps fullwidth forms, U+2024, U+FE52, ...).
CONFUSABLES: dict[str, str] = {
    **dict.fromkeys("\u3002\uff61\u06d4\u0701\u0702\u2e3c\ua4f8\ua60e\U00010a50\u2027\u22c5\u2219\u2e33", "."),
    **dict.fromkeys("\u2215\u2044\u29f8\u2571\u27cb\u1735\u3033\u2f03\u31d3\u0337\u0338\u20eb", "/"),
    **dict.fromkeys("\u2216\u29f5\u29f9\u27cd\u2572\u20e5\u3035", "\\"),
    **dict.fromkeys("\u2236\ua789\u02d0\u02f8\u0703\u0704\u16ec\u0589\u05c3\u1361\ufe13\ufe55", ":"),
    **dict.fromkeys("\u02dc\u223c\u2053\u301c\u1fc0\u2e1e\u2241", "~"),
    **dict.fromkeys("\u066a\u2052", "%"),
}
_LOOKALIKE_NAMES = ("FULL STOP", "SOLIDUS", "DOT LEADER", "FRACTION SLASH", "DIVISION SLASH", "COLON", "TILDE",
                    "PERCENT SIGN", "DOLLAR SIGN")
# Invisible characters that are letters or symbols by category (fillers, blanks, variation selectors).
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5")
_WINDOWS_DEVICES = frozenset({"con", "prn", "aux", "nul", "conin$", "conout$", "clock$",
                              *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10)),
                              "com\u00b9", "com\u00b2", "com\u00b3", "lpt\u00b9", "lpt\u00b2", "lpt\u00b3"})
_PERCENT = re.compile(r"%(?:[0-9A-Fa-f]{2}|[uU][0-9A-Fa-f]{4})")
_PERCENT_VAR = re.compile(r"%[A-Za-z_][A-Za-z0-9_()]*%")
_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9A-Fa-f]+|period|sol|bsol|colon|tilde|Tilde|dollar|percnt);")
_SHELL_VAR = re.compile(r"\$(?:[A-Za-z_{(\[0-9#?*@!$-]|$)")
_DRIVE = re.compile(r"^[A-Za-z]:")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


class UnsafePath(ValueError):
    """A path refused before it reaches the filesystem; `code` is stable, `reason` is for people."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class PathRejection(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    reason: str


def zone_of(parts: Sequence[str]) -> Zone:
    """Which protected region a relative path lies in (names compared case-insensitively, as some disks do)."""
    if not parts:
        return "root"
    first = parts[0].casefold()
    if first == "uploads" and len(parts) > 1 and parts[1].casefold() == VERSIONS:
        return "uploads/.versions"
    return first if first in AREAS else "root"  # type: ignore[return-value]


class SafePath(BaseModel):
    """A validated platform-relative path: one or more names, no `.`/`..`, nothing that needs decoding."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    parts: tuple[str, ...] = Field(min_length=1, max_length=MAX_DEPTH)

    @field_validator("parts")
    @classmethod
    def _revalidate(cls, parts: tuple[str, ...]) -> tuple[str, ...]:
        if any("/" in p for p in parts) or split_safe("/".join(parts)) != parts:
            raise ValueError("parts must be plain names")
        return parts

    @computed_field  # type: ignore[prop-decorator]
    @property
    def area(self) -> Area | None:
        return self.parts[0] if self.parts[0] in AREAS else None  # type: ignore[return-value]

    @property
    def zone(self) -> Zone:
        return zone_of(self.parts)

    @property
    def posix(self) -> str:
        return "/".join(self.parts)

    @property
    def is_area_root(self) -> bool:
        return len(self.parts) == 1 and self.area is not None

    def is_within(self, prefix: Sequence[str], *, strictly: bool = False) -> bool:
        n = len(prefix)
        return tuple(self.parts[:n]) == tuple(prefix) and (len(self.parts) > n or not strictly)

    def __str__(self) -> str:
        return self.posix


def parse_path(raw: object) -> SafePath | PathRejection:
    """The safe form of `raw`, or why it is refused. Never raises."""
    try:
        return SafePath(parts=split_safe(raw))
    except UnsafePath as e:
        return PathRejection(code=e.code, reason=e.reason)


def safe_path(raw: object) -> SafePath:
    """Like `parse_path`, raising `UnsafePath` on rejection."""
    return SafePath(parts=split_safe(raw))


def split_safe(raw: object) -> tuple[str, ...]:
    """The path's names after validation; raises `UnsafePath`."""
    if not isinstance(raw, str):
        raise UnsafePath("type", f"a path must be a string, not {type(raw).__name__}")
    if not raw.strip():
        raise UnsafePath("empty", "empty path")
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise UnsafePath("too_long", f"path longer than {MAX_PATH_BYTES} bytes")
    _check_characters(raw)
    _check_syntax(raw)
    parts = tuple(p for p in raw.split("/") if p not in ("", "."))
    if not parts:
        raise UnsafePath("root", "the path names the platform root itself")
    if len(parts) > MAX_DEPTH:
        raise UnsafePath("too_deep", f"path deeper than {MAX_DEPTH} levels")
    for i, part in enumerate(parts):
        _check_segment(part, i, parts)
    return parts


def _char(ch: str) -> str:
    return f"U+{ord(ch):04X}" + (f" {unicodedata.name(ch)}" if unicodedata.name(ch, "") else "")


def _check_characters(raw: str) -> None:
    for i, ch in enumerate(raw):
        cat = unicodedata.category(ch)
        if ch == "\x00":
            raise UnsafePath("control", f"NUL character at position {i}")
        if cat in ("Cc", "Zl", "Zp"):
            raise UnsafePath("control", f"control character {_char(ch)} at position {i}")
        if cat == "Cs":
            raise UnsafePath("encoding", f"undecodable byte (lone surrogate {_char(ch)}) at position {i}")
        if cat == "Cf" or ch in _INVISIBLE or 0xFE00 <= ord(ch) <= 0xFE0F or 0xE0100 <= ord(ch) <= 0xE01EF:
            raise UnsafePath("invisible", f"invisible or bidi formatting character {_char(ch)} at position {i} "
                                          "(rejected, not stripped)")
        if cat in ("Co", "Cn"):
            raise UnsafePath("unassigned", f"private-use or unassigned character {_char(ch)} at position {i}")
        if cat == "Zs" and ch != " ":
            raise UnsafePath("whitespace", f"unusual space {_char(ch)} at position {i}")
        if ord(ch) < 128:
            continue
        if cat.startswith("M") and (i == 0 or raw[i - 1] in STRUCTURAL or raw[i - 1] == " "):
            raise UnsafePath("lookalike", f"combining mark {_char(ch)} on {raw[i - 1:i] or 'nothing'!r}")
        folded = CONFUSABLES.get(ch) or unicodedata.normalize("NFKC", ch)
        named = cat[0] in "PS" and any(k in unicodedata.name(ch, "") for k in _LOOKALIKE_NAMES)
        if named or STRUCTURAL.intersection(folded):
            raise UnsafePath("lookalike", f"look-alike character {_char(ch)} at position {i} "
                                          f"(reads as {folded!r})")
    # Safety net: normalisation must not create structure that the raw text does not have.
    folded = unicodedata.normalize("NFKC", "".join(CONFUSABLES.get(c, c) for c in raw))
    if [c for c in folded if c in STRUCTURAL] != [c for c in raw if c in STRUCTURAL]:
        raise UnsafePath("lookalike", "look-alike characters change the path's structure after NFKC")


def _check_syntax(raw: str) -> None:
    if "\\" in raw:
        raise UnsafePath("backslash", "backslash in path (use '/'; '\\' is a separator on Windows)")
    if m := _PERCENT.search(raw):
        decoded = _percent_decode(raw)
        raise UnsafePath("encoded", f"percent-encoded sequence {m.group()!r} (paths are not URLs; "
                                    f"decodes to {decoded!r})")
    if m := _PERCENT_VAR.search(raw):
        raise UnsafePath("variable", f"environment variable {m.group()!r}")
    if m := _ENTITY.search(raw):
        raise UnsafePath("encoded", f"character reference {m.group()!r}")
    if m := _SHELL_VAR.search(raw):
        raise UnsafePath("variable", f"shell variable or substitution at {m.group()!r}")
    if "`" in raw:
        raise UnsafePath("variable", "backtick command substitution")
    if _DRIVE.match(raw):
        raise UnsafePath("absolute", f"Windows drive path {raw[:2]!r}")
    if _SCHEME.match(raw):
        raise UnsafePath("scheme", f"URI scheme {raw[:raw.index(':') + 1]!r}")
    if ":" in raw:
        raise UnsafePath("colon", "':' in path (drive, device or alternate data stream syntax)")
    if raw.startswith("//"):
        raise UnsafePath("absolute", "network (UNC) path")
    if raw.startswith("/"):
        raise UnsafePath("absolute", "absolute path (paths are relative to the platform root)")
    if raw.startswith("~") or "/~" in raw:
        raise UnsafePath("home", "'~' home-directory expansion")


def _percent_decode(raw: str, rounds: int = 3) -> str:
    text = raw
    for _ in range(rounds):
        decoded = unquote_to_bytes(text).decode("utf-8", "backslashreplace")
        if decoded == text:
            break
        text = decoded
    return text


def _check_segment(part: str, index: int, parts: tuple[str, ...]) -> None:
    if part == "..":
        raise UnsafePath("traversal", "'..' (parent directory) segment")
    if set(part) == {"."}:
        raise UnsafePath("traversal", f"dot-only segment {part!r}")
    if part != part.strip() or part.endswith("."):
        raise UnsafePath("windows", f"segment {part!r} starts or ends with a space or ends with a dot "
                                    "(Windows drops them)")
    if len(part.encode("utf-8")) > MAX_SEGMENT_BYTES:
        raise UnsafePath("too_long", f"name longer than {MAX_SEGMENT_BYTES} bytes")
    if part.split(".")[0].rstrip().casefold() in _WINDOWS_DEVICES:
        raise UnsafePath("windows", f"Windows device name {part!r}")
    folded = unicodedata.normalize("NFKC", part).casefold()
    if index == 0 and folded in AREAS and part not in AREAS:
        raise UnsafePath("reserved", f"{part!r} is a variant spelling of the platform folder {folded!r}")
    if folded == VERSIONS and part != VERSIONS:
        raise UnsafePath("reserved", f"{part!r} is a variant spelling of {VERSIONS!r}")
