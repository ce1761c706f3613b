"""The [upload] section of the bridge's config: which sinks run and how, validated when read.

    [upload]
    sinks = ["http"]            # any of "http", "epcis", "mqtt"; [] = no uploading
    bridge_id = ""              # default: this machine's host name
    batch_size = 500
    backoff_initial_s = 1.0
    backoff_max_s = 300.0
    retry_after_max_s = 3600.0
    disk_warn_free_mb = 200

    [upload.http]               # the default sink: gzip'd JSON batches (openapi.yaml)
    url = "https://backend.example.org/v1/batches"
    token_file = "upload-token.txt"   # or token = "..."; $TAGWEIGH_UPLOAD_TOKEN wins over both
    ca_bundle = ""              # PEM file of the CA(s) to trust instead of the system's
    verify_tls = true
    timeout_s = 30.0

    [upload.epcis]              # EPCIS 2.0 capture endpoint; same keys as [upload.http], plus
    namespace = "urn:tagweigh:epcis:1:"

    [upload.mqtt]
    host = "broker.example.org"
    port = 1883
    client_id = ""              # default: "tagweigh-<bridge_id>" (must be stable: persistent session)
    topic_prefix = "tagweigh"
    username = ""
    password_file = ""
    tls = false
    ca_bundle = ""
    timeout_s = 10.0
    session_expiry_s = 604800

Relative file paths are relative to the config file's directory.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from tagweigh.errors import ConfigError

__all__ = ["SINK_NAMES", "build_sinks", "build_uploader", "upload_settings"]

SINK_NAMES = ("http", "epcis", "mqtt")
_TOP = {"sinks": list, "bridge_id": str, "batch_size": int, "backoff_initial_s": float,
        "backoff_max_s": float, "retry_after_max_s": float, "disk_warn_free_mb": float}
_HTTP = {"url": str, "token": str, "token_file": str, "ca_bundle": str, "verify_tls": bool,
         "timeout_s": float, "connect_timeout_s": float}
_EPCIS = dict(_HTTP, namespace=str)
_MQTT = {"host": str, "port": int, "client_id": str, "topic_prefix": str, "username": str,
         "password_file": str, "tls": bool, "ca_bundle": str, "timeout_s": float, "session_expiry_s": int}


def _check(table: Any, kinds: dict[str, type], where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    out = {}
    for key, value in table.items():
        if key in SINK_NAMES and where == "[upload]":
            continue
        if key not in kinds:
            raise ConfigError(f"unknown key {key!r} in {where}", hint=f"known keys: {', '.join(sorted(kinds))}")
        kind = kinds[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ConfigError(f"{where} {key} must be {kind.__name__}, got {value!r}")
        if kind in (int, float) and value < 0:
            raise ConfigError(f"{where} {key} must be >= 0, got {value}")
        out[key] = value
    return out


def upload_settings(section: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """Validate the raw [upload] table; returns {'top': ..., 'http': ..., ...} with paths resolved."""
    top = _check(section, _TOP, "[upload]")
    sinks = top.get("sinks", ["http"] if "http" in section else [])
    bad = [s for s in sinks if s not in SINK_NAMES]
    if bad or len(set(sinks)) != len(sinks):
        raise ConfigError(f"[upload] sinks must be distinct names among {SINK_NAMES}, got {sinks!r}")
    if not 1 <= top.get("batch_size", 500) <= 10_000:
        raise ConfigError("[upload] batch_size must be 1..10000")
    out: dict[str, Any] = {"top": top, "sinks": list(sinks)}
    for name, kinds in (("http", _HTTP), ("epcis", _EPCIS), ("mqtt", _MQTT)):
        table = _check(section.get(name, {}), kinds, f"[upload.{name}]")
        for key in ("token_file", "ca_bundle", "password_file"):
            if table.get(key):
                p = Path(table[key]).expanduser()
                table[key] = str(p if p.is_absolute() else base_dir / p)
        out[name] = table
        if name in sinks:
            need = "host" if name == "mqtt" else "url"
            if not table.get(need):
                raise ConfigError(f"[upload.{name}] {need} is required when sinks includes {name!r}")
            if name != "mqtt" and not table["url"].startswith(("http://", "https://")):
                raise ConfigError(f"[upload.{name}] url must start with https:// (or http:// on a trusted network)")
    return out


def _secret(table: dict[str, Any], key: str, file_key: str, env: str | None = None) -> str | None:
    if env and os.environ.get(env):
        return os.environ[env]
    if table.get(file_key):
        try:
            return Path(table[file_key]).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read {table[file_key]}: {exc.strerror}") from exc
    return table.get(key) or None


def build_sinks(settings: dict[str, Any], only: list[str] | None = None) -> list:
    top = settings["top"]
    bridge_id = top.get("bridge_id") or socket.gethostname()
    sinks = []
    for name in only or settings["sinks"]:
        t = settings[name]
        if name == "http":
            from tagweigh.upload.http import HttpSink

            sinks.append(HttpSink(t["url"], token=_secret(t, "token", "token_file", "TAGWEIGH_UPLOAD_TOKEN"),
                                  ca_bundle=t.get("ca_bundle") or None, verify_tls=t.get("verify_tls", True),
                                  timeout_s=t.get("timeout_s", 30.0), connect_timeout_s=t.get("connect_timeout_s", 10.0),
                                  bridge_id=bridge_id))
        elif name == "epcis":
            from tagweigh.upload.epcis import DEFAULT_NAMESPACE, EpcisSink

            sinks.append(EpcisSink(t["url"], token=_secret(t, "token", "token_file", "TAGWEIGH_EPCIS_TOKEN"),
                                   ca_bundle=t.get("ca_bundle") or None, verify_tls=t.get("verify_tls", True),
                                   timeout_s=t.get("timeout_s", 30.0), connect_timeout_s=t.get("connect_timeout_s", 10.0),
                                   bridge_id=bridge_id, namespace=t.get("namespace", DEFAULT_NAMESPACE)))
        elif name == "mqtt":
            from tagweigh.upload.mqtt import MqttSink

            sinks.append(MqttSink(t["host"], t.get("port", 1883), client_id=t.get("client_id") or f"tagweigh-{bridge_id}",
                                  topic_prefix=t.get("topic_prefix", "tagweigh"), username=t.get("username") or None,
                                  password=_secret(t, "password", "password_file", "TAGWEIGH_MQTT_PASSWORD"),
                                  tls=t.get("tls", False), ca_bundle=t.get("ca_bundle") or None,
                                  timeout_s=t.get("timeout_s", 10.0),
                                  session_expiry_s=t.get("session_expiry_s", 7 * 86400), bridge_id=bridge_id))
        else:
            raise ConfigError(f"no sink named {name!r}; known: {', '.join(SINK_NAMES)}")
    return sinks


def build_uploader(config: Any, queue: Any = None, only: list[str] | None = None):
    """The bridge's Uploader from a tagweigh.config.Config (None if no sink is configured).
    `queue`: an open Queue (the bridge passes its own file; default: config.queue_path)."""
    from tagweigh.queue import Queue
    from tagweigh.upload.uploader import Uploader

    settings = upload_settings(config.section("upload"), config.base_dir)
    if not (only or settings["sinks"]):
        return None
    top = settings["top"]
    return Uploader(queue if queue is not None else Queue(config.queue_path), build_sinks(settings, only),
                    batch_size=top.get("batch_size", 500), backoff_initial_s=top.get("backoff_initial_s", 1.0),
                    backoff_max_s=top.get("backoff_max_s", 300.0),
                    retry_after_max_s=top.get("retry_after_max_s", 3600.0),
                    disk_warn_free_mb=top.get("disk_warn_free_mb", 200.0))
