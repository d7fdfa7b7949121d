"""``python -m p2p_energy`` is the same as the ``p2p-energy`` command."""

import sys

from .commands.cli import main

sys.exit(main())
