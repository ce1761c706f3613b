"""MQTT sink against a real Mosquitto broker started by the test on a free loopback port."""

from __future__ import annotations

import getpass
import json
import socket
import subprocess
import threading
import time
from pathlib import Path

import jsonschema
import pytest
from uploadkit import free_port, mosquitto_binary, need

from tagweigh.upload.mqtt import MqttSink, topic_for
from tagweigh.upload.records import load_schema
from tagweigh.upload.uploader import Uploader

pytestmark = pytest.mark.broker


class Broker:
    def __init__(self, binary: str, root: Path):
        self.binary, self.root, self.port = binary, root, free_port()
        self.proc: subprocess.Popen | None = None
        self.conf = root / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {root}/\npersistence_file broker.db\n"
            f"log_dest file {root}/broker.log\n"
            # as root, mosquitto would switch to user 'mosquitto', who cannot write in tmp_path
            f"user {getpass.getuser()}\n")

    def start(self) -> "Broker":
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {(self.root / 'broker.log').read_text(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: mosquitto saves its persistence file
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def broker(tmp_path: Path):
    b = Broker(need(mosquitto_binary(), "mosquitto"), tmp_path).start()
    yield b
    b.stop()


class Consumer:
    """A fleet backend's subscriber with a persistent session (QoS 1)."""

    def __init__(self, port: int, client_id: str = "backend-1"):
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.messages: list = []
        self.got = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.c.on_message = lambda c, u, m: (self.messages.append(m), self.got.set())
        self.subscribed = threading.Event()
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.props = Properties(PacketTypes.CONNECT)
        self.props.SessionExpiryInterval = 300
        self.port = port

    def connect(self, subscribe: bool = True) -> "Consumer":
        self.c.connect("127.0.0.1", self.port, 30, clean_start=False, properties=self.props)
        self.c.loop_start()
        if subscribe:
            self.c.subscribe("tagweigh/#", qos=1)
            assert self.subscribed.wait(5)
        return self

    def wait_for(self, n: int, timeout: float = 10) -> list:
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages

    def disconnect(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def test_records_arrive_per_site_and_station_with_keys(depot, broker):
    depot.fill(devices=2, per_device=12, site="depot/east #2")
    consumer = Consumer(broker.port).connect()
    sink = MqttSink("127.0.0.1", broker.port, client_id="bridge-depot-east", bridge_id="bridge-east")
    try:
        report = Uploader(depot.queue, sink, batch_size=10, disk_warn_free_mb=0).run_once()["mqtt"]
        assert report["uploaded"] == 24 and depot.queue.depth("mqtt") == 0
        msgs = consumer.wait_for(24)
    finally:
        sink.close()
        consumer.disconnect()
    assert len(msgs) == 24
    assert {m.topic for m in msgs} == {"tagweigh/depot%2Feast %232/1001/readings",
                                       "tagweigh/depot%2Feast %232/1002/readings"}
    assert topic_for("tagweigh", None, "9") == "tagweigh/_/9/readings"
    validator = jsonschema.Draft202012Validator(load_schema())
    keys = set()
    for m in msgs:
        assert m.qos == 1
        rec = json.loads(m.payload)
        validator.validate(rec)
        props = dict(m.properties.UserProperty)
        assert props["record-id"] == rec["record_id"]
        keys.add(props["idempotency-key"])
    assert len(keys) == 3  # one key per batch of 10, 10, 4
    assert {json.loads(m.payload)["record_id"] for m in msgs} == {f"{d}:{s}" for d in (1001, 1002) for s in range(1, 13)}


def test_persistent_sessions_survive_consumer_absence_and_broker_restart(depot, broker):
    depot.fill(devices=1, per_device=15)
    away = Consumer(broker.port, "backend-away").connect()
    away.disconnect()  # subscribed with a persistent session, now offline
    sink = MqttSink("127.0.0.1", broker.port, client_id="bridge-persist")
    try:
        assert Uploader(depot.queue, sink, disk_warn_free_mb=0).run_once()["mqtt"]["uploaded"] == 15
        assert sink.session_present is False  # first connection of this client id
    finally:
        sink.close()
    broker.stop()
    broker.start()  # same persistence file
    back = Consumer(broker.port, "backend-away").connect(subscribe=False)
    try:
        msgs = back.wait_for(15)
    finally:
        back.disconnect()
    assert sorted(json.loads(m.payload)["seq"] for m in msgs) == list(range(1, 16))
    again = MqttSink("127.0.0.1", broker.port, client_id="bridge-persist")
    try:
        again._connect()
        assert again.session_present is True  # the broker kept the bridge's session too
    finally:
        again.close()


def test_broker_down_keeps_readings_queued_until_it_returns(depot, broker, tmp_path):
    depot.fill(devices=1, per_device=5)
    broker.stop()
    sink = MqttSink("127.0.0.1", broker.port, client_id="bridge-down", timeout_s=2)
    up = Uploader(depot.queue, sink, disk_warn_free_mb=0)
    try:
        up.run_once()
        st = up.states["mqtt"]
        assert st.failures == 1 and "cannot connect" in st.last_error and depot.queue.depth("mqtt") == 5
        broker.start()
        consumer = Consumer(broker.port).connect()
        up.run_once(force=True)
        assert depot.queue.depth("mqtt") == 0 and len(consumer.wait_for(5)) == 5
        consumer.disconnect()
    finally:
        sink.close()
