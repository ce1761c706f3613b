"""MQTT sink for fleets of depots: one message per record, QoS 1, persistent session.

Topic: `<prefix>/<site>/<device_id>/readings` (site `_` when unknown; `/`, `+`, `#` and `%` in
a name are percent-encoded so every name is exactly one topic level). Payload: the record JSON
(record.schema.json). MQTT 5 user properties carry `idempotency-key` (the batch's key, as the
HTTP sink computes it) and `record-id` (device:seq, the key a consumer deduplicates on).

Delivery: a record is 'uploaded' once the broker has acknowledged it (PUBACK). The session is
persistent (clean start off, a session expiry interval), so the broker keeps the bridge's
session, and consumers with persistent sessions get what was published while they were away.
If the bridge dies between PUBLISH and PUBACK the record is simply sent again on the next run:
consumers must deduplicate by record-id, exactly as the HTTP backend does by (device, seq).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import quote

from tagweigh.upload.records import batch_key, record_from_row
from tagweigh.upload.sink import Result, Sink, SinkError

__all__ = ["MqttSink", "topic_for"]


def _level(name: str | None) -> str:
    return quote(name, safe=" -._~:@!$&'()*,;=") if name else "_"


def topic_for(prefix: str, site: str | None, device_id: str) -> str:
    return f"{prefix}/{_level(site)}/{_level(device_id)}/readings"


class MqttSink(Sink):
    def __init__(self, host: str, port: int = 1883, *, client_id: str, topic_prefix: str = "tagweigh",
                 username: str | None = None, password: str | None = None, tls: bool = False,
                 ca_bundle: str | None = None, keepalive_s: int = 30, timeout_s: float = 10.0,
                 session_expiry_s: int = 7 * 86400, bridge_id: str | None = None, name: str = "mqtt"):
        import paho.mqtt.client as mqtt  # heavy: only when the MQTT sink is used
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self._mqtt, self._Properties, self._PacketTypes = mqtt, Properties, PacketTypes
        self.name = name
        self.host, self.port = host, port
        self.topic_prefix = topic_prefix.rstrip("/")
        self.timeout_s = timeout_s
        self.keepalive_s = keepalive_s
        self.session_expiry_s = session_expiry_s
        self.bridge_id = bridge_id
        self.session_present: bool | None = None
        self._connected = threading.Event()
        self._connect_rc: Any = None
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                        protocol=mqtt.MQTTv5, reconnect_on_failure=False)
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)
        if username:
            c.username_pw_set(username, password)
        if tls:
            c.tls_set(ca_certs=ca_bundle)  # verification on; ca_bundle None = system CAs
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        self._client = c
        self._looping = False

    def describe(self) -> str:
        return f"mqtt://{self.host}:{self.port}/{self.topic_prefix}"

    # ---- connection -------------------------------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        self._connect_rc = rc
        self.session_present = bool(getattr(flags, "session_present", False))
        if not rc.is_failure:
            self._connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        self._connected.clear()

    def _connect(self) -> None:
        if self._connected.is_set():
            return
        props = self._Properties(self._PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        self._connect_rc = None
        try:
            self._client.connect(self.host, self.port, self.keepalive_s, clean_start=False, properties=props)
        except (OSError, ValueError) as exc:
            text = str(exc)
            if "certificate" in text.lower() or "ssl" in type(exc).__name__.lower():
                raise SinkError(f"{self.describe()}: TLS verification failed: {text}", fatal=True,
                                hint="set upload.mqtt.ca_bundle to the CA that signed the broker's certificate") from exc
            raise SinkError(f"{self.describe()}: cannot connect: {text}") from exc
        if not self._looping:
            self._client.loop_start()
            self._looping = True
        if not self._connected.wait(self.timeout_s):
            rc = self._connect_rc
            self._client.disconnect()
            if rc is not None and rc.is_failure:
                raise SinkError(f"{self.describe()}: broker refused the connection: {rc}",
                                fatal=rc.value in (134, 135, 138, 140),
                                hint="check upload.mqtt.username / password_file / client_id")
            raise SinkError(f"{self.describe()}: no CONNACK within {self.timeout_s} s")

    def close(self) -> None:
        try:
            self._client.disconnect()
        finally:
            if self._looping:
                self._client.loop_stop()
                self._looping = False

    # ---- sending ----------------------------------------------------------------------------
    def send(self, rows: list[dict[str, Any]]) -> list[Result]:
        self._connect()
        records = [record_from_row(r, self.bridge_id) for r in rows]
        payloads = [json.dumps(rec, separators=(",", ":"), ensure_ascii=False).encode() for rec in records]
        key = batch_key(self.name, b"[" + b",".join(payloads) + b"]", (r.get("upload_attempts", 0) for r in rows))
        infos = []
        for rec, payload in zip(records, payloads):
            props = self._Properties(self._PacketTypes.PUBLISH)
            props.PayloadFormatIndicator = 1
            props.ContentType = "application/json"
            props.UserProperty = [("idempotency-key", key), ("record-id", rec["record_id"])]
            info = self._client.publish(topic_for(self.topic_prefix, rec["site"], rec["device_id"]),
                                        payload, qos=1, properties=props)
            infos.append(info)
        deadline = time.monotonic() + self.timeout_s
        for info in infos:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                info.wait_for_publish(left)
            except (RuntimeError, ValueError):  # not queued: connection lost while publishing
                break
        done = [info.is_published() for info in infos]
        if not any(done):
            raise SinkError(f"{self.describe()}: no PUBACK within {self.timeout_s} s "
                            f"({'connected' if self._connected.is_set() else 'connection lost'})")
        return [(r["id"], "uploaded" if ok else "retry", None if ok else "no PUBACK in time")
                for r, ok in zip(rows, done)]
