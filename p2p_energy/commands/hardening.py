"""No core dumps: a core of this process would hold the wallet's key or seed.

Called first thing by the command line, before any config (and so any secret)
is read. The systemd units also set ``LimitCORE=0``; this covers a process
started by hand.
"""

from __future__ import annotations

import logging
import resource
import sys

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4  # linux/prctl.h


def no_core_dumps() -> None:
    """Core size limit 0 (soft and hard), and on Linux not dumpable (``PR_SET_DUMPABLE``
    0: no core whatever the limit, no ptrace attach by the same user, /proc/PID files
    owned by root). Failures are logged at debug level: a best effort, never fatal."""
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        log.debug("cannot set RLIMIT_CORE to 0", exc_info=True)
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            log.debug("prctl(PR_SET_DUMPABLE, 0) failed: errno %d", ctypes.get_errno())
    except (OSError, AttributeError):
        log.debug("prctl is not available", exc_info=True)
