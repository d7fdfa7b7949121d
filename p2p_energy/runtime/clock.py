"""Is the system clock synchronised? Asked of the kernel, as ``timedatectl`` does.

``adjtimex(2)`` with ``modes = 0`` only reads: it returns the clock state,
``TIME_ERROR`` (5) while the kernel's clock is not synchronised (STA_UNSYNC,
set until an NTP client such as systemd-timesyncd or chrony disciplines it).
The ``struct timex`` is passed as a zeroed buffer larger than any
architecture's (about 208 bytes on 64-bit, 128 on 32-bit Raspberry Pi OS): with
``modes = 0`` the kernel only writes into it, so its layout does not matter here.
A few microseconds; safe to ask once per round.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)

SYNCHRONIZED, UNSYNCHRONIZED, UNKNOWN = "synchronized", "unsynchronized", "unknown"
TIME_ERROR = 5
_TIMEX_BYTES = 512  # more than struct timex on any Linux architecture


@functools.cache
def _adjtimex():
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    func = getattr(ctypes.CDLL(name, use_errno=True), "adjtimex", None)
    if func is not None:
        func.argtypes = [ctypes.c_void_p]
        func.restype = ctypes.c_int
    return func


def clock_state() -> str:
    """``SYNCHRONIZED``, ``UNSYNCHRONIZED``, or ``UNKNOWN`` where the kernel cannot be asked."""
    func = _adjtimex()
    if func is None:
        return UNKNOWN
    buffer = ctypes.create_string_buffer(_TIMEX_BYTES)  # zeroed: modes = 0, read only
    state = func(buffer)
    if state < 0:
        return UNKNOWN
    return UNSYNCHRONIZED if state == TIME_ERROR else SYNCHRONIZED
