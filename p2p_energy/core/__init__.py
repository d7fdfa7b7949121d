"""The pure core: functions of data only, no I/O, no clock, no threads.

``metering``: the sampling schedule and energy per round; ``pricing``: price,
night cap, amounts and carry; ``trytes``: the legacy network's tryte arithmetic.
``tlog``: the RFC 6962 Merkle tree of the signed log and its proofs.
``note``: C2SP signed notes and tlog checkpoints with Ed25519 (Go ``note`` keys).
``entries``: the log's entries in RFC 8785 canonical JSON, and the price rule a
verifier recomputes them with. ``export``: a log export file (a checkpoint and
its entries), written and read streaming.

Whatever reads files, talks to a network or asks the time passes the results in.
"""
