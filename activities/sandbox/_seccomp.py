"""The seccomp filter bwrap loads into the namespace sandbox (`--seccomp FD`), built with libseccomp (pyseccomp).

Default allow; the usual container-escape and kernel-attack-surface system calls fail with EPERM: mounting and
namespaces (mount, umount2, pivot_root, unshare, setns, clone with a CLONE_NEW* flag; clone3 answers ENOSYS so
libc falls back to clone, whose flags a filter can see), the kernel keyring, ptrace and cross-process memory, BPF
and perf, userfaultfd, io_uring, kernel modules and kexec, handle-based opens, terminal input injection
(TIOCSTI, TIOCLINUX). Other architectures' system calls (x32, i386 on x86_64) kill the process (libseccomp's
bad-arch action), so the filter cannot be sidestepped through another ABI.
"""

from __future__ import annotations

import errno
import os
import tempfile
from functools import lru_cache

DENIED = (
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "move_mount", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr", "keyctl", "add_key", "request_key", "ptrace", "process_vm_readv",
    "process_vm_writev", "kcmp", "pidfd_getfd", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup",
    "io_uring_enter", "io_uring_register", "init_module", "finit_module", "delete_module", "kexec_load",
    "kexec_file_load", "open_by_handle_at", "name_to_handle_at", "reboot", "swapon", "swapoff", "acct", "quotactl",
    "syslog", "iopl", "ioperm", "lookup_dcookie", "uselib", "vhangup", "settimeofday",
    "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname",
)
CLONE_NAMESPACE_FLAGS = (0x00020000, 0x10000000, 0x20000000, 0x40000000, 0x04000000, 0x08000000, 0x02000000,
                         0x00000080)  # NEWNS NEWUSER NEWPID NEWNET NEWUTS NEWIPC NEWCGROUP NEWTIME
TIOCSTI, TIOCLINUX = 0x5412, 0x541C


class SeccompUnavailable(RuntimeError):
    pass


@lru_cache(maxsize=1)
def filter_bpf() -> bytes:
    """The compiled BPF program (cached: the same for every sandbox)."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError) as e:  # the package, or libseccomp.so.2 behind it
        raise SeccompUnavailable(f"libseccomp is not available: {e}") from None
    f = sc.SyscallFilter(sc.ALLOW)
    eperm = sc.ERRNO(errno.EPERM)
    for name in DENIED:
        try:
            f.add_rule(eperm, name)
        except (OSError, ValueError, RuntimeError):
            pass  # not a system call on this architecture
    for flag in CLONE_NAMESPACE_FLAGS:
        f.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    for request in (TIOCSTI, TIOCLINUX):
        f.add_rule(eperm, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, request))
    with tempfile.TemporaryFile() as out:
        f.export_bpf(out)
        out.seek(0)
        return out.read()


def filter_fd() -> int:
    """A readable fd holding the BPF program, at offset 0 (bwrap reads it once; the caller closes it)."""
    data = filter_bpf()
    fd = os.memfd_create("hybrid-sandbox-seccomp", 0)  # not CLOEXEC: passed to bwrap via pass_fds anyway
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
