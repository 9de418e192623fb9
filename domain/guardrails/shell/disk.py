"""Command rules, family module: Block devices: formatting, wiping, repartitioning."""

from __future__ import annotations

import re

from domain.guardrails import paths
from domain.guardrails.code_rules import classify_write
from domain.guardrails.shell.analyzer import (Analyzer, _flags, _name, _operands)
from domain.guardrails.shell.parser import Cmd
from domain.guardrails.shell.registry import handles, rule
from domain.guardrails.verdict import Risk

DISK_WIPE = rule('disk_wipe', 'disk_wipe', 'formats, wipes or repartitions a block device')


@handles('dd')
def dd(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    for a in argv[1:]:
        if a.startswith("of="):
            p = paths.clean(a[3:])
            an.hits += classify_write(p, "dd")


@handles('mkfs')
def mkfs(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    ops = _operands(argv)
    if ops and not any(o.startswith("/dev/") for o in ops) and all(re.search(r"\.(?:img|iso|raw|bin|qcow2?)$", o)
                                                                or not o.startswith("/") for o in ops):
        return  # formats an image file
    an.add("disk_wipe", Risk.CRITICAL, f"{argv[0]} formats {' '.join(_operands(argv)[-1:]) or 'a device'}")


@handles('wipefs')
def wipefs(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if "-n" not in argv and "--no-act" not in argv:
        an.add("disk_wipe", Risk.CRITICAL, "wipefs erases filesystem signatures")


@handles('blkdiscard')
def blkdiscard(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    an.add("disk_wipe", Risk.CRITICAL, "blkdiscard discards every block of a device")


@handles('fdisk', 'sfdisk', 'parted', 'gdisk', 'sgdisk', 'cfdisk')
def fdisk(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if not any(a in ("-l", "--list", "-s", "--show", "-d", "--dump", "print") for a in argv[1:]):
        if any(paths.is_block_device(paths.clean(o)) for o in argv[1:]) or _name(argv[0]) != "fdisk":
            an.add("disk_wipe", Risk.CRITICAL, f"{_name(argv[0])} rewrites a partition table")


@handles('hdparm')
def hdparm(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if any("security-erase" in a for a in argv):
        an.add("disk_wipe", Risk.CRITICAL, "hdparm secure-erases a disk")


@handles('badblocks')
def badblocks(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    if "w" in _flags(argv):
        an.add("disk_wipe", Risk.CRITICAL, "badblocks -w overwrites a disk")
