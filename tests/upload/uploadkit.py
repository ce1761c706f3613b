"""Helpers shared by the upload tests (imported by basename: tests/ has no packages)."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

from tagweigh.keys import KeyRegistry
from tagweigh.queue import Queue
from tagweigh.receiver import ReceiverHandler, ReceiverStore, make_server
from tagweigh.upload.testbed import fill_queue

REPO_ROOT = Path(__file__).resolve().parents[2]
EPCIS_REF = REPO_ROOT.parent / "shared" / "reference" / "epcis"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


class Depot:
    def __init__(self, root: Path):
        self.root = root
        self.queue = Queue(root / "queue.sqlite3")
        self.keys = KeyRegistry(root / "keys.json")
        self.export = root / "receiver-keys.json"

    def fill(self, **kw: Any) -> list:
        stations = fill_queue(self.queue, self.keys, **kw)
        self.keys.export_keys(self.export)
        return stations


class Receiver:
    """A reference receiver on 127.0.0.1; `start(handler=...)` (re)starts it, same port."""

    def __init__(self, root: Path, keys_path: Path):
        self.root = root
        self.keys_path = keys_path
        self.store: ReceiverStore | None = None
        self.server = None
        self.port = 0

    def start(self, handler: type = ReceiverHandler, **kw: Any) -> "Receiver":
        if self.store is None:
            self.store = ReceiverStore(self.root / "receiver.sqlite3", KeyRegistry(self.keys_path, create=False))
        self.server = make_server(self.store, port=self.port, handler=handler, **kw).start()
        self.port = self.server.server_address[1]
        return self

    @property
    def url(self) -> str:
        return self.server.url + "/v1/batches"

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/bin/mosquitto") if os.access(p, os.X_OK)), None)


def need(binary: str | None, what: str) -> str:
    if binary:
        return binary
    if in_ci():
        pytest.fail(f"{what} is missing but CI=true: .ci/run must install it")
    pytest.skip(f"{what} not installed (apt-get install mosquitto); runs in CI")
