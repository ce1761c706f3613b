"""A fake ``machine`` module for CPython, wired to the hardware models (installed by install_fakes).

The API follows MicroPython's ESP32 port (Pin, Signal, SPI, SoftSPI, UART, I2C, SoftI2C, PWM,
disable_irq/enable_irq, WDT, Timer, RTC, ADC, unique_id, reset...). Behind the API sits a *bench*:
a table of electrical lines and buses keyed by the id the firmware uses, so ``Pin(16)`` built by the
board config and the HX711 model wired to pin 16 share one line, and ``SPI(1)`` built by the board
reaches every device attached to bus 1. ``reset_bench()`` gives a clean bench (tests, one simulated
station per process).

Model side of each object (not part of MicroPython):
- ``Line``: ``reader`` (a callable returning the level a device drives), ``listeners`` (called
  with the new level on every MCU write), ``fire(level)`` (device edge -> Pin.irq handlers).
- ``SPIBus.attach(device, cs_pin)``: the device gets ``select()``, ``exchange(byte) -> byte``,
  ``deselect()``. ``SPIBus.trace`` (a list, or None) records ``(cs_id, mosi, miso)`` per frame.
- ``UARTPort.attach(device)``: the device gets ``host_tx(data: bytes, baudrate: int)``; it sends
  with ``port.feed(data, baudrate=None)``. The RX buffer is bounded by ``rxbuf`` like the real
  driver: overflowing bytes are dropped and counted in ``port.overruns``.
- ``I2CBus.attach(addr, device)``: the device gets ``i2c_write(data)`` and ``i2c_read(n)``.
"""

from __future__ import annotations

import time as _time
from typing import Any, Callable

# -- the bench ------------------------------------------------------------------------------------


class Line:
    """One electrical net between the MCU pin and a device pin."""

    def __init__(self, ident: Any):
        self.id = ident
        self.level = 0  # last level the MCU drove
        self.driven = False  # True once the MCU drove it (output mode or a write)
        self.reader: Callable[[], int] | None = None
        self.listeners: list[Callable[[int], None]] = []
        self.pull: int | None = None
        self.writes = 0
        self._irqs: list[tuple[Callable[[Any], None], int, Any]] = []

    def read(self) -> int:
        if self.reader is not None:
            return 1 if self.reader() else 0
        if self.driven:
            return self.level
        return 1 if self.pull == Pin.PULL_UP else 0

    def write(self, level: int) -> None:
        self.level = 1 if level else 0
        self.driven = True
        self.writes += 1
        for fn in self.listeners:
            fn(self.level)

    def fire(self, level: int) -> None:
        """A device changed the level: run Pin.irq handlers whose trigger matches."""
        for handler, trigger, pin in list(self._irqs):
            if (level and trigger & Pin.IRQ_RISING) or (not level and trigger & Pin.IRQ_FALLING):
                handler(pin)


class SPIBus:
    def __init__(self, ident: Any):
        self.id = ident
        self.devices: list[tuple[Line, Any]] = []
        self.trace: list[tuple[Any, bytes, bytes]] | None = None
        self._frame: dict[int, tuple[bytearray, bytearray]] = {}
        self.baudrate = 0

    def attach(self, device: Any, cs: "Pin") -> None:
        line = cs._line
        self.devices.append((line, device))
        state = {"level": line.read() if line.driven else 1}

        def on_cs(level: int, device=device, line=line) -> None:
            if level == state["level"]:
                return
            state["level"] = level
            if level == 0:
                self._frame[id(device)] = (bytearray(), bytearray())
                device.select()
            else:
                device.deselect()
                mosi, miso = self._frame.pop(id(device), (bytearray(), bytearray()))
                if self.trace is not None and mosi:
                    self.trace.append((line.id, bytes(mosi), bytes(miso)))

        line.listeners.append(on_cs)

    def exchange(self, byte: int) -> int:
        out = 0xFF  # MISO idles high (pull-up) when nobody drives it
        for line, device in self.devices:
            if line.driven and line.level == 0:
                got = device.exchange(byte) & 0xFF
                out &= got  # two devices selected at once: bus contention, wired-AND
                frame = self._frame.get(id(device))
                if frame is not None:
                    frame[0].append(byte)
                    frame[1].append(got)
        return out


class UARTPort:
    def __init__(self, ident: Any):
        self.id = ident
        self.rx = bytearray()
        self.rxbuf = 256
        self.baudrate = 115200
        self.device: Any = None
        self.overruns = 0
        self.tx_log = bytearray()  # every byte the MCU wrote (bounded, newest kept)
        self.tx_log_max = 4096

    def attach(self, device: Any) -> None:
        self.device = device

    def feed(self, data: bytes, baudrate: int | None = None) -> None:
        """A device sends bytes to the MCU. A baud mismatch garbles them like a real UART does."""
        if baudrate is not None and baudrate != self.baudrate:
            data = _garble(bytes(data), baudrate, self.baudrate)
        room = self.rxbuf - len(self.rx)
        if len(data) > room:
            self.overruns += len(data) - max(room, 0)
            data = data[: max(room, 0)]
        self.rx += data

    def host_write(self, data: bytes) -> None:
        self.tx_log += data
        if len(self.tx_log) > self.tx_log_max:
            del self.tx_log[: len(self.tx_log) - self.tx_log_max]
        if self.device is not None:
            self.device.host_tx(bytes(data), self.baudrate)


def _garble(data: bytes, sent_baud: int, recv_baud: int) -> bytes:
    """Deterministic stand-in for sampling a frame at the wrong baud rate: wrong bytes, wrong count."""
    ratio = recv_baud / sent_baud
    out = bytearray()
    acc = 0.0
    for i, b in enumerate(data):
        acc += ratio
        while acc >= 1.0:
            acc -= 1.0
            out.append(((b * 0x9D) ^ (i * 0x3B) ^ 0xA5 | 0x80) & 0xFF)
    return bytes(out)


class I2CBus:
    def __init__(self, ident: Any):
        self.id = ident
        self.devices: dict[int, Any] = {}

    def attach(self, addr: int, device: Any) -> None:
        self.devices[addr] = device

    def device(self, addr: int) -> Any:
        dev = self.devices.get(addr)
        if dev is None:
            raise OSError(19, "ENODEV")  # what MicroPython raises when nobody ACKs the address
        return dev


class Bench:
    def __init__(self) -> None:
        self.lines: dict[Any, Line] = {}
        self.spi: dict[Any, SPIBus] = {}
        self.uart: dict[Any, UARTPort] = {}
        self.i2c: dict[Any, I2CBus] = {}
        self.irq_disabled = 0  # how many disable_irq() calls are not yet matched by enable_irq()
        self.irq_sections = 0
        self.unique_id = bytes.fromhex("240ac4a1b2c3")
        self.resets = 0

    def line(self, ident: Any) -> Line:
        if ident is None:
            return Line(None)  # an anonymous pin: not shared
        if ident not in self.lines:
            self.lines[ident] = Line(ident)
        return self.lines[ident]

    def spi_bus(self, ident: Any) -> SPIBus:
        return self.spi.setdefault(ident, SPIBus(ident))

    def uart_port(self, ident: Any) -> UARTPort:
        return self.uart.setdefault(ident, UARTPort(ident))

    def i2c_bus(self, ident: Any) -> I2CBus:
        return self.i2c.setdefault(ident, I2CBus(ident))


bench = Bench()


def reset_bench() -> Bench:
    global bench
    bench = Bench()
    return bench


# -- MicroPython API ------------------------------------------------------------------------------


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    PULL_HOLD = 4
    IRQ_RISING = 1
    IRQ_FALLING = 2
    WAKE_LOW = 4
    WAKE_HIGH = 5
    DRIVE_0, DRIVE_1, DRIVE_2, DRIVE_3 = 0, 1, 2, 3

    def __init__(self, id: Any, mode: int = -1, pull: int = -1, *, value: Any = None, **_kw: Any):
        self.id = id
        self._line = bench.line(id)
        self.mode: int | None = None
        self.init(mode, pull, value=value)

    def init(self, mode: int = -1, pull: int = -1, *, value: Any = None, **_kw: Any) -> None:
        if mode != -1:
            self.mode = mode
        if pull != -1:
            self._line.pull = pull
        if value is not None:
            self._line.write(value)
        elif self.mode in (Pin.OUT, Pin.OPEN_DRAIN) and not self._line.driven:
            self._line.write(0)

    def value(self, x: Any = None) -> int | None:
        if x is None:
            return self._line.read()
        self._line.write(1 if x else 0)
        return None

    __call__ = value

    def on(self) -> None:
        self._line.write(1)

    def off(self) -> None:
        self._line.write(0)

    high = on
    low = off

    def irq(self, handler: Any = None, trigger: int = IRQ_FALLING | IRQ_RISING, **_kw: Any) -> Any:
        self._line._irqs = [h for h in self._line._irqs if h[2] is not self]
        if handler is not None:
            self._line._irqs.append((handler, trigger, self))
        return self

    def __repr__(self) -> str:
        return "Pin(%r)" % (self.id,)


class Signal:
    def __init__(self, pin: Any, *args: Any, invert: bool = False, **kw: Any):
        self._pin = pin if isinstance(pin, Pin) else Pin(pin, *args, **kw)
        self._invert = invert

    def value(self, x: Any = None) -> int | None:
        if x is None:
            return (self._pin.value() or 0) ^ int(self._invert)
        self._pin.value((1 if x else 0) ^ self._invert)
        return None

    __call__ = value

    def on(self) -> None:
        self.value(1)

    def off(self) -> None:
        self.value(0)


class SPI:
    MSB = 0
    LSB = 1
    CONTROLLER = 0

    def __init__(self, id: Any, baudrate: int = 1_000_000, **kw: Any):
        self.id = id
        self._bus = bench.spi_bus(id)
        self.init(baudrate, **kw)

    @property
    def bus(self) -> SPIBus:
        return self._bus

    def init(self, baudrate: int = 1_000_000, **_kw: Any) -> None:
        self._bus.baudrate = baudrate

    def deinit(self) -> None:
        pass

    def write(self, buf: Any) -> None:
        for b in bytes(buf):
            self._bus.exchange(b)

    def read(self, nbytes: int, write: int = 0x00) -> bytes:
        return bytes(self._bus.exchange(write) for _ in range(nbytes))

    def readinto(self, buf: Any, write: int = 0x00) -> None:
        mv = memoryview(buf).cast("B")
        for i in range(len(mv)):
            mv[i] = self._bus.exchange(write)

    def write_readinto(self, write_buf: Any, read_buf: Any) -> None:
        src = bytes(write_buf)  # copy first: MicroPython allows the same buffer for both
        if len(src) != len(read_buf):
            raise ValueError("buffers must be the same length")
        dst = memoryview(read_buf).cast("B")
        for i, b in enumerate(src):
            dst[i] = self._bus.exchange(b)


SoftSPI = SPI


class UART:
    INV_TX = 1
    INV_RX = 2
    RTS = 1
    CTS = 2
    IRQ_RXIDLE = 4096

    def __init__(self, id: Any, baudrate: int = 115200, **kw: Any):
        self.id = id
        self._port = bench.uart_port(id)
        self.init(baudrate, **kw)

    @property
    def port(self) -> UARTPort:
        return self._port

    def init(self, baudrate: int | None = None, bits: int = 8, parity: Any = None, stop: int = 1,
             *, rxbuf: int | None = None, **_kw: Any) -> None:  # fmt: skip
        if baudrate is not None:
            self._port.baudrate = baudrate
        if rxbuf is not None:
            self._port.rxbuf = max(int(rxbuf), 1)

    def deinit(self) -> None:
        pass

    def any(self) -> int:
        return len(self._port.rx)

    def read(self, nbytes: int | None = None) -> bytes | None:
        rx = self._port.rx
        if not rx:
            return None  # timeout with no data, like MicroPython
        n = len(rx) if nbytes is None else min(nbytes, len(rx))
        out = bytes(rx[:n])
        del rx[:n]
        return out

    def readinto(self, buf: Any, nbytes: int | None = None) -> int | None:
        rx = self._port.rx
        if not rx:
            return None
        mv = memoryview(buf).cast("B")
        n = min(len(mv) if nbytes is None else nbytes, len(rx))
        mv[:n] = rx[:n]
        del rx[:n]
        return n

    def readline(self) -> bytes | None:
        rx = self._port.rx
        if not rx:
            return None
        i = rx.find(b"\n")
        n = len(rx) if i < 0 else i + 1
        out = bytes(rx[:n])
        del rx[:n]
        return out

    def write(self, buf: Any) -> int:
        data = bytes(buf)
        self._port.host_write(data)
        return len(data)

    def flush(self) -> None:
        pass

    def txdone(self) -> bool:
        return True

    def sendbreak(self) -> None:
        pass


class I2C:
    def __init__(self, id: Any = 0, *, scl: Any = None, sda: Any = None, freq: int = 400_000,
                 **_kw: Any):  # fmt: skip
        self.id = id
        self._bus = bench.i2c_bus(id)
        self.freq = freq

    @property
    def bus(self) -> I2CBus:
        return self._bus

    def scan(self) -> list[int]:
        return sorted(self._bus.devices)

    def writeto(self, addr: int, buf: Any, stop: bool = True) -> int:
        data = bytes(buf)
        self._bus.device(addr).i2c_write(data)
        return len(data)

    def writevto(self, addr: int, vector: Any, stop: bool = True) -> int:
        data = b"".join(bytes(v) for v in vector)
        self._bus.device(addr).i2c_write(data)
        return len(data)

    def readfrom(self, addr: int, nbytes: int, stop: bool = True) -> bytes:
        return bytes(self._bus.device(addr).i2c_read(nbytes))

    def readfrom_into(self, addr: int, buf: Any, stop: bool = True) -> None:
        mv = memoryview(buf).cast("B")
        mv[:] = self.readfrom(addr, len(mv))

    def writeto_mem(self, addr: int, memaddr: int, buf: Any, *, addrsize: int = 8) -> None:
        self._bus.device(addr).i2c_write(memaddr.to_bytes(addrsize // 8, "big") + bytes(buf))

    def readfrom_mem(self, addr: int, memaddr: int, nbytes: int, *, addrsize: int = 8) -> bytes:
        dev = self._bus.device(addr)
        dev.i2c_write(memaddr.to_bytes(addrsize // 8, "big"))
        return bytes(dev.i2c_read(nbytes))

    def readfrom_mem_into(self, addr: int, memaddr: int, buf: Any, *, addrsize: int = 8) -> None:
        mv = memoryview(buf).cast("B")
        mv[:] = self.readfrom_mem(addr, memaddr, len(mv), addrsize=addrsize)


SoftI2C = I2C


class PWM:
    """PWM on a pin. The pin's line reads 1 while duty > 0; ``history`` keeps (freq, duty_u16)."""

    def __init__(self, dest: Any, *, freq: int = 5000, duty_u16: int | None = None,
                 duty_ns: int | None = None, **_kw: Any):  # fmt: skip
        self._pin = dest if isinstance(dest, Pin) else Pin(dest, Pin.OUT)
        self._freq = freq
        self._duty = 0
        self.history: list[tuple[int, int]] = []
        self.init(freq=freq, duty_u16=duty_u16, duty_ns=duty_ns)

    @property
    def pin(self) -> Pin:
        return self._pin

    def init(self, *, freq: int | None = None, duty_u16: int | None = None,
             duty_ns: int | None = None, **_kw: Any) -> None:  # fmt: skip
        if freq is not None:
            self._freq = freq
        if duty_u16 is not None:
            self.duty_u16(duty_u16)
        elif duty_ns is not None:
            self.duty_ns(duty_ns)

    def freq(self, value: int | None = None) -> int | None:
        if value is None:
            return self._freq
        self._freq = value
        self.history.append((self._freq, self._duty))
        return None

    def duty_u16(self, value: int | None = None) -> int | None:
        if value is None:
            return self._duty
        self._duty = max(0, min(int(value), 65535))
        self.history.append((self._freq, self._duty))
        self._pin._line.write(1 if self._duty else 0)
        return None

    def duty_ns(self, value: int | None = None) -> int | None:
        period_ns = 1_000_000_000 // max(self._freq, 1)
        if value is None:
            return self._duty * period_ns // 65535
        return self.duty_u16(min(int(value) * 65535 // period_ns, 65535))

    def duty(self, value: int | None = None) -> int | None:  # ESP32 10-bit API
        if value is None:
            return self._duty >> 6
        return self.duty_u16(int(value) << 6)

    def deinit(self) -> None:
        self.duty_u16(0)


class ADC:
    ATTN_0DB, ATTN_2_5DB, ATTN_6DB, ATTN_11DB = 0, 1, 2, 3

    def __init__(self, pin: Any, **_kw: Any):
        self.pin = pin
        self.level_u16 = 0  # a model or test sets it

    def read_u16(self) -> int:
        return self.level_u16

    def read_uv(self) -> int:
        return self.level_u16 * 3_300_000 // 65535

    def atten(self, _a: int) -> None:
        pass


class WDT:
    """The watchdog: ``expired()`` tells a simulator that the app stopped feeding it in time."""

    def __init__(self, id: int = 0, timeout: int = 5000):
        self.timeout_ms = timeout
        self.feeds = 0
        self.last_feed = _time.monotonic()

    def feed(self) -> None:
        self.feeds += 1
        self.last_feed = _time.monotonic()

    def expired(self, now: float | None = None) -> bool:
        now = _time.monotonic() if now is None else now
        return (now - self.last_feed) * 1000 > self.timeout_ms


class Timer:
    """Accepts the API; never fires by itself (the simulator drives time explicitly)."""

    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id: int = 0, **kw: Any):
        self.id = id
        self.callback: Any = None
        if kw:
            self.init(**kw)

    def init(self, *, mode: int = PERIODIC, period: int = -1, freq: float = -1,
             callback: Any = None, **_kw: Any) -> None:  # fmt: skip
        self.mode, self.period, self.callback = mode, period, callback

    def deinit(self) -> None:
        self.callback = None


class RTC:
    def __init__(self, id: int = 0):
        self._offset = 0.0
        self._memory = b""

    def datetime(self, dt: Any = None) -> Any:
        if dt is None:
            t = _time.gmtime(_time.time() + self._offset)
            return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_wday, t.tm_hour, t.tm_min, t.tm_sec, 0)
        y, mo, d, _wd, h, mi, s = dt[:7]
        import calendar

        self._offset = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) - _time.time()
        return None

    init = datetime

    def memory(self, data: Any = None) -> Any:
        if data is None:
            return self._memory
        self._memory = bytes(data)[:2048]
        return None


class MachineReset(BaseException):
    """machine.reset() on the host: a BaseException, so ``except Exception`` cannot swallow it."""


PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5
PIN_WAKE = EXT0_WAKE = 2
_reset_cause = PWRON_RESET
_freq = 160_000_000


def disable_irq() -> int:
    state = bench.irq_disabled
    bench.irq_disabled += 1
    bench.irq_sections += 1
    return state


def enable_irq(state: int) -> None:
    bench.irq_disabled = state


def unique_id() -> bytes:
    return bench.unique_id


def reset() -> None:
    bench.resets += 1
    raise MachineReset("machine.reset()")


def soft_reset() -> None:
    raise MachineReset("machine.soft_reset()")


def reset_cause() -> int:
    return _reset_cause


def freq(hz: int | None = None) -> int | None:
    global _freq
    if hz is None:
        return _freq
    _freq = hz
    return None


def idle() -> None:
    pass


def lightsleep(time_ms: int | None = None) -> None:
    if time_ms:
        _time.sleep(time_ms / 1000)


def deepsleep(time_ms: int | None = None) -> None:
    raise MachineReset("machine.deepsleep()")


def time_pulse_us(pin: Pin, pulse_level: int, timeout_us: int = 1_000_000) -> int:
    return -1  # no pulse seen in time (the fake has no timeline for arbitrary pins)
