"""Normalisation before any rule runs: one canonical spelling of the text, and what was hidden in it.

NFKC (fullwidth and other compatibility forms), invisible and zero-width characters removed, Unicode tag
characters (U+E0000..E007F) removed and their smuggled ASCII decoded, Cyrillic/Greek look-alikes mapped to Latin.
`decoded_payloads` finds text hidden in base64, hex, URL-encoding, HTML entities and ROT13.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
import unicodedata
import urllib.parse

from pydantic import BaseModel

# Zero-width, bidi controls, soft hyphen, word joiner, BOM, Mongolian vowel separator, invisible operators...
_INVISIBLE = dict.fromkeys(
    [0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x3164, 0xFEFF, 0xFFA0]
    + list(range(0x200B, 0x2010)) + list(range(0x202A, 0x202F)) + list(range(0x2060, 0x2070))
    + list(range(0xFE00, 0xFE10)),
    None,
)
_ZWJ = "\u200d"
_TAG_RE = re.compile("[\U000e0000-\U000e007f]+")
_TAG_RUN = re.compile("[\U000e0020-\U000e007e]+")

# Look-alikes that NFKC keeps apart: Cyrillic and Greek letters drawn like Latin ones.
_HOMOGLYPHS = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
    "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ɡ": "g",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T", "Х": "X",
    "Ѕ": "S", "І": "I", "Ј": "J", "Ү": "Y", "ү": "y", "ԍ": "G",
    "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P",
    "Τ": "T", "Υ": "Y", "Χ": "X", "ℓ": "l", "ı": "i",
})
_CONFUSABLE = frozenset(k for k in map(chr, _HOMOGLYPHS))  # type: ignore[arg-type]
_WORD = re.compile(r"\w+")
_LATIN = re.compile(r"[A-Za-z]")
_CYR_GREEK = re.compile(r"[\u0370-\u03ff\u0400-\u052f]")

MAX_DECODE_INPUT = 65_536


class Normalized(BaseModel):
    text: str
    invisible: int = 0
    tag_text: str = ""
    homoglyphs: int = 0
    compat: int = 0


_INVISIBLE_NO_ZWJ = {k: v for k, v in _INVISIBLE.items() if k != 0x200D}
# A zero-width joiner between two emoji is how emoji sequences are written: keep those, drop the others.
_LONE_ZWJ = re.compile(r"(?<![\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F])\u200d|\u200d(?![\U0001F000-\U0001FAFF\u2600-\u27BF])")


def _strip_invisible(text: str) -> tuple[str, int]:
    out = text.translate(_INVISIBLE_NO_ZWJ)
    if _ZWJ in out:
        out = _LONE_ZWJ.sub("", out)
    return out, len(text) - len(out)


def _fold_homoglyphs(text: str) -> tuple[str, int]:
    latin = len(_LATIN.findall(text))
    other = len(_CYR_GREEK.findall(text))
    if other == 0:
        return text, 0
    mostly_latin = latin >= other

    def fold(m: re.Match[str]) -> str:
        word = m.group(0)
        has_latin = bool(_LATIN.search(word))
        if (has_latin or mostly_latin) and any(c in _CONFUSABLE for c in word):
            return word.translate(_HOMOGLYPHS)
        return word

    folded = _WORD.sub(fold, text)
    changed = sum(1 for a, b in zip(text, folded) if a != b)
    return folded, changed


def normalize(text: str) -> Normalized:
    tag_text = ""
    tags = _TAG_RE.findall(text)
    if tags:
        # Tag characters mirror ASCII 0x20..0x7E; emoji flag subdivisions (e.g. "gbsct") are short and harmless.
        runs = [m.translate({c: c - 0xE0000 for c in range(0xE0020, 0xE007F)}) for m in _TAG_RUN.findall(text)]
        tag_text = " ".join(r for r in runs if not re.fullmatch(r"[a-z0-9]{2,7}", r))
        text = _TAG_RE.sub("", text)
    nfkc = unicodedata.normalize("NFKC", text)
    compat = sum(1 for a, b in zip(text, nfkc) if a != b) if len(nfkc) == len(text) else abs(len(nfkc) - len(text))
    stripped, invisible = _strip_invisible(nfkc)
    folded, homoglyphs = _fold_homoglyphs(stripped)
    return Normalized(text=folded, invisible=invisible, tag_text=tag_text, homoglyphs=homoglyphs, compat=compat)


def _printable(s: str) -> bool:
    if len(s) < 4:
        return False
    good = sum(1 for c in s if c.isprintable() or c in "\n\r\t")
    letters = sum(1 for c in s if c.isalpha())
    return good / len(s) >= 0.95 and letters / len(s) >= 0.3


_B64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{8,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX_ESC = re.compile(r"(?:\\x[0-9a-fA-F]{2}){4,}")
_HEX = re.compile(r"\b(?:0x)?((?:[0-9a-fA-F]{2}){6,}|(?:[0-9a-fA-F]{2}[ :]){5,}[0-9a-fA-F]{2})\b")
_TOKEN = re.compile(r"\S+")
_PCT = re.compile(r"%[0-9a-fA-F]{2}")
_ENTITY = re.compile(r"(?:&#x?[0-9a-fA-F]+;){3,}")
_UNI_ESC = re.compile(r"(?:\\u[0-9a-fA-F]{4}){3,}")


def _b64(token: str) -> str | None:
    if token.isalpha() and (token.islower() or token.isupper()):
        return None  # plain words
    if not (re.search(r"[0-9+/=]", token) or re.search(r"[a-z]", token) and re.search(r"[A-Z]", token)):
        return None
    padded = token + "=" * (-len(token) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        out = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return out if _printable(out) else None


# A run of decimal digits only is read as hex from this length on (12 bytes). Shorter ones are numbers people write
# (phone, order, account and card numbers: up to 19 digits), and as hex they decode to a few bytes of noise
# ("hello 414921223136" -> 'AI!"16') that the learned layer once scored as an injection and blocked.
_DIGITS_ONLY_HEX_MIN = 24


def _hex(token: str) -> str | None:
    digits = re.sub(r"[^0-9a-fA-F]", "", token)
    if len(digits) % 2 or not re.search(r"[a-fA-F]", digits) and len(digits) < _DIGITS_ONLY_HEX_MIN:
        return None
    try:
        out = bytes.fromhex(digits).decode("utf-8")
    except ValueError:
        return None
    return out if _printable(out) else None


def rot13(text: str) -> str:
    return codecs.encode(text, "rot13")


def decoded_payloads(text: str, depth: int = 2) -> list[tuple[str, str]]:
    """(encoding, decoded text) for each embedded encoded run that decodes to readable text; nested up to `depth`."""
    text = text[:MAX_DECODE_INPUT]
    found: list[tuple[str, str]] = []
    for m in _B64.finditer(text):
        if (out := _b64(m.group(0))) is not None:
            found.append(("base64", out))
    for m in _HEX_ESC.finditer(text):
        if (out := _hex(m.group(0))) is not None:
            found.append(("hex", out))
    for m in _HEX.finditer(text):
        if (out := _hex(m.group(1))) is not None:
            found.append(("hex", out))
    if "%" in text:
        for m in _TOKEN.finditer(text):
            tok = m.group(0)
            if len(_PCT.findall(tok)) >= 2:
                out = urllib.parse.unquote(tok)
                if _printable(out):
                    found.append(("url", out))
    for m in _ENTITY.finditer(text):
        out = html.unescape(m.group(0))
        if _printable(out):
            found.append(("html_entities", out))
    for m in _UNI_ESC.finditer(text):
        try:
            out = m.group(0).encode().decode("unicode_escape")
        except UnicodeDecodeError:
            continue
        if _printable(out):
            found.append(("unicode_escape", out))
    if depth > 1:
        for enc, out in list(found):
            for enc2, out2 in decoded_payloads(out, depth - 1):
                found.append((f"{enc}+{enc2}", out2))
    return found[:32]


_LEET = str.maketrans({"4": "a", "@": "a", "3": "e", "1": "i", "!": "i", "0": "o", "5": "s", "$": "s", "7": "t",
                       "|": "l"})
_LEETY = re.compile(r"[a-z][013457@$!][a-z]|[013457][a-z]{2}", re.I)
_SEP = re.compile(r"(?<=\w)[.\-_*·](?=\w)")
_COMMON = re.compile(r"\b(?:the|and|you|your|all|to|of|is|ignore|instructions|previous|system|prompt|rules|"
                     r"print|reveal|now|me|a|in|for|this|that|with)\b", re.I)


def common_words(s: str) -> int:
    return len(_COMMON.findall(s))


def _unspaced(text: str) -> str | None:
    """Letters spelled apart ("i g n o r e", "i.g.n.o.r.e", "i-g-n-o-r-e") joined back into words; None if the text
    is not written that way."""
    tokens = text.split()
    if len(tokens) >= 4 and sum(len(t) == 1 for t in tokens) >= 0.7 * len(tokens):
        words = re.split(r"\s{2,}|\s/\s", text.strip())
        if len(words) == 1:
            return re.sub(r"\s", "", text)
        return " ".join(re.sub(r"\s", "", w) for w in words)
    singles = re.findall(r"\b\w(?:[.\-_*·]\w\b){2,}", text)
    if singles and sum(len(x) for x in singles) >= 0.5 * len(text.replace(" ", "")):
        return _SEP.sub("", text)
    return None


def deobfuscated(text: str) -> list[tuple[str, str]]:
    """Plain-text readings of a text written to dodge filters: leetspeak undone, letters spelled apart joined, reversed
    text turned round. Each as (how, text); none when the text is not written that way."""
    out = []
    if _LEETY.search(text):
        out.append(("leetspeak", text.translate(_LEET)))
    joined = _unspaced(text)
    if joined is not None:
        out.append(("spaced letters", joined))
    rev = text[::-1]
    if common_words(rev) > common_words(text) + 1:
        out.append(("reversed text", rev))
    return out
