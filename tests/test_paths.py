"""Requested paths: every spelling of traversal and escape is rejected; ordinary names pass unchanged."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from domain.paths import MAX_DEPTH, PathRejection, SafePath, UnsafePath, parse_path, safe_path, zone_of

# (attack, expected rejection code); at least one per spelling family.
ATTACKS: list[tuple[str, str]] = [
    # plain traversal
    ("..", "traversal"), ("../", "traversal"), ("../etc/passwd", "traversal"),
    ("../../../../etc/shadow", "traversal"), ("uploads/../../etc/passwd", "traversal"),
    ("downloads/../uploads/.versions/x", "traversal"), ("downloads/a/../../..", "traversal"),
    ("downloads/..", "traversal"), ("./../x", "traversal"), ("downloads/./../x", "traversal"),
    ("downloads/a/..", "traversal"), ("...", "traversal"), ("..../x", "traversal"), ("downloads/.../x", "traversal"),
    # URL-encoded, double-encoded, IIS %u, entities
    ("%2e%2e%2f", "encoded"), ("%2e%2e/etc/passwd", "encoded"), ("..%2fetc%2fpasswd", "encoded"),
    ("%2E%2E%2F%2E%2E%2Fetc", "encoded"), ("downloads/%2e%2e/x", "encoded"), ("..%5c..%5cwindows", "encoded"),
    ("%252e%252e%252f", "encoded"), ("%25252e%25252e", "encoded"), ("downloads%2f..%2f..%2fetc", "encoded"),
    ("%u002e%u002e%u2215etc", "encoded"), ("..%00/x", "encoded"), ("downloads/x%00.txt", "encoded"),
    ("&#46;&#46;/etc", "encoded"), ("&#x2e;&#x2e;&#x2f;etc", "encoded"), ("&period;&period;/etc", "encoded"),
    # overlong UTF-8
    ("%c0%ae%c0%ae/", "encoded"), ("%e0%80%ae%e0%80%ae/etc", "encoded"), ("%c0%af", "encoded"),
    ("..%c0%af..%c0%afetc", "encoded"), ("%c1%9c..", "encoded"), ("%f0%80%80%ae%f0%80%80%ae", "encoded"),
    # backslashes and Windows device paths
    ("..\\..\\windows\\win.ini", "backslash"), ("downloads\\..\\..\\x", "backslash"), ("..\\", "backslash"),
    ("downloads/..\\x", "backslash"), ("\\\\?\\C:\\x", "backslash"), ("\\\\server\\share", "backslash"),
    ("\\\\.\\pipe\\x", "backslash"), ("C:\\Windows\\System32", "backslash"),
    # fullwidth and look-alike dots and slashes
    ("\uff0e\uff0e/etc", "lookalike"), ("\uff0e\uff0e\uff0f\uff0e\uff0e\uff0fetc", "lookalike"),
    ("\u2024\u2024/x", "lookalike"), ("\ufe52\ufe52/x", "lookalike"), ("\u2025/x", "lookalike"),
    ("downloads\u2215..\u2215x", "lookalike"), ("..\u2044..\u2044etc", "lookalike"), ("..\uff0fetc", "lookalike"),
    ("\u3002\u3002/x", "lookalike"), ("..\u29f8x", "lookalike"), ("downloads/\u2026/x", "lookalike"),
    ("..\uff3cx", "lookalike"), ("\ufe68..", "lookalike"), ("downloads/.\u0338./x", "lookalike"),
    ("\ua4f8\ua4f8/x", "lookalike"), ("downloads/\u0701\u0701/x", "lookalike"), ("x\uff1a\uff0f\uff0fy", "lookalike"),
    # absolute
    ("/etc/passwd", "absolute"), ("/", "absolute"), ("//server/share/x", "absolute"), ("///etc/passwd", "absolute"),
    ("C:/Windows", "absolute"), ("c:", "absolute"), ("/work/root/downloads/x", "absolute"),
    # home
    ("~", "home"), ("~/x", "home"), ("~root/.ssh/id_rsa", "home"), ("downloads/~/x", "home"),
    ("\uff5e/x", "lookalike"),
    # variables and substitution
    ("$HOME/.ssh", "variable"), ("${HOME}/x", "variable"), ("downloads/$(id)", "variable"),
    ("%APPDATA%/x", "variable"), ("%USERPROFILE%", "variable"), ("`id`", "variable"), ("downloads/$X", "variable"),
    ("\uff04HOME/x", "lookalike"), ("downloads/x$", "variable"),
    # URI schemes
    ("file:///etc/passwd", "scheme"), ("file://localhost/etc/passwd", "scheme"), ("http://evil/x", "scheme"),
    ("https:x", "scheme"), ("data:text/plain,x", "scheme"), ("jar:file:x!/", "scheme"), ("smb://h/s", "scheme"),
    # NUL, control, DEL, C1, bidi, zero-width, tags, surrogates, private use
    ("downloads/x\x00.txt", "control"), ("\x00", "control"), ("downloads/\x01x", "control"),
    ("downloads/x\n../../etc", "control"), ("downloads/x\r", "control"), ("\t../x", "control"),
    ("downloads/x\x7f", "control"), ("downloads/x\x85", "control"), ("downloads/x\x9b", "control"),
    ("downloads/x\u2028y", "control"), ("downloads/\u202eexe.txt", "invisible"), ("downloads/\u200bx", "invisible"),
    ("\u200b../x", "invisible"), ("downloads/x\ufeff", "invisible"), ("downloads/\u2066x", "invisible"),
    ("downloads/x\u200d", "invisible"), ("downloads/\U000e0041x", "invisible"), ("downloads/\u3164x", "invisible"),
    ("downloads/x\ufe0f", "invisible"), ("downloads/\ud800x", "encoding"), ("downloads/\ue000x", "unassigned"),
    ("downloads/a\u00a0b", "whitespace"),
    # over-long
    ("downloads/" + "a" * 256, "too_long"), ("downloads/" + "\u00e9" * 128, "too_long"),
    ("/".join(["a"] * (MAX_DEPTH + 1)), "too_deep"), ("downloads/" + "x/" * 2100, "too_long"),
    # empty and the root itself
    ("", "empty"), ("   ", "empty"), (".", "root"), ("./", "root"), (".//.", "root"),
    # Windows tricks
    ("downloads/x.", "windows"), ("downloads/x ", "windows"), ("downloads/ x", "windows"),
    ("downloads/.. /x", "windows"), ("downloads/CON", "windows"), ("downloads/nul.txt", "windows"),
    ("downloads/com1", "windows"), ("downloads/x.txt::$DATA", "variable"), ("downloads/x.txt:stream", "colon"),
    ("uploads/.versions./x", "windows"),
    # variant spellings of the platform's own folders
    ("uploads/.VERSIONS/x", "reserved"), ("UPLOADS/x", "reserved"), ("Downloads/x", "reserved"),
    ("\uff44\uff4f\uff57\uff4e\uff4c\uff4f\uff41\uff44\uff53/x", "reserved"),
]


def test_the_attack_table_is_big_and_distinct():
    assert len({a for a, _ in ATTACKS}) == len(ATTACKS) >= 60


@pytest.mark.parametrize(("attack", "code"), ATTACKS, ids=[ascii(a)[:40] for a, _ in ATTACKS])
def test_attacks_are_rejected_with_a_reason(attack: str, code: str):
    result = parse_path(attack)
    assert isinstance(result, PathRejection), result
    assert result.code == code, result.reason
    assert result.reason
    with pytest.raises(UnsafePath):
        safe_path(attack)


LEGITIMATE: list[tuple[str, tuple[str, ...]]] = [
    ("uploads/a.txt", ("uploads", "a.txt")),
    ("./downloads//out/", ("downloads", "out")),
    ("downloads/out/x.txt", ("downloads", "out", "x.txt")),
    ("rag/manifest.json", ("rag", "manifest.json")),
    ("uploads/.versions/abc123", ("uploads", ".versions", "abc123")),
    ("uploads/report 2024 (final).pdf", ("uploads", "report 2024 (final).pdf")),
    ("uploads/Espa\u00f1a/\u00f1o\u00f1o.txt", ("uploads", "Espa\u00f1a", "\u00f1o\u00f1o.txt")),
    ("uploads/cafe\u0301.txt", ("uploads", "cafe\u0301.txt")),  # NFD, as macOS writes it: kept byte for byte
    ("uploads/\u65e5\u672c\u8a9e.md", ("uploads", "\u65e5\u672c\u8a9e.md")),
    ("downloads/.hidden", ("downloads", ".hidden")),
    ("downloads/a..b.txt", ("downloads", "a..b.txt")),
    ("downloads/backup~", ("downloads", "backup~")),
    ("downloads/100%.txt", ("downloads", "100%.txt")),
    ("downloads/l\u00b7l.txt", ("downloads", "l\u00b7l.txt")),
    ("downloads/R&D.txt", ("downloads", "R&D.txt")),
    ("notes.txt", ("notes.txt",)),
    ("downloads/" + "a" * 255, ("downloads", "a" * 255)),
    ("/".join(["d"] * MAX_DEPTH), ("d",) * MAX_DEPTH),
]


@pytest.mark.parametrize(("raw", "parts"), LEGITIMATE, ids=[ascii(r)[:40] for r, _ in LEGITIMATE])
def test_legitimate_paths_pass_unchanged(raw: str, parts: tuple[str, ...]):
    result = parse_path(raw)
    assert isinstance(result, SafePath), result
    assert result.parts == parts
    assert result.posix == "/".join(parts)


def test_areas_and_zones():
    assert safe_path("uploads/a").area == "uploads" and safe_path("uploads/a").zone == "uploads"
    assert safe_path("uploads/.versions/a").zone == "uploads/.versions"
    assert safe_path("uploads/.versions").zone == "uploads/.versions"
    assert safe_path("notes.txt").area is None and safe_path("notes.txt").zone == "root"
    assert safe_path("downloads").is_area_root and not safe_path("downloads/x").is_area_root
    assert safe_path("downloads/x").model_dump() == {"parts": ("downloads", "x"), "area": "downloads"}
    # Disks that ignore case see these as the protected folders.
    assert zone_of(("UPLOADS", ".Versions", "x")) == "uploads/.versions" and zone_of(()) == "root"


@pytest.mark.parametrize("parts", [("..",), ("a/b",), (), ("downloads", "."), ("x\x00",), ("~",)])
def test_safe_path_cannot_be_built_around_the_checks(parts):
    with pytest.raises(ValidationError):
        SafePath(parts=parts)


def test_non_strings_are_rejected():
    for value in (None, 3, b"uploads/a", ["uploads", "a"]):
        result = parse_path(value)
        assert isinstance(result, PathRejection) and result.code == "type"
