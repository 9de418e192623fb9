"""The platform root on disk: where a requested path really leads, and whether the policy lets an actor use it.

Read-only: resolving and checking never create, open or modify anything (only lstat and readlink). Symlinks are
followed one component at a time, so a link anywhere in the path (an intermediate directory, the file itself,
a chain, a loop, a dangling link) is judged by where it leads. A path is refused when it leads outside the
root, through a place outside the root, or into a different zone (downloads/, uploads/, uploads/.versions/,
rag/, the root's top level) than it names.

The answer holds at the moment of the check: a writer must not follow symlinks itself (open with O_NOFOLLOW
relative to a directory it resolved, or re-resolve and compare) so that a link swapped in later is not followed.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from domain.paths import PathRejection, SafePath, parse_path, safe_path, zone_of
from domain.permissions import (
    FILE_OPERATIONS,
    Actor,
    Operation,
    PermissionDecision,
    PermissionPolicy,
    PermissionRequest,
    decide,
    strictest,
)
from domain.registry import Capability

MAX_SYMLINK_HOPS = 40  # as the kernel's ELOOP limit

Kind = Literal["file", "directory", "missing", "special"]


class PathRefused(Exception):
    """Resolution refused the path; `code` is stable (outside_root, zone, loop, not_a_directory, ...)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class ResolvedPath(BaseModel):
    model_config = ConfigDict(frozen=True)

    requested: SafePath
    real: Path  # absolute, symlinks resolved; its missing tail is the requested names
    parts: tuple[str, ...]  # `real` relative to the root
    kind: Kind
    missing: int  # how many trailing names do not exist yet
    via_symlink: bool

    @property
    def posix(self) -> str:
        return "/".join(self.parts)


class PlatformFiles:
    """The platform root. Constructing it touches nothing; each call resolves against the disk as it is now."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def real_root(self) -> str:
        real = os.path.realpath(self.root)
        if not os.path.isdir(real):
            raise PathRefused("root_missing", f"platform root {self.root} does not exist or is not a directory")
        return real

    def resolve(self, rel: SafePath | str) -> ResolvedPath:
        """Where `rel` really leads under the root; raises `UnsafePath` or `PathRefused`."""
        requested = rel if isinstance(rel, SafePath) else safe_path(rel)
        root = self.real_root()
        real, missing, via = _walk(root, requested.parts)
        parts = tuple(Path(real).relative_to(root).parts) if real != root else ()
        if zone_of(parts) != requested.zone:
            where = "/".join(parts) or "the platform root"
            raise PathRefused("zone", f"{requested.posix} leads to {where} ({_zone_name(zone_of(parts))}), "
                                      f"not into {_zone_name(requested.zone)}")
        return ResolvedPath(requested=requested, real=Path(real), parts=parts, kind=_kind(real, missing),
                            missing=missing, via_symlink=via)

    def check(self, actor: Actor | str, op: Operation | str, raw_path: object, policy: PermissionPolicy, locked: bool,
              *, model_id: str | None = None, capabilities: Sequence[Capability] = ()) -> PermissionDecision:
        """May `actor` do `op` on `raw_path`? Path syntax, then the policy, then where the path really leads."""
        parsed = parse_path(raw_path)  # first: some strings (lone surrogates) cannot even travel in a request
        if isinstance(parsed, PathRejection):
            return PermissionDecision(decision="deny", reason=f"unsafe path: {parsed.reason}", rule="path")
        request = PermissionRequest(actor=Actor(actor), operation=Operation(op), path=raw_path, model_id=model_id,
                                    capabilities=tuple(capabilities))
        return self.check_request(request, policy, locked=locked)

    def check_request(self, request: PermissionRequest, policy: PermissionPolicy, *, locked: bool
                      ) -> PermissionDecision:
        """`decide` plus symlink resolution for file operations; the strictest of the requested and real path."""
        decision = decide(policy, request, locked=locked)
        if request.operation not in FILE_OPERATIONS or decision.decision == "deny":
            return decision
        try:
            resolved = self.resolve(decision.path or "")
        except PathRefused as e:
            return PermissionDecision(decision="deny", reason=e.reason, rule=f"resolve:{e.code}", path=decision.path)
        if resolved.kind == "special":
            return PermissionDecision(decision="deny", reason=f"{resolved.requested.posix} is not a regular file or "
                                      "directory (device, FIFO or socket)", rule="resolve:special",
                                      path=decision.path)
        if resolved.parts != resolved.requested.parts:
            real = decide(policy, request.model_copy(update={"path": resolved.posix}), locked=locked)
            if real.decision != "allow":
                reason = f"{resolved.requested.posix} leads to {resolved.posix}: {real.reason}"
                return real.model_copy(update={"reason": reason, "path": decision.path})
            decision = strictest(decision, real)
        if resolved.via_symlink:
            decision = decision.model_copy(update={"reason": f"{decision.reason} (via symlink to {resolved.posix})"})
        return decision


def _zone_name(zone: str) -> str:
    return "the platform root's top level" if zone == "root" else f"{zone}/"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _rel(path: str, root: str) -> str:
    return os.path.relpath(path, root) if _inside(path, root) else path


def _walk(root: str, parts: Sequence[str]) -> tuple[str, int, bool]:
    """Resolve `parts` under `root` component by component: (real path, missing trailing names, via a link)."""
    current = root
    pending = list(parts)
    hops = 0
    via = False
    link = ""
    while pending:
        name = pending.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            current = os.path.dirname(current)
            _still_near(current, root, link)
            continue
        candidate = os.path.join(current, name)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            rest = [p for p in pending if p not in ("", ".")]
            if ".." in rest:
                raise PathRefused("dangling", f"symlink {link} leads through a missing directory") from None
            real = os.path.join(candidate, *rest)
            _still_near(real, root, link)
            return real, 1 + len(rest), via
        except NotADirectoryError:
            raise PathRefused("not_a_directory", f"{_rel(current, root)} is not a directory") from None
        except OSError as e:
            raise PathRefused("unreadable", f"cannot inspect {_rel(candidate, root)}: {e.strerror}") from None
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            via = True
            if hops > MAX_SYMLINK_HOPS:
                raise PathRefused("loop", f"symlink loop or more than {MAX_SYMLINK_HOPS} links at "
                                          f"{_rel(candidate, root)}")
            try:
                target = os.readlink(candidate)
            except OSError as e:
                raise PathRefused("unreadable", f"cannot read symlink {_rel(candidate, root)}: {e.strerror}") from None
            link = f"{_rel(candidate, root)} -> {target}"
            if os.path.isabs(target):
                current = os.sep
            pending[:0] = target.split("/")
            continue
        if pending and not stat.S_ISDIR(st.st_mode):
            raise PathRefused("not_a_directory", f"{_rel(candidate, root)} is not a directory")
        current = candidate
        _still_near(current, root, link)
    if not _inside(current, root):
        raise PathRefused("outside_root", f"symlink {link} leads outside the platform root")
    return current, 0, via


def _still_near(path: str, root: str, link: str) -> None:
    """Inside the root, or on the way down to it from `/` (an absolute link back into the root)."""
    if _inside(path, root) or _inside(root, path):
        return
    raise PathRefused("outside_root", f"symlink {link} leads outside the platform root" if link
                      else "path leads outside the platform root")


def _kind(real: str, missing: int) -> Kind:
    if missing:
        return "missing"
    try:
        mode = os.stat(real, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return "missing"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    return "special"


def same_content(target: str | os.PathLike, data: bytes) -> bool:
    """Whether `target` is a regular file (not a symlink) that already holds exactly `data`."""
    path = Path(target)
    return path.is_file() and not path.is_symlink() and hashlib.sha256(path.read_bytes()).digest() == \
        hashlib.sha256(data).digest()


def atomic_write(target: str | os.PathLike, data: bytes) -> None:
    """Write via a temp file in the same folder + fsync + rename: readers see the old file or the new one."""
    target = Path(target)
    os.makedirs(target.parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
