"""`tagweigh bridge`: run the bridge (sessions on every station port, durable queue, metrics)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="config file (default: $TAGWEIGH_CONFIG or ./tagweigh.toml)")
    parser.add_argument("--port", action="append", metavar="URL",
                        help="serve this port or pyserial URL instead of the config's ports (repeatable)")
    parser.add_argument("--ruleset", help="rule-set file (overrides [rules] ruleset)")
    parser.add_argument("--log-format", choices=("json", "text"), help="overrides [log] format")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    web = parser.add_mutually_exclusive_group()
    web.add_argument("--web", nargs="?", const="", metavar="HOST:PORT",
                     help="serve the operator page (on by default, [web] listen or 127.0.0.1:8080)")
    web.add_argument("--no-web", action="store_true", help="do not serve the operator page")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from tagweigh import config as C
    from tagweigh import logs
    from tagweigh.bridge import Bridge
    from tagweigh.web import WebServer, web_config

    cfg = C.load(args.config)
    changes: dict = {}
    if args.port:
        changes["ports"] = tuple(args.port)
    if args.ruleset:
        changes["ruleset_path"] = Path(args.ruleset).resolve()
    if args.log_format:
        changes["log_format"] = args.log_format
    if args.log_level:
        changes["log_level"] = args.log_level
    cfg = dataclasses.replace(cfg, **changes)
    logs.setup(cfg.log_level, cfg.log_format)
    if not cfg.ports and not cfg.discovery.enabled:
        import logging

        logging.getLogger("tagweigh.bridge").warning(
            "no ports configured and discovery off: add [bridge] ports or use --port")
    if args.no_web:
        wcfg = web_config(cfg, enabled=False)
    else:
        wcfg = web_config(cfg, listen=args.web or None, enabled=True if args.web is not None else None)
    bridge = Bridge(cfg)
    web = WebServer(bridge, wcfg).start() if wcfg.enabled else None
    try:
        bridge.run_forever()
    finally:
        if web is not None:
            web.stop()
    return 0
