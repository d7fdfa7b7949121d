"""Wallets behind one interface (``base.Wallet``): dry-run and PyOTA."""
