"""Storage: the ledger (writes, migrations), its reader (the one place that knows the
column names), and the lock that makes one process its only writer."""
