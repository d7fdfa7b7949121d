"""Peer-to-peer solar energy metering settled in IOTA."""
__version__ = "0.1.0"
