"""``p2p-energy verify``: the neighbour checks the consumer's signed log.

``sources`` reads the log (the consumer's ``serve`` over HTTP, or an export
file); ``run`` checks the checkpoint, the history and every new entry
(``audit``), names an entry that does not fit the signed root (``locate``);
``state`` keeps what was verified between runs; ``report`` writes the
statement. Payments are looked up on their network by ``wallet.receipts``.

The neighbour has no ledger and no consumer config: this package imports
neither ``store``, ``runtime``, ``serve``, ``sensors`` nor ``config``.
"""
