"""What the TI INA3221 offers (datasheet SBOS576, tables 3 to 5): pure facts, no I/O.

Both ``config`` (which validates ``meter.averages`` and the conversion times)
and the driver in ``sensors/`` (which turns them into register codes) read these
tables; they live below both so that ``config`` need not import a sensor.
"""

from __future__ import annotations

# Each table is in the order of its 3-bit code in the configuration register:
# the code of a setting is its position.
AVERAGES = (1, 4, 16, 64, 128, 256, 512, 1024)  # AVG2..0
CONVERSION_US = (140, 204, 332, 588, 1100, 2116, 4156, 8244)  # VBUSCT / VSHCT, microseconds
