"""Byte links between the bridge and a station.

A `Link` moves raw bytes and knows nothing about frames. Three implementations share the
interface: `SerialLink` (pyserial: device paths and every `serial_for_url` scheme, so
``loop://``, ``socket://``, ``rfc2217://`` and ``spy://`` work unchanged), `MemoryLink` (an
in-process pair for tests and benchmarks) and the simulator's pty (a real serial device path).

A station being unplugged, or rebooting with its USB bridge, is normal: pyserial has no hot-plug
events, an unplugged device only shows up as an exception on read or write. Every such exception
becomes `LinkLost`; the caller closes the link, waits a `Backoff` delay and opens it again.
"""

from __future__ import annotations

import random
import threading
from typing import Callable

from tagweigh.errors import TagweighError

__all__ = [
    "Backoff",
    "Link",
    "LinkError",
    "LinkLost",
    "MemoryLink",
    "SerialLink",
    "open_link",
]


class LinkError(TagweighError):
    """A link could not be used."""


class LinkLost(LinkError):
    """The device went away (unplugged, rebooted, closed by the peer) or cannot be opened now."""


class Link:
    """Interface of a byte link. Reads return what is available, never wait past the timeout."""

    description = "link"

    def read(self, max_bytes: int, timeout: float) -> bytes:
        """Up to max_bytes bytes; returns as soon as at least one byte is there, b"" on timeout.
        Raises LinkLost when the device is gone."""
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        """Send all of data. Raises LinkLost when the device is gone."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"


class SerialLink(Link):
    """A pyserial port: a device path (``/dev/ttyUSB0``, a pty) or any pyserial URL."""

    def __init__(self, url: str, baudrate: int = 115200, write_timeout: float = 2.0):
        import serial  # pyserial; imported here so the module loads without it for tests of others

        self.description = url
        self._serial_mod = serial
        self._timeout = 0.05
        try:
            self._port = serial.serial_for_url(
                url, baudrate=baudrate, timeout=self._timeout, write_timeout=write_timeout
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkLost(f"cannot open {url}: {exc}") from exc

    def read(self, max_bytes: int, timeout: float) -> bytes:
        port = self._port
        try:
            waiting = port.in_waiting
            if waiting:
                return port.read(min(waiting, max_bytes))
            if timeout != self._timeout:
                # Changing the timeout reconfigures a real port (tcsetattr), so only when it differs.
                port.timeout = self._timeout = timeout
            first = port.read(1)
            if not first or max_bytes == 1:
                return first
            waiting = port.in_waiting
            return first + port.read(min(waiting, max_bytes - 1)) if waiting else first
        except (self._serial_mod.SerialException, OSError, TypeError, AttributeError) as exc:
            # TypeError/AttributeError: pyserial's posix backend after the fd was closed under it.
            raise LinkLost(f"{self.description}: read failed: {exc}") from exc

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
        except (self._serial_mod.SerialException, OSError, TypeError, AttributeError) as exc:
            raise LinkLost(f"{self.description}: write failed: {exc}") from exc

    def close(self) -> None:
        try:
            self._port.close()
        except (self._serial_mod.SerialException, OSError):
            pass


def open_link(url: str, baudrate: int = 115200) -> Link:
    """Open a serial port or pyserial URL as a Link (raises LinkLost if it is not there now)."""
    return SerialLink(url, baudrate=baudrate)


class _Pipe:
    """One direction of a MemoryLink: a byte buffer with a condition variable, bounded."""

    def __init__(self, limit: int):
        self.buf = bytearray()
        self.cond = threading.Condition()
        self.closed = False
        self.limit = limit


class MemoryLink(Link):
    """In-process link. `MemoryLink.pair()` gives two connected ends (bridge side, station side).

    Writes block while the peer's unread bytes exceed `limit` (as a real UART would apply
    backpressure through its driver buffer). `close()` on either end makes the other end's reads
    and writes raise LinkLost, which models an unplugged cable.
    """

    def __init__(self, rx: _Pipe, tx: _Pipe, description: str):
        self._rx = rx
        self._tx = tx
        self.description = description

    @classmethod
    def pair(cls, name: str = "mem", limit: int = 1 << 20) -> tuple["MemoryLink", "MemoryLink"]:
        a_to_b, b_to_a = _Pipe(limit), _Pipe(limit)
        return cls(b_to_a, a_to_b, f"memory://{name}/bridge"), cls(a_to_b, b_to_a, f"memory://{name}/station")

    def read(self, max_bytes: int, timeout: float) -> bytes:
        rx = self._rx
        with rx.cond:
            if not rx.buf:
                if rx.closed:
                    raise LinkLost(f"{self.description}: closed")
                rx.cond.wait_for(lambda: rx.buf or rx.closed, timeout)
                if not rx.buf:
                    if rx.closed:
                        raise LinkLost(f"{self.description}: closed")
                    return b""
            data = bytes(rx.buf[:max_bytes])
            del rx.buf[:max_bytes]
            rx.cond.notify_all()
            return data

    def write(self, data: bytes) -> None:
        tx = self._tx
        with tx.cond:
            while True:
                if tx.closed:
                    raise LinkLost(f"{self.description}: closed")
                if len(tx.buf) < tx.limit:
                    break
                tx.cond.wait(0.5)
            tx.buf += data
            tx.cond.notify_all()

    def pending(self) -> int:
        """Bytes written to this end's peer and not yet read (for tests and benchmarks)."""
        with self._tx.cond:
            return len(self._tx.buf)

    def close(self) -> None:
        for pipe in (self._rx, self._tx):
            with pipe.cond:
                pipe.closed = True
                pipe.cond.notify_all()


class Backoff:
    """Capped exponential backoff with jitter, for reopening a lost device.

    Delays go initial, initial*factor, ... up to cap, each multiplied by a random factor in
    [1 - jitter, 1] so that many bridges (or ports) that lost power together do not retry in step.
    """

    def __init__(
        self,
        initial: float = 0.2,
        cap: float = 10.0,
        factor: float = 2.0,
        jitter: float = 0.3,
        rng: Callable[[], float] = random.random,
    ):
        if not (0 < initial <= cap) or factor < 1 or not (0 <= jitter < 1):
            raise ValueError("Backoff needs 0 < initial <= cap, factor >= 1, 0 <= jitter < 1")
        self.initial, self.cap, self.factor, self.jitter = initial, cap, factor, jitter
        self._rng = rng
        self._next = initial

    def next_delay(self) -> float:
        base = self._next
        self._next = min(self.cap, self._next * self.factor)
        return base * (1.0 - self.jitter * self._rng())

    def reset(self) -> None:
        self._next = self.initial
