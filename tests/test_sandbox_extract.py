"""A crafted microVM result archive writes nothing outside the work folder (the extraction itself, no QEMU needed:
code in the guest controls every byte of that archive)."""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import uuid
from pathlib import Path

import pytest

from activities.sandbox._microvm import _read_results
from activities.sandbox._workspace import SANDBOX_GID, SANDBOX_UID


@pytest.fixture
def places(tmp_path):
    """A work folder as the sandbox has it, and a world-writable folder outside it that an escape would hit (so the
    test holds even against the unprivileged uid the extraction runs as)."""
    vm_dir = Path("/var/tmp") / f"hybrid-extract-{uuid.uuid4().hex[:8]}"
    work = vm_dir / "work"
    work.mkdir(parents=True)
    os.chmod(vm_dir, 0o711)
    os.chown(work, SANDBOX_UID, SANDBOX_GID)
    os.chmod(work, 0o700)
    outside = Path("/tmp") / f"hybrid-escape-{uuid.uuid4().hex[:8]}"
    outside.mkdir()
    os.chmod(outside, 0o777)
    yield vm_dir, work, outside
    shutil.rmtree(vm_dir, ignore_errors=True)
    shutil.rmtree(outside, ignore_errors=True)


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"x", **kw) -> None:
    info = tarfile.TarInfo(name)
    for k, v in kw.items():
        setattr(info, k, v)
    if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def test_a_crafted_result_archive_writes_nothing_outside_the_work_folder(places):
    vm_dir, work, outside = places
    out = vm_dir / "out.img"
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        _add(tar, "out/rc", b"0\n")
        _add(tar, "out/stdout", b"fine\n")
        _add(tar, "work/ok.txt", b"ok")
        _add(tar, "work/sub/ok2.txt", b"ok2")
        _add(tar, f"work/{outside}/double-slash", b"escaped")  # work//tmp/...: `work / name[5:]` is absolute
        _add(tar, f"work/../../../../..{outside}/dotdot", b"escaped")
        _add(tar, f"../../../../..{outside}/plain-dotdot", b"escaped")
        _add(tar, f"{outside}/absolute", b"escaped")
        _add(tar, f"./work/./../../../../..{outside}/dot-dotdot", b"escaped")
        _add(tar, "work/link", type=tarfile.SYMTYPE, linkname=str(outside))
        _add(tar, "work/link/through-symlink", b"escaped")
        _add(tar, "work/file-link", type=tarfile.SYMTYPE, linkname=f"{outside}/via-file-link")
        _add(tar, "work/file-link", b"escaped")
        _add(tar, "work/hard", type=tarfile.LNKTYPE, linkname="/etc/passwd")
        _add(tar, "work/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
        _add(tar, "work/disk", type=tarfile.BLKTYPE, devmajor=8, devminor=0)
        _add(tar, "work/fifo", type=tarfile.FIFOTYPE)
        _add(tar, "out/../../x", b"escaped")
        _add(tar, "elsewhere/x", b"escaped")
    os.chown(out, SANDBOX_UID, SANDBOX_GID)
    found = _read_results(out, work, 1024)
    assert found["rc"] == b"0\n" and found["stdout"] == b"fine\n"
    assert sorted(os.listdir(outside)) == []
    assert not (vm_dir.parent / "x").exists() and not Path("/tmp/x").exists()
    inside = sorted(str(p.relative_to(work)) for p in work.rglob("*"))
    # the refused link names became plain files and folders inside work/ at most
    assert inside == ["file-link", "link", "link/through-symlink", "ok.txt", "sub", "sub/ok2.txt"], inside
    for p in work.rglob("*"):
        st = os.lstat(p)
        assert stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)
        assert st.st_uid == SANDBOX_UID  # written as the sandbox's user, never as root
    assert (work / "ok.txt").read_bytes() == b"ok"
    assert sorted(os.listdir(vm_dir)) == ["out.img", "work"]  # no results folder left behind


def test_an_existing_symlink_in_the_work_folder_does_not_redirect_a_write(places):
    vm_dir, work, outside = places
    os.symlink(outside, work / "planted")  # as if a previous step had left it
    out = vm_dir / "out.img"
    with tarfile.open(out, "w") as tar:
        _add(tar, "work/planted/x", b"escaped")
        _add(tar, "out/rc", b"0\n")
    os.chown(out, SANDBOX_UID, SANDBOX_GID)
    assert _read_results(out, work, 1024)["rc"] == b"0\n"
    assert os.listdir(outside) == []
