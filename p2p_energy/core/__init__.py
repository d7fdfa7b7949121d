"""The pure core: metering, pricing, tryte arithmetic. No I/O, no clock, no threads:
functions of samples and monotonic timestamps, imported by every layer above."""
