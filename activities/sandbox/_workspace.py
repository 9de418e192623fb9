"""A sandbox's folder on the worker: `<base>/<sandbox id>/` holds `meta.json` (owner workflow) and `work/` (the
sandbox's only writable place). Collecting never follows symlinks; destroying removes everything."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import time
from pathlib import Path

from domain.sandbox import ProducedFile

SANDBOX_UID = SANDBOX_GID = 65534  # nobody: limits like RLIMIT_NPROC hold for it (not for root)


class Workspace:
    def __init__(self, base: Path, sandbox_id: str) -> None:
        self.base = Path(base)
        self.sandbox_id = sandbox_id
        self.dir = self.base / sandbox_id
        self.work = self.dir / "work"
        self.meta = self.dir / "meta.json"

    def create(self, workflow_id: str, backend: str) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o711)
        if blocked := untraversable(self.base):
            raise PermissionError(f"sandbox folder {self.base}: uid {SANDBOX_UID} cannot reach it ({blocked} is "
                                  "not searchable by others); set HYBRID_SANDBOX_DIR to a reachable place")
        self.work.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o711)
        os.chown(self.work, SANDBOX_UID, SANDBOX_GID)
        os.chmod(self.work, 0o700)
        if not self.meta.exists():
            tmp = self.dir / "meta.json.tmp"
            tmp.write_text(json.dumps({"workflow_id": workflow_id, "backend": backend, "created": time.time()}))
            os.replace(tmp, self.meta)

    def exists(self) -> bool:
        return self.dir.is_dir()

    def write_inputs(self, files: dict[str, str]) -> None:
        for name, text in files.items():
            target = self.work / name
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.chown(target, SANDBOX_UID, SANDBOX_GID)

    def collect(self, skip: set[str], max_files: int) -> list[ProducedFile]:
        """Regular files the run left in the work folder (symlinks, devices and FIFOs are ignored)."""
        found: list[ProducedFile] = []
        for dirpath, dirnames, filenames in os.walk(self.work, followlinks=False):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, self.work)
                if rel in skip:
                    continue
                st = os.lstat(full)
                if not stat.S_ISREG(st.st_mode):
                    continue
                found.append(ProducedFile(path=rel, size=st.st_size, sha256=_sha256(full)))
                if len(found) >= max_files:
                    return found
        return found

    def open_produced(self, rel: str) -> int:
        """An fd for a produced file, opened without following symlinks anywhere under the work folder."""
        fd = os.open(self.work, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            parts = rel.split("/")
            for part in parts[:-1]:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = nxt
            return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
        finally:
            os.close(fd)

    def destroy(self) -> bool:
        """Remove the folder; True when something was there."""
        if not self.dir.exists():
            return False
        _make_removable(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.dir.exists():  # something still holds it: try once more after making it removable
            _make_removable(self.dir)
            shutil.rmtree(self.dir)
        return True


def untraversable(path: Path) -> str | None:
    """The first folder on the way to `path` that other users cannot pass through (bwrap binds the work folder
    as uid 65534), or None."""
    current = Path(path).resolve()
    for folder in [current, *current.parents]:
        st = os.stat(folder)
        if not (st.st_mode & stat.S_IXOTH or (st.st_uid == SANDBOX_UID and st.st_mode & stat.S_IXUSR)):
            return str(folder)
    return None


def list_workspaces(base: Path) -> list[tuple[str, str | None]]:
    """(sandbox id, owning workflow id or None) for every sandbox folder under `base`."""
    if not Path(base).is_dir():
        return []
    found = []
    for entry in sorted(Path(base).iterdir()):
        if not entry.is_dir():
            continue
        owner = None
        try:
            owner = json.loads((entry / "meta.json").read_text()).get("workflow_id")
        except (OSError, ValueError):
            pass
        found.append((entry.name, owner))
    return found


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _make_removable(path: Path) -> None:
    """Code in the sandbox may have left read-only folders; as root we can still chmod them."""
    for dirpath, dirnames, _ in os.walk(path, followlinks=False):
        for d in dirnames:
            full = os.path.join(dirpath, d)
            if not os.path.islink(full):
                try:
                    os.chmod(full, 0o700)
                except OSError:
                    pass
