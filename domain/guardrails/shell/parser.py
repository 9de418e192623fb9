"""Shell parsing: turn a command line into the simple commands it runs, with words as the shell would see them.

bashlex gives the syntax tree (lists, pipelines, subshells, substitutions, redirects, functions); we expand
words ourselves: quotes and escapes, `$'..'` ANSI-C strings, variables assigned earlier on the line (including
`${x:0:1}` slicing and `${IFS}`), `$(echo ..)` substitutions and brace lists. When bashlex cannot parse the line,
a quote-aware tokenizer splits it on operators instead, and the result is marked `fallback`.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

import bashlex
import bashlex.errors

MAX_PARSE = 16_384


@dataclass
class Cmd:
    argv: list[str]
    redirects: list[tuple[str, str]] = field(default_factory=list)  # (operator, target)
    heredoc: str | None = None
    pipe_from: "Cmd | None" = None
    substituted: bool = False  # runs inside $(..), `..` or <(..)
    background: bool = False
    span: tuple[int, int] | None = None  # where this simple command sits in the parsed source

    @property
    def name(self) -> str:
        return command_name(self.argv[0]) if self.argv else ""

    def upstream(self) -> list["Cmd"]:
        out, cur = [], self.pipe_from
        while cur is not None and len(out) < 32:
            out.append(cur)
            cur = cur.pipe_from
        return out


@dataclass
class Parsed:
    commands: list[Cmd]
    functions: dict[str, list[Cmd]] = field(default_factory=dict)
    assignments: list[tuple[str, str]] = field(default_factory=list)
    fallback: bool = False
    unresolved: int = 0  # words whose value depends on something we could not evaluate


def command_name(word: str) -> str:
    word = word.lstrip("\\")
    if "/" in word:
        word = word.rstrip("/").rsplit("/", 1)[-1]
    return word


_ANSI_C = re.compile(r"\$'((?:[^'\\]|\\.)*)'", re.S)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "v": "\v",
            "\\": "\\", "'": "'", '"': '"', "?": "?"}


def decode_escapes(body: str) -> str:
    """Bash `$'..'` / `echo -e` / printf escapes: \\xHH, \\NNN octal, \\uHHHH, \\n and friends."""
    def one(m: re.Match[str]) -> str:
        s = m.group(0)
        kind = s[1]
        try:
            if kind == "x":
                return chr(int(s[2:], 16))
            if kind in "uU":
                return chr(int(s[2:], 16))
            if kind.isdigit():
                return chr(int(s[1:].lstrip("0") or "0", 8) & 0xFF)
        except ValueError:
            return s
        return _ESCAPES.get(kind, s)

    return re.sub(r"\\(?:x[0-9a-fA-F]{1,2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|0?[0-7]{1,3}|.)", one, body, flags=re.S)


def _single_quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def rewrite_ansi_c(src: str) -> str:
    return _ANSI_C.sub(lambda m: _single_quote(decode_escapes(m.group(1))), src)


_PARAM = re.compile(r"\$\{([!#]?)(\w+)(?:(:-|:=|:\+|:\?|:|/{1,2}|#{1,2}|%{1,2})([^}]*))?\}|\$(\w+|[@*#?$!-])")


class _Expander:
    def __init__(self, src: str, env: dict[str, str], parsed: Parsed, depth: int) -> None:
        self.src = src
        self.env = env
        self.parsed = parsed
        self.depth = depth

    def param(self, m: re.Match[str]) -> str:
        if m.group(5) is not None:
            name = m.group(5)
            return self.env.get(name, "$" + name)
        prefix, name, op, arg = m.group(1), m.group(2), m.group(3), m.group(4) or ""
        value = self.env.get(name)
        if value is None:
            if op in (":-", ":="):
                return self._expand_plain(arg)
            self.parsed.unresolved += name not in ("HOME", "USER", "PWD", "IFS")
            return "$" + name
        if prefix == "#":
            return str(len(value))
        if op == ":":
            parts = arg.split(":", 1)
            try:
                start = int(parts[0].strip() or 0)
                if start < 0:
                    start = max(0, len(value) + start)
                end = start + int(parts[1]) if len(parts) > 1 and parts[1].strip() else len(value)
                return value[start:end]
            except ValueError:
                self.parsed.unresolved += 1
                return value
        if op in ("/", "//") and "/" in arg:
            pat, rep = arg.split("/", 1)
            return value.replace(pat, rep) if op == "//" else value.replace(pat, rep, 1)
        if op in ("#", "##") and value.startswith(arg):
            return value[len(arg):]
        if op in ("%", "%%") and arg and value.endswith(arg):
            return value[: -len(arg)]
        return value

    def _expand_plain(self, s: str) -> str:
        return _PARAM.sub(self.param, s)

    def word(self, node) -> list[str]:
        """Expand one WordNode into the words the shell would pass (usually one)."""
        start, end = node.pos
        raw = self.src[start:end]
        subs = {}
        for part in getattr(node, "parts", []) or []:
            if part.kind in ("commandsubstitution", "processsubstitution"):
                before = len(self.parsed.commands)
                walk(part.command, self.src, self.env, self.parsed, self.depth, substituted=True)
                produced = self.parsed.commands[before:]
                subs[part.pos[0] - start] = (part.pos[1] - start, _echo_output(produced, part.kind))
        out: list[str] = []
        quote = None
        quoted_any = False
        split_ok = True
        i = 0
        while i < len(raw):
            if i in subs:
                stop, value = subs[i]
                if value is None:
                    self.parsed.unresolved += 1
                    value = raw[i:stop]
                out.append(value)
                i = stop
                continue
            c = raw[i]
            if quote == "'":
                if c == "'":
                    quote = None
                else:
                    out.append(c)
                i += 1
                continue
            if c == "\\" and i + 1 < len(raw):
                nxt = raw[i + 1]
                if quote == '"' and nxt not in '$`"\\\n':
                    out.append(c)
                elif nxt != "\n":
                    out.append(nxt)
                i += 2
                continue
            if c in "'\"" and quote is None:
                quote, quoted_any = c, True
                i += 1
                continue
            if c == '"' and quote == '"':
                quote = None
                i += 1
                continue
            if c == "$":
                m = _PARAM.match(raw, i)
                if m:
                    value = self.param(m)
                    out.append(value)
                    if quote is None and re.search(r"\s", value):
                        split_ok = True
                    i = m.end()
                    continue
            out.append(c)
            i += 1
        text = "".join(out)
        if not quoted_any and split_ok and re.search(r"\s", text):
            return text.split()
        m = re.fullmatch(r"([^{}]*)\{([^{}]*,[^{}]*)\}([^{}]*)", text)
        if m and not quoted_any:
            return [m.group(1) + p + m.group(3) for p in m.group(2).split(",")]
        return [text]


def _echo_output(cmds: list[Cmd], kind: str) -> str | None:
    """What `$(echo ..)` / `$(printf ..)` prints, when it is that simple; None otherwise."""
    if kind != "commandsubstitution" or len(cmds) != 1:
        return None
    c = cmds[0]
    if c.name == "echo":
        args = c.argv[1:]
        escapes = False
        while args and re.fullmatch(r"-[neE]+", args[0]):
            escapes = escapes or "e" in args[0]
            args = args[1:]
        out = " ".join(args)
        return decode_escapes(out) if escapes else out
    if c.name == "printf" and len(c.argv) >= 2:
        fmt = decode_escapes(c.argv[1])
        args = c.argv[2:]
        try:
            return fmt.replace("%b", "%s") % tuple(args) if args else fmt
        except (TypeError, ValueError):
            return fmt + "".join(args)
    if c.name in ("rev",) and c.pipe_from is not None and c.pipe_from.name == "echo":
        return " ".join(c.pipe_from.argv[1:])[::-1]
    return None


def walk(node, src: str, env: dict[str, str], parsed: Parsed, depth: int, substituted: bool = False,
         pipe_from: Cmd | None = None) -> Cmd | None:
    """Append the simple commands under `node` to parsed.commands; return the last one (for pipelines)."""
    kind = node.kind
    if kind == "command":
        exp = _Expander(src, env, parsed, depth)
        argv: list[str] = []
        redirects: list[tuple[str, str]] = []
        heredoc = None
        assigns: dict[str, str] = {}
        for part in node.parts:
            if part.kind == "assignment" and not argv:
                name, _, _value = part.word.partition("=")
                vnode = type("W", (), {"pos": (part.pos[0] + len(name) + 1, part.pos[1]),
                                       "parts": getattr(part, "parts", [])})()
                assigns[name.rstrip("+")] = " ".join(exp.word(vnode))
            elif part.kind in ("word", "assignment"):
                argv.extend(exp.word(part))
            elif part.kind == "redirect":
                out = part.output
                target = " ".join(exp.word(out)) if hasattr(out, "kind") else str(out)
                if getattr(part, "heredoc", None) is not None:
                    heredoc = part.heredoc.value
                redirects.append((part.type, target))
        parsed.assignments.extend(assigns.items())
        if not argv:
            env.update(assigns)
        elif command_name(argv[0]) in ("export", "declare", "typeset", "local", "readonly"):
            for a in argv[1:]:
                if "=" in a and not a.startswith("-"):
                    k, _, v = a.partition("=")
                    env[k] = v
                    parsed.assignments.append((k, v))
        cmd = Cmd(argv=argv, redirects=redirects, heredoc=heredoc, pipe_from=pipe_from, substituted=substituted,
                  span=tuple(node.pos) if depth == 0 and not substituted else None)
        if argv or redirects:
            parsed.commands.append(cmd)
        return cmd
    if kind == "pipeline":
        prev = None
        for part in node.parts:
            if part.kind == "pipe":
                continue
            prev = walk(part, src, env, parsed, depth, substituted, pipe_from=prev)
        return prev
    if kind == "list":
        last = None
        for part in node.parts:
            if part.kind == "operator":
                if part.op == "&" and last is not None:
                    last.background = True
                continue
            last = walk(part, src, env, parsed, depth, substituted, pipe_from=None)
        return last
    if kind == "function":
        name = node.name.word
        before = len(parsed.commands)
        walk(node.body, src, env, parsed, depth, substituted)
        parsed.functions[name] = parsed.commands[before:]
        return None
    last = None
    children = list(getattr(node, "parts", None) or []) + list(getattr(node, "list", None) or [])
    if kind == "compound" and getattr(node, "redirects", None):
        pass
    for part in children:
        if part.kind in ("reservedword", "operator", "pipe"):
            continue
        last = walk(part, src, env, parsed, depth, substituted, pipe_from=pipe_from if last is None else None)
    return last


_OPS = re.compile(r"(\|\||&&|;;|[;&|\n])")


def _fallback(src: str, parsed: Parsed) -> None:
    """Quote-aware split on operators, then shlex per segment; never raises."""
    segments: list[tuple[str, str]] = []  # (text, operator before)
    buf, quote, i, op_before = [], None, 0, ";"
    while i < len(src):
        c = src[i]
        if quote:
            buf.append(c)
            if c == quote:
                quote = None
            elif c == "\\" and quote == '"' and i + 1 < len(src):
                buf.append(src[i + 1])
                i += 1
        elif c in "'\"`":
            quote = c
            buf.append(c)
        elif c == "\\" and i + 1 < len(src):
            buf.append(src[i:i + 2])
            i += 1
        else:
            m = _OPS.match(src, i)
            if m and not (m.group(0) == "&" and (src[i - 1:i] in "<>" or src[i + 1:i + 2] == ">")):
                segments.append(("".join(buf), op_before))
                buf, op_before = [], m.group(0)
                i = m.end()
                continue
            buf.append(c)
        i += 1
    segments.append(("".join(buf), op_before))
    prev: Cmd | None = None
    for text, op in segments:
        try:
            tokens = shlex.split(text, posix=True)
        except ValueError:
            tokens = text.split()
        argv, redirects = [], []
        it = iter(tokens)
        for t in it:
            m = re.fullmatch(r"(\d*)(>>|>&|&>|>|<<<|<<|<)(.*)", t)
            if m:
                target = m.group(3) or next(it, "")
                redirects.append((m.group(2), target))
            else:
                argv.append(t.strip("()`{}") if t not in ("{", "}") else "")
        argv = [a for a in argv if a]
        if argv and argv[0].startswith("$(") is False and "$(" in " ".join(argv):
            parsed.unresolved += 1
        cmd = Cmd(argv=argv, redirects=redirects, pipe_from=prev if op == "|" else None)
        if argv or redirects:
            parsed.commands.append(cmd)
        prev = cmd


def parse(src: str, depth: int = 0) -> Parsed:
    """Parse a command line; never raises."""
    parsed = Parsed(commands=[])
    src = rewrite_ansi_c(src[:MAX_PARSE])
    try:
        trees = bashlex.parse(src)
        env: dict[str, str] = {"IFS": " "}
        for tree in trees:
            walk(tree, src, env, parsed, depth)
    except (bashlex.errors.ParsingError, NotImplementedError, AttributeError, IndexError, TypeError, ValueError,
            KeyError, AssertionError, RecursionError):
        parsed = Parsed(commands=[], fallback=True)
        _fallback(src, parsed)
    return parsed
