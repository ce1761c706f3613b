"""`tagweigh upload`: send the queue's readings to the configured backends ([upload] section).

`--once` drains every sink now (ignoring backoff) and exits: 0 when everything pending was
delivered (or rejected by the backend, with its reason), 4 when a sink failed (the error says
why; the readings stay queued). Without `--once` it keeps running like the bridge's uploader.
"""

from __future__ import annotations

import argparse
import json
import threading


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="config file (default: $TAGWEIGH_CONFIG or ./tagweigh.toml)")
    parser.add_argument("--once", action="store_true", help="drain now and exit")
    parser.add_argument("--sink", action="append", choices=("http", "epcis", "mqtt"),
                        help="only this sink (repeatable; default: [upload] sinks)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from tagweigh import config as cfg
    from tagweigh.errors import ConfigError
    from tagweigh.upload.settings import build_uploader

    conf = cfg.load(args.config)
    up = build_uploader(conf, only=args.sink)
    if up is None:
        raise ConfigError("no upload sink configured", hint='add [upload] sinks = ["http"] and [upload.http] url')
    try:
        if not args.once:
            stop = threading.Event()
            try:
                up.run(stop)
            except KeyboardInterrupt:
                stop.set()
            return 0
        report = up.run_once(force=True)
        status = up.status()
    finally:
        up.close()
    if args.json:
        print(json.dumps({"sinks": report, "disk_warning": status["disk_warning"],
                          "depth": {n: up.queue.depth(n) for n in report}}, indent=1))
    else:
        for name, st in report.items():
            left = up.queue.depth(name)
            line = f"{name}: {st['uploaded']} uploaded, {st['rejected']} rejected by the backend, {left} left"
            print(line + (f" -- {st['last_error']}" if st["last_error"] else ""))
        if status["disk_warning"]:
            print(f"warning: {status['disk_warning']}")
    return 4 if any(st["last_error"] for st in report.values()) else 0
