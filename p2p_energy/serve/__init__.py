"""Showing the ledger: dashboard, JSON API, /metrics, MQTT for Home Assistant, statements.

A separate process (``p2p-energy serve``) and separate commands (``statement``,
``ledger --csv``) that only read the ledger. It imports the ledger's read API
and the config, nothing of the daemon, and the daemon never imports it.
Heavy imports (prometheus_client, paho) are made only by the modules that need them.
"""
