"""The one interface every power sensor implements."""

from __future__ import annotations

from typing import Protocol

from ..core.metering import Sample


class Sensor(Protocol):
    """A source of ``Sample``s. Implementations: ina3221, simulated, replay."""

    def open(self) -> None:
        """Prepare the sensor. Raises ``SensorError`` if it cannot be used at all."""

    def read(self, t: float) -> Sample:
        """Take one sample now; ``t`` is the monotonic time it is taken at.

        Raises:
            SensorReadError: this sample could not be taken (counted, skipped).
        """

    # Optional: ``warmup_s`` (float property), seconds before the first read can
    # succeed after ``open``; the daemon waits that long before its first sample.

    def describe(self) -> str:
        """A one-line description for logs and ``check`` (no secrets)."""

    def close(self) -> None:
        """Release the bus or file. Safe to call twice."""
