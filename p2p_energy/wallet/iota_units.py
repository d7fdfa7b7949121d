"""Money on today's IOTA network, and how a fullnode says it does not know a transaction.

Shared by the wallet (``iota_wallet``) and the read-only payment checks of
``verify`` (``iota_receipts``), which must not import the wallet's config.
"""

from __future__ import annotations

NANOS_PER_UNIT = 1_000  # one ledger unit = one micro-IOTA (legacy Mi -> IOTA, 6 -> 9 decimals)
NANOS_PER_IOTA = 1_000_000_000
IOTA_COIN = "0x2::iota::IOTA"  # the coin type of IOTA itself, as a fullnode writes it
# What a fullnode says of a digest it does not serve (never executed, pruned, or a
# replica that lags): JSON-RPC error -32602, this text, then the digest.
NOT_FOUND = "Could not find the referenced transaction"
