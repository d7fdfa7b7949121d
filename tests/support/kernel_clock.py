"""The kernel's clock state, set as an NTP client sets it, for tests of two meters.

A producer's entry prices a consumer's round only if the producer's clock was
synchronised when it closed (``runtime.clock``, ``adjtimex(2)``). A test machine
(a container, a CI VM) often runs without an NTP client, so its kernel says
"unsynchronised". ``synchronise()`` does what chrony or systemd-timesyncd do
after a good exchange: ``adjtimex`` with ``ADJ_STATUS`` (STA_UNSYNC cleared) and
``ADJ_MAXERROR`` (0.1 s). It changes no time, only the state, which the kernel
lets decay by itself (maxerror grows 500 µs/s; unsynchronised again past 16 s,
some 9 hours later). Root with CAP_SYS_TIME only; otherwise the caller skips.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

ADJ_MAXERROR, ADJ_STATUS = 0x0004, 0x0010
STA_UNSYNC = 0x0040


class Timex(ctypes.Structure):
    """glibc's ``struct timex`` (``long`` is the architecture's: 64- and 32-bit alike)."""

    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long),
                ("status", ctypes.c_int), ("constant", ctypes.c_long),
                ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("time_sec", ctypes.c_long), ("time_usec", ctypes.c_long),
                ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long),
                ("shift", ctypes.c_int), ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long),
                ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long),
                ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int),
                ("padding", ctypes.c_int * 11)]


def synchronise() -> str:
    """Mark the kernel's clock synchronised; returns "" or why it could not be."""
    name = ctypes.util.find_library("c")
    if name is None:
        return "no C library to call adjtimex with"
    adjtimex = ctypes.CDLL(name, use_errno=True).adjtimex
    now = Timex()
    if adjtimex(ctypes.byref(now)) < 0:
        return f"adjtimex: {os.strerror(ctypes.get_errno())}"
    if not now.status & STA_UNSYNC:
        return ""
    change = Timex(modes=ADJ_STATUS | ADJ_MAXERROR, status=now.status & ~STA_UNSYNC,
                   maxerror=100_000)
    if adjtimex(ctypes.byref(change)) < 0:
        return (f"adjtimex cannot set the clock's state ({os.strerror(ctypes.get_errno())}:"
                " needs root with CAP_SYS_TIME)")
    return ""
