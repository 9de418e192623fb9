"""Taking a microVM's results back onto the host: `_untar.py` runs as the sandbox's unprivileged uid (setpriv,
no capabilities, no new privileges), with the host's /usr/bin/python3 in isolated mode (no site, no venv), so
even a flaw in the checks could only write where uid 65534 may write. The parent then reads the out/ files
without following links, each capped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from activities.sandbox._workspace import SANDBOX_GID, SANDBOX_UID

OUT_NAMES = ("rc", "stdout", "stderr", "status", "times")


@lru_cache(maxsize=1)
def _script() -> str:
    return Path(__file__).with_name("_untar.py").read_text()


def _python() -> str:
    return shutil.which("python3", path="/usr/bin:/bin") or sys.executable


def extract_results(archive: Path, work: Path, out_dir: Path, max_out_bytes: int,
                    timeout_s: float = 120.0) -> tuple[dict[str, bytes], dict]:
    """({out name: bytes}, the extraction report). `work` must be owned by the sandbox uid; `out_dir` is made."""
    out_dir.mkdir(mode=0o700, exist_ok=True)
    os.chown(out_dir, SANDBOX_UID, SANDBOX_GID)
    argv = ["setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_GID}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--no-new-privs", "--", _python(), "-I", "-S", "-c", _script(),
            str(archive), str(work), str(out_dir), str(max_out_bytes)]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout_s, env={"PATH": "/usr/bin:/bin"},
                              cwd="/", check=False)
        lines = done.stdout.decode(errors="replace").strip().splitlines()
        report = json.loads(lines[-1]) if done.returncode == 0 and lines else {
            "error": f"extraction failed (exit {done.returncode}): {done.stderr.decode(errors='replace')[-500:]}"}
    except (subprocess.TimeoutExpired, ValueError) as e:
        report = {"error": f"extraction failed: {e}"}
    found: dict[str, bytes] = {}
    for name in OUT_NAMES:
        try:
            fd = os.open(out_dir / name, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        with os.fdopen(fd, "rb") as f:
            found[name] = f.read(max_out_bytes + 1)
    shutil.rmtree(out_dir, ignore_errors=True)
    return found, report
