"""Shared pytest fixtures. Add your own below; keep big ones in their own module."""

from iota_fixtures import iota_node  # noqa: F401  (the IOTA JSON-RPC test node)
from node_fixtures import legacy_node  # noqa: F401  (the legacy IOTA test node)
from paying_daemon import ledger_dir  # noqa: F401  (a tmpfs folder for a daemon's ledger)
from sdk_judge import iota_sdk_judge  # noqa: F401  (the IOTA SDK, installed by npm ci once)
