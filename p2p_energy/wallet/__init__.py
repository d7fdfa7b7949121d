"""Wallets behind one interface (``base.Wallet``), one descriptor per backend
(``base.Backend``, registered in ``backends``): iota, pyota, dry-run."""
