"""Unpack a microVM's result archive (stdlib only; run as the sandbox's unprivileged uid by `_extract.py`).

    python3 -I -S -c <this file> ARCHIVE WORK_DIR OUT_DIR MAX_OUT_BYTES

Only two kinds of member are taken: `out/<rc|stdout|stderr|status|times>` (regular files, at most MAX_OUT_BYTES
+ 1 bytes each) into OUT_DIR, and `work/<relative path>` (regular files and folders) into WORK_DIR. Refused:
absolute names, empty, `.` or `..` components (`work//etc/x`, `work/../x`), symlinks, hard links, devices, FIFOs,
anything else. Every folder on the way is opened with O_NOFOLLOW relative to the one before, so nothing already
in WORK_DIR can redirect a write either. Prints one JSON line: {"written", "refused", "refused_names"}.
"""

import json
import os
import sys
import tarfile

OUT_NAMES = {"rc", "stdout", "stderr", "status", "times"}
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW


def safe_parts(name):
    """The name's components, or None when it is absolute or has an empty, `.` or `..` component."""
    if name.startswith("./"):
        name = name[2:]
    if name.endswith("/"):
        name = name[:-1]
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        return None
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    return parts


def open_dir(root_fd, parts, create):
    """An fd for root/parts..., each step without following links; folders created (0755) when asked."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            try:
                nxt = os.open(part, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                nxt = os.open(part, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def copy(src, fd, limit):
    left = limit
    with os.fdopen(fd, "wb") as dst:
        while left > 0:
            chunk = src.read(min(1 << 20, left))
            if not chunk:
                break
            dst.write(chunk)
            left -= len(chunk)


def extract(archive, work, out, max_out):
    report = {"written": 0, "refused": 0, "refused_names": []}

    def refuse(name):
        report["refused"] += 1
        if len(report["refused_names"]) < 50:
            report["refused_names"].append(name[:200])

    work_fd = os.open(work, DIR_FLAGS)
    out_fd = os.open(out, DIR_FLAGS)
    try:
        with tarfile.open(archive, "r:") as tar:
            for member in tar:
                parts = safe_parts(member.name)
                if parts is None or parts[0] not in ("out", "work"):
                    refuse(member.name)
                    continue
                if parts[0] == "out":
                    if len(parts) == 1 and member.isdir():
                        continue
                    if len(parts) != 2 or parts[1] not in OUT_NAMES or not member.isreg():
                        refuse(member.name)
                        continue
                    src = tar.extractfile(member)
                    copy(src, os.open(parts[1], FILE_FLAGS, 0o600, dir_fd=out_fd), max_out + 1)
                    report["written"] += 1
                    continue
                rel = parts[1:]
                if member.isdir():
                    if rel:
                        try:
                            os.close(open_dir(work_fd, rel, create=True))
                        except OSError:
                            refuse(member.name)
                    continue
                if not member.isreg() or not rel:  # symlinks, hard links, devices, FIFOs
                    refuse(member.name)
                    continue
                try:
                    parent = open_dir(work_fd, rel[:-1], create=True)
                    try:
                        fd = os.open(rel[-1], FILE_FLAGS, 0o644, dir_fd=parent)
                    finally:
                        os.close(parent)
                except OSError:
                    refuse(member.name)
                    continue
                copy(tar.extractfile(member), fd, member.size)
                report["written"] += 1
    except (tarfile.TarError, OSError, EOFError) as e:
        report["error"] = str(e)[:300]  # a partial archive (the disk ran full): keep what came through
    finally:
        os.close(work_fd)
        os.close(out_fd)
    return report


if __name__ == "__main__":
    archive_path, work_dir, out_dir, max_bytes = sys.argv[1:5]
    print(json.dumps(extract(archive_path, work_dir, out_dir, int(max_bytes))))
