"""An emulated INA3221 behind a fake Linux i2c-dev, beneath the real smbus2.

Like smbus2's own tests, this replaces only what smbus2 hands to the kernel:
``os.open``/``os.close`` of ``/dev/i2c-N`` and ``ioctl`` (smbus2 does
``from fcntl import ioctl``, so the name patched is ``smbus2.smbus2.ioctl``).
The real ``smbus2.SMBus`` code builds its ctypes structs and this module
decodes them, so byte order and transfer kinds are what a Pi would see.

Nothing here imports the driver: the chip's register map is written again
from the datasheet so that a mistake in the driver cannot cancel itself out.
"""

from __future__ import annotations

import ctypes
import errno
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import smbus2.smbus2 as smbus2_impl

# uapi/linux/i2c-dev.h and i2c.h
I2C_SLAVE, I2C_SLAVE_FORCE, I2C_FUNCS, I2C_RDWR, I2C_SMBUS = 0x0703, 0x0706, 0x0705, 0x0707, 0x0720
SMBUS_WRITE, SMBUS_READ = 0, 1
SMBUS_BYTE_DATA, SMBUS_WORD_DATA, SMBUS_I2C_BLOCK_DATA = 2, 3, 8
I2C_M_RD = 0x0001
# What i2c-bcm2835 reports: plain I2C plus SMBus emulation.
ADAPTER_FUNCS = 0x0EFF0009
I2C_RDWR_IOCTL_MAX_MSGS = 42  # uapi/linux/i2c-dev.h
I2C_MSG_MAX_LEN = 8192  # i2c-dev.c, i2cdev_ioctl_rdwr: "if (msgs[i].len > 8192)"

SHUNT_LSB_V = 40e-6
BUS_LSB_V = 8e-3
CODE_MAX = 4095  # 13-bit two's complement, clipped at full scale
POWER_ON_CONFIG = 0x7127
AVERAGES = (1, 4, 16, 64, 128, 256, 512, 1024)
CONVERSION_US = (140, 204, 332, 588, 1100, 2116, 4156, 8244)


def _clip(code: int) -> int:
    return max(-CODE_MAX, min(CODE_MAX, code))


def _adc(volts: float, lsb_v: float) -> int:
    """An ideal ADC: nearest code, clipped at full scale."""
    return _clip(math.floor(volts / lsb_v + 0.5))


class INA3221Chip:
    """The chip: register file, ID registers, configuration, conversions.

    ``set_input`` programs what the circuit does on a channel (current through
    the board's shunt, voltage at the load); the chip converts it into its
    registers only while that channel is enabled and the mode measures it.
    """

    def __init__(self, shunt_ohms: tuple[float, float, float] = (0.1, 0.1, 0.1), *,
                 manufacturer_id: int = 0x5449, die_id: int = 0x3220) -> None:
        self.shunt_ohms = shunt_ohms
        self.ids = {0xFE: manufacturer_id, 0xFF: die_id}
        self.inputs: dict[int, tuple[float, float]] = {}
        self.config_writes: list[int] = []
        self.power_cycle()

    def power_cycle(self) -> None:
        """Power-on reset: default configuration, measurement registers zero."""
        self.config = POWER_ON_CONFIG
        self.registers = dict.fromkeys(range(0x01, 0x07), 0)
        self.pointer = 0

    # -- the circuit ------------------------------------------------------------

    def set_input(self, channel: int, current_ma: float, load_v: float) -> None:
        """Current through the channel's shunt (mA) and the load-side voltage (V)."""
        self.inputs[channel] = (current_ma, load_v)
        self._convert()

    def set_register(self, address: int, word: int) -> None:
        """Force a raw register value (for byte-order and sign tests)."""
        self.registers[address] = word & 0xFFFF

    # -- decoded configuration (independent of the driver) ------------------------

    @property
    def enabled_channels(self) -> set[int]:
        return {ch for ch, bit in ((1, 14), (2, 13), (3, 12)) if self.config >> bit & 1}

    @property
    def averages(self) -> int:
        return AVERAGES[self.config >> 9 & 7]

    @property
    def bus_conversion_us(self) -> int:
        return CONVERSION_US[self.config >> 6 & 7]

    @property
    def shunt_conversion_us(self) -> int:
        return CONVERSION_US[self.config >> 3 & 7]

    @property
    def mode(self) -> int:
        return self.config & 7

    # -- the wire ---------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """An I2C write: register pointer, then (for a register write) MSB, LSB."""
        self.pointer = data[0]
        if len(data) >= 3:
            self._write_register(self.pointer, data[1] << 8 | data[2])

    def read(self, length: int) -> bytes:
        """An I2C read from the pointer: MSB first; the pointer does not advance."""
        word = self._read_register(self.pointer)
        return bytes([word >> 8, word & 0xFF] * (length // 2 + 1))[:length]

    def _read_register(self, address: int) -> int:
        if address == 0x00:
            return self.config
        if address in self.ids:
            return self.ids[address]
        return self.registers.get(address, 0)

    def _write_register(self, address: int, word: int) -> None:
        if address != 0x00:
            return  # measurement and ID registers are read-only
        self.config_writes.append(word)
        if word & 0x8000:
            self.power_cycle()
        else:
            self.config = word
        self._convert()

    def _convert(self) -> None:
        shunt, bus = self.mode & 1, self.mode & 2
        for channel in self.enabled_channels:
            if channel not in self.inputs:
                continue
            current_ma, load_v = self.inputs[channel]
            shunt_v = current_ma / 1000 * self.shunt_ohms[channel - 1]
            if shunt:
                self.registers[2 * channel - 1] = _adc(shunt_v, SHUNT_LSB_V) << 3 & 0xFFFF
            if bus:
                self.registers[2 * channel] = _adc(load_v, BUS_LSB_V) << 3 & 0xFFFF


@dataclass
class Transfer:
    """One transfer the fake kernel saw: ioctl kind, read/write, register, bytes."""

    kind: str
    read_write: str
    register: int
    data: bytes


@dataclass
class FakeI2CAdapter:
    """The kernel side of ``/dev/i2c-<bus>``: routes smbus2's ioctls to chips.

    Faults: ``absent`` addresses answer nothing (``nack_errno``, ENXIO by
    default); ``fail_every`` makes every Nth transfer fail with ``fail_errno``;
    ``claimed`` addresses are bound to a kernel driver (EBUSY); ``missing``
    means there is no such device node, ``denied`` no permission; ``no_rdwr``
    is an SMBus-only adapter (I2C_RDWR answers EOPNOTSUPP).

    ``I2C_RDWR`` is as strict as the Pi's adapter, i2c-bcm2835 (see
    ``_refuse``): a transfer it refuses raises, touches no chip and is
    counted in ``refused``.
    """

    chips: dict[int, INA3221Chip]
    bus: int = 1
    absent: set[int] = field(default_factory=set)
    nack_errno: int = errno.ENXIO
    fail_every: int = 0
    no_rdwr: bool = False
    fail_errno: int = errno.EIO
    claimed: set[int] = field(default_factory=set)
    missing: bool = False
    denied: bool = False
    transfers: int = 0
    faults_fired: int = 0
    refused: int = 0  # I2C_RDWR transfers refused as i2c-dev and i2c-bcm2835 refuse them
    log: list[Transfer] = field(default_factory=list)
    opens: int = 0
    fds: dict[int, int | None] = field(default_factory=dict)  # fd -> selected address

    @property
    def path(self) -> str:
        return f"/dev/i2c-{self.bus}"

    @contextmanager
    def installed(self) -> Iterator[FakeI2CAdapter]:
        """Patch os.open, os.close and smbus2's ioctl for the duration."""
        real_open, real_close, real_ioctl = os.open, os.close, smbus2_impl.ioctl

        def fake_open(path: str, flags: int, *args: int, **kwargs: int) -> int:
            if path != self.path:
                return real_open(path, flags, *args, **kwargs)
            if self.missing:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
            if self.denied:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
            fd = real_open(os.devnull, os.O_RDONLY)  # a real, unique descriptor number
            self.fds[fd] = None
            self.opens += 1
            return fd

        def fake_close(fd: int) -> None:
            self.fds.pop(fd, None)
            real_close(fd)

        os.open, os.close, smbus2_impl.ioctl = fake_open, fake_close, self.ioctl
        try:
            yield self
        finally:
            os.open, os.close, smbus2_impl.ioctl = real_open, real_close, real_ioctl

    # -- ioctl ------------------------------------------------------------------

    def ioctl(self, fd: int, request: int, arg: object = 0) -> int:
        if fd not in self.fds:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        if request == I2C_FUNCS:
            arg.value = ADAPTER_FUNCS  # type: ignore[attr-defined]
        elif request in (I2C_SLAVE, I2C_SLAVE_FORCE):
            self._select(fd, int(arg), force=request == I2C_SLAVE_FORCE)  # type: ignore[call-overload]
        elif request == I2C_SMBUS:
            self._smbus(self._chip(self.fds[fd]), arg)  # type: ignore[arg-type]
        elif request == I2C_RDWR:
            self._rdwr(arg)  # type: ignore[arg-type]
        else:
            raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))
        return 0

    def _select(self, fd: int, address: int, *, force: bool) -> None:
        if not 0 <= address <= 0x7F:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        if address in self.claimed and not force:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        self.fds[fd] = address

    def _chip(self, address: int | None, *, transfer: bool = True) -> INA3221Chip:
        """The chip that ACKs ``address``, after fault injection (once per transfer:
        an I2C_RDWR of several messages is one transfer)."""
        if transfer:
            self.transfers += 1
            if self.fail_every and self.transfers % self.fail_every == 0:
                self.faults_fired += 1
                raise OSError(self.fail_errno, os.strerror(self.fail_errno))
        if address is None:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        if address in self.absent or address not in self.chips:
            raise OSError(self.nack_errno, os.strerror(self.nack_errno))
        return self.chips[address]

    def _smbus(self, chip: INA3221Chip, msg: smbus2_impl.i2c_smbus_ioctl_data) -> None:
        data = msg.data.contents
        reg, size = msg.command, msg.size
        reading = msg.read_write == SMBUS_READ
        if size == SMBUS_I2C_BLOCK_DATA:
            length = data.block[0]
            if not 1 <= length <= 32:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            if reading:
                chip.write(bytes([reg]))
                wire = chip.read(length)
                data.block[1:length + 1] = list(wire)
            else:
                wire = bytes(data.block[1:length + 1])
                chip.write(bytes([reg]) + wire)
        elif size == SMBUS_WORD_DATA:  # SMBus sends a word's low byte first
            if reading:
                chip.write(bytes([reg]))
                wire = chip.read(2)
                data.word = wire[0] | wire[1] << 8
            else:
                wire = bytes([data.word & 0xFF, data.word >> 8])
                chip.write(bytes([reg]) + wire)
        elif size == SMBUS_BYTE_DATA and reading:
            chip.write(bytes([reg]))
            wire = chip.read(1)
            data.byte = wire[0]
        else:
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
        kinds = {SMBUS_I2C_BLOCK_DATA: "i2c_block", SMBUS_WORD_DATA: "word",
                 SMBUS_BYTE_DATA: "byte"}
        self.log.append(Transfer(kinds[size], "r" if reading else "w", reg, wire))

    def _rdwr(self, arg: smbus2_impl.i2c_rdwr_ioctl_data) -> None:
        code = self._refuse(arg)
        if code:
            self.refused += 1
            raise OSError(code, os.strerror(code))
        for i in range(arg.nmsgs):
            msg = arg.msgs[i]
            chip = self._chip(msg.addr, transfer=i == 0)
            if msg.flags & I2C_M_RD:
                wire = chip.read(msg.len)
                ctypes.memmove(msg.buf, wire, msg.len)
                self.log.append(Transfer("rdwr", "r", chip.pointer, wire))
            elif msg.len:
                wire = ctypes.string_at(msg.buf, msg.len)
                chip.write(wire)
                self.log.append(Transfer("rdwr", "w", wire[0], wire[1:]))

    def _refuse(self, arg: smbus2_impl.i2c_rdwr_ioctl_data) -> int:
        """The errno the kernel answers this I2C_RDWR with, having done nothing to a chip; or 0.

        From Linux drivers/i2c/i2c-dev.c (i2cdev_ioctl, i2cdev_ioctl_rdwr) and
        drivers/i2c/busses/i2c-bcm2835.c (bcm2835_i2c_xfer, bcm2835_i2c_isr).
        """
        n = arg.nmsgs
        if n == 0 or n > I2C_RDWR_IOCTL_MAX_MSGS:  # i2cdev_ioctl
            return errno.EINVAL
        msgs = [arg.msgs[i] for i in range(n)]
        if any(m.len > I2C_MSG_MAX_LEN for m in msgs):  # i2cdev_ioctl_rdwr
            return errno.EINVAL
        if self.no_rdwr:  # an adapter without master_xfer: __i2c_transfer says EOPNOTSUPP
            return errno.EOPNOTSUPP
        # bcm2835_i2c_xfer: "only one read message supported, has to be last".
        if any(m.flags & I2C_M_RD for m in msgs[:-1]):
            return errno.EOPNOTSUPP
        # bcm2835_i2c_isr moves on to the next message only after filling the FIFO
        # with the current one (TXW); a zero-length write before another message
        # leaves it nothing to fill, which it reports as BCM2835_I2C_S_LEN -> EIO.
        # (A zero-length message last, e.g. an SMBus quick write, is fine.)
        if any(m.len == 0 for m in msgs[:-1]):
            return errno.EIO
        # The adapter's quirks (I2C_AQ_NO_CLK_STRETCH only) limit no length or count.
        return 0
