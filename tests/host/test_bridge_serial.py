"""Links over real pyserial ports (loop://, ptys) and the bridge surviving an unplug/replug."""

from __future__ import annotations

import os
import select
import time
import tty

import pytest
from bridge_fakestation import RS, FakeStation, StationEnd

from tagweigh import config as C
from tagweigh.bridge import Bridge
from tagweigh.keys import KeyRegistry
from tagweigh.link import Backoff, LinkLost, MemoryLink, SerialLink, open_link


class PtyStation:
    """The station side of a pty: the master end, with the Link read/write contract."""

    def __init__(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo or line editing before the bridge opens its end
        self.path = os.ttyname(self.slave)
        self.description = f"pty-master:{self.path}"

    def read(self, max_bytes: int, timeout: float) -> bytes:
        r, _, _ = select.select([self.master], [], [], timeout)
        return os.read(self.master, max_bytes) if r else b""

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def unplug(self) -> None:
        os.close(self.master)
        os.close(self.slave)


def test_memory_link_pair_and_unplug():
    a, b = MemoryLink.pair()
    a.write(b"hello")
    assert b.read(3, 0.1) == b"hel" and b.read(10, 0.1) == b"lo"
    assert b.read(10, 0.01) == b""
    b.write(b"x")
    b.close()
    assert a.read(10, 0.1) == b"x"  # what was sent before the unplug is still delivered
    with pytest.raises(LinkLost):
        a.read(10, 0.1)
    with pytest.raises(LinkLost):
        a.write(b"y")


def test_serial_link_over_pyserial_loop_url():
    link = open_link("loop://")
    try:
        link.write(b"\xa1\x00\x12abc")
        got = b""
        deadline = time.monotonic() + 2
        while len(got) < 6 and time.monotonic() < deadline:
            got += link.read(64, 0.05)
        assert got == b"\xa1\x00\x12abc"
        assert link.read(64, 0.01) == b""
    finally:
        link.close()


def test_opening_a_missing_port_is_link_lost():
    with pytest.raises(LinkLost) as exc:
        SerialLink("/dev/tagweigh-no-such-port")
    assert "/dev/tagweigh-no-such-port" in str(exc.value)


def test_pty_unplug_shows_as_link_lost_on_read():
    st = PtyStation()
    link = SerialLink(st.path)
    st.write(b"abc")
    assert link.read(10, 1.0) == b"abc"
    st.unplug()
    with pytest.raises(LinkLost):
        for _ in range(50):  # the hang-up may take a read or two to show
            link.read(10, 0.02)
    link.close()


def test_backoff_is_capped_exponential_with_jitter():
    b = Backoff(initial=0.1, cap=1.0, factor=2.0, jitter=0.5, rng=lambda: 1.0)
    assert [round(b.next_delay(), 3) for _ in range(6)] == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]
    b.reset()
    assert b.next_delay() == pytest.approx(0.05)
    full = Backoff(initial=0.1, cap=1.0, jitter=0.5, rng=lambda: 0.0)
    assert full.next_delay() == pytest.approx(0.1)
    with pytest.raises(ValueError):
        Backoff(initial=2.0, cap=1.0)


def test_bridge_resumes_after_the_station_is_unplugged_and_replugged(tmp_path):
    link_path = tmp_path / "ttyTAGWEIGH0"  # a stable name, like /dev/serial/by-id/...
    st1 = PtyStation()
    os.symlink(st1.path, link_path)
    cfg = C.from_dict({"bridge": {"ports": [str(link_path)], "metrics_listen": "", "status_interval_s": 3600,
                                  "reconnect_initial_s": 0.05, "reconnect_max_s": 0.2}}, None, tmp_path)
    keys = KeyRegistry(cfg.keys_path)
    key = keys.add(17, provisioned_at=1767225600)
    bridge = Bridge(cfg, keys=keys, ruleset=RS).start()
    try:
        station = FakeStation(17, key)
        end = StationEnd(st1, station)
        end.welcome()
        end.send(station.reading())
        end.collect(lambda fr: 1 in end.acked())
        st1.unplug()  # cable out: the device node goes, and udev removes its by-id name with it
        os.remove(link_path)  # (left in place, it could name a pty another process gets next)
        time.sleep(0.3)
        st2 = PtyStation()  # cable in: a new device node behind the same stable name
        os.symlink(st2.path, link_path)
        end2 = StationEnd(st2, station)
        end2.welcome(timeout=10)  # HELLO repeats until the bridge has reopened the port
        end2.send(station.reading())
        end2.collect(lambda fr: 2 in end2.acked())
        assert bridge.counters()["readings_stored"] == 2
        st2.unplug()
    finally:
        bridge.stop()


def test_discovery_filters_usb_ports_by_vid_pid_and_serial(monkeypatch):
    from serial.tools import list_ports, list_ports_common

    from tagweigh.bridge import discover_ports

    def port(dev, vid, pid, sn):
        p = list_ports_common.ListPortInfo(dev, skip_link_detection=True)
        p.vid, p.pid, p.serial_number = vid, pid, sn
        return p

    ports = [port("/dev/ttyUSB1", 0x10C4, 0xEA60, "0001A"), port("/dev/ttyUSB0", 0x10C4, 0xEA60, "0002B"),
             port("/dev/ttyACM0", 0x303A, 0x1001, "F4:12"), port("/dev/ttyS0", None, None, None)]
    monkeypatch.setattr(list_ports, "comports", lambda: ports)  # the OS's USB table, faked
    assert discover_ports(0x10C4, None, None) == ["/dev/ttyUSB0", "/dev/ttyUSB1"]
    assert discover_ports(0x10C4, 0xEA60, "0002") == ["/dev/ttyUSB0"]
    assert discover_ports(None, None, "F4:12") == ["/dev/ttyACM0"]
    assert discover_ports(0x1A86, None, None) == []
