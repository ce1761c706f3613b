"""`tagweigh init`: write a commented configuration file whose defaults work as they are."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

TEMPLATE = """\
# tagweigh configuration. Every value shown is the default; delete what you do not change.
# Relative paths are relative to this file's directory.

[bridge]
# Serial ports of the stations: device paths or pyserial URLs
# (e.g. "/dev/ttyUSB0", "/dev/serial/by-id/usb-Silicon_Labs_CP2102-if00-port0",
#  "socket://192.168.1.20:7000", "rfc2217://host:4000", "loop://" for a self-test).
ports = []
baudrate = 115200
# Readings a station may send before waiting for ACKs (1..255).
window = 32
# Group commit: readings arriving within this many ms (from every port) share one transaction.
group_commit_ms = 2.0
group_commit_max = 1024
# Reopening a port that went away (unplugged, station rebooting): capped exponential backoff.
reconnect_initial_s = 0.2
reconnect_max_s = 10.0
# Stations take the time from the bridge. Set to false if this computer's clock is not
# NTP-synchronised or checked by someone: stations then keep their readings "not synced".
clock_trusted = true
# Prometheus metrics (/metrics) and a JSON status (/status) over HTTP; "" turns it off.
# Keep it on 127.0.0.1 unless a firewall protects the port.
metrics_listen = "127.0.0.1:9477"
status_interval_s = 5.0

# Find stations by USB identity instead of listing ports (serial.tools.list_ports).
[bridge.discovery]
enabled = false
# vid = "10c4"         # CP210x; CH340 is "1a86", Espressif native USB "303a"
# pid = "ea60"
# serial_number = ""   # part of the adapter's serial number
interval_s = 2.0

[queue]
# The durable queue (SQLite, WAL). Back this file up; never put it on a network share.
path = "tagweigh-queue.sqlite3"

[keys]
# Station keys. Created readable by its owner only (0600); the bridge refuses a wider mode.
path = "tagweigh-keys.json"

[rules]
# The rule set the bridge validates with (the same file the stations run).
# Empty: no bridge-side rules, the station's verdict is kept.
ruleset = ""

[log]
level = "info"      # debug, info, warning, error
format = "json"     # json: one object per line (for log collectors); text: for people

[upload]
# Where readings go (docs/INTEGRATORS.md). Nothing is uploaded until a sink is listed.
# sinks = ["http"]            # any of "http", "epcis", "mqtt"
# batch_size = 500
# backoff_max_s = 300.0       # slowest retry pace while a backend is down
# disk_warn_free_mb = 200     # warn when the queue's disk has less free space
#
# [upload.http]               # gzip'd JSON batches, idempotency key per batch
# url = "https://backend.example.org/v1/batches"
# token_file = "upload-token.txt"
# ca_bundle = ""              # PEM of the CA to trust instead of the system's
#
# [upload.epcis]              # GS1 EPCIS 2.0 capture endpoint
# url = "https://epcis.example.org/capture"
#
# [upload.mqtt]               # fleets: <topic_prefix>/<site>/<station>/readings, QoS 1
# host = "broker.example.org"
# port = 1883

[web]
# The operator page (docs/OPERATOR_PAGE.md), served by the bridge. Loopback by default.
listen = "127.0.0.1:8080"
# One line per operator; `tagweigh pin "NAME"` asks for the PIN and prints the line to paste.
operators = []
# site_name = "Nyabibwe depot"     # page title (default: the rule set's title)
# pin_max_failures = 5             # wrong PINs from one screen before it must wait
# pin_lockout_s = 60               # that wait; doubles each time, up to one hour
# access_token = ""                # required when listen is not a loopback address
# allowed_hosts = []               # Host names to accept (default: any, when a token is set)
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", default="tagweigh.toml", help="where to write (default ./tagweigh.toml)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.add_argument("--stdout", action="store_true", help="print the file instead of writing it")


def run(args: argparse.Namespace) -> int:
    from tagweigh.config import from_dict
    from tagweigh.errors import ConfigError

    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    from_dict(tomllib.loads(TEMPLATE), None, Path.cwd())  # the template itself must be valid
    if args.stdout:
        sys.stdout.write(TEMPLATE)
        return 0
    path = Path(args.path)
    if path.exists() and not args.force:
        raise ConfigError(f"{path} already exists", hint="use --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TEMPLATE, encoding="utf-8")
    print(f"wrote {path}; start the bridge with: tagweigh bridge --config {path}")
    return 0
