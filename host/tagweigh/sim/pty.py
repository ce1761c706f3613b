"""Pseudo-terminal plumbing for simulated stations.

The supervisor owns the pty: the master end is the station's UART/USB side, the slave path is
what the bridge opens. Like a USB-UART bridge chip (CP210x, CH340) that stays enumerated while
the ESP32 behind it reboots, the path stays valid across a simulated power cut.
"""

from __future__ import annotations

import errno
import os
import select
import termios
import tty

from tagweigh.errors import TagweighError


class PtyError(TagweighError):
    """The pseudo-terminal could not be created or used."""


def open_pty() -> tuple[int, str]:
    """Create a raw pty pair. Returns (master_fd, slave_path); the slave stays open here too,
    so the master never reads EIO while no bridge has the port open."""
    try:
        master, slave = os.openpty()
    except OSError as exc:  # pragma: no cover - depends on the OS limits
        raise PtyError(f"cannot create a pseudo-terminal: {exc}") from exc
    tty.setraw(slave)
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~termios.ECHO
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    os.set_blocking(master, False)
    path = os.ttyname(slave)
    # Keep `slave` open for the life of the process (see docstring); it is inherited by nobody.
    _KEEP.append(slave)
    return master, path


_KEEP: list[int] = []


class FdStream:
    """A non-blocking byte stream over a file descriptor, with the MicroPython UART/stream
    methods the firmware link uses: ``any()``, ``read(n)``, ``readinto(buf)``, ``write(b)``."""

    def __init__(self, fd: int, *, write_timeout_s: float = 1.0):
        self.fd = fd
        self.write_timeout_s = write_timeout_s
        self.connected = True  # False: the cable to the bridge is pulled (see set_connected)
        os.set_blocking(fd, False)

    def set_connected(self, up: bool) -> None:
        """Pull or plug the cable between the station and the bridge. While pulled, what the
        station sends is lost (a UART with nobody listening) and nothing arrives; bytes the bridge
        wrote meanwhile are discarded when the cable comes back."""
        if up and not self.connected:
            while True:
                try:
                    if not os.read(self.fd, 4096):
                        break
                except (BlockingIOError, OSError):
                    break
        self.connected = up

    def any(self) -> int:
        if not self.connected:
            return 0
        readable, _, _ = select.select([self.fd], [], [], 0)
        return 1 if readable else 0

    def read(self, n: int = 256) -> bytes | None:
        if not self.connected:
            return None
        try:
            data = os.read(self.fd, n)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno == errno.EIO:  # nobody on the other side
                return None
            raise
        return data or None

    def readinto(self, buf, n: int | None = None) -> int | None:
        want = len(buf) if n is None else min(n, len(buf))
        data = self.read(want)
        if not data:
            return None
        buf[: len(data)] = data
        return len(data)

    def write(self, data) -> int:
        """Write everything or raise after ``write_timeout_s`` (the pty buffer is full because
        nobody reads the other end: a real UART would drop bytes; we drop the rest and say so)."""
        view = memoryview(data)
        if not self.connected:
            return len(view)  # sent into a pulled cable: gone
        total = 0
        while total < len(view):
            try:
                total += os.write(self.fd, view[total:])
            except BlockingIOError:
                _, writable, _ = select.select([], [self.fd], [], self.write_timeout_s)
                if not writable:
                    return total  # like a UART with no reader: bytes are lost, the caller resends
        return total

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass
