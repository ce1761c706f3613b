"""`tagweigh keys`: the station key registry (list, add, rotate, remove, export for a receiver)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="config file (default: $TAGWEIGH_CONFIG or ./tagweigh.toml)")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("list", help="devices with key fingerprints (never the keys)")
    add = sub.add_parser("add", help="register a device; prints its new key for provisioning")
    add.add_argument("device_id")
    add.add_argument("--site")
    add.add_argument("--key-hex", help="use this 64-hex-digit key instead of a random one")
    rot = sub.add_parser("rotate", help="give a device a new key; prints it")
    rot.add_argument("device_id")
    rm = sub.add_parser("remove", help="forget a device's key")
    rm.add_argument("device_id")
    exp = sub.add_parser("export", help="write keys to another 0600 file for a reference receiver")
    exp.add_argument("path")


def run(args: argparse.Namespace) -> int:
    import time

    from tagweigh import config as C
    from tagweigh.errors import ConfigError
    from tagweigh.keys import KeyRegistry

    cfg = C.load(args.config)
    reg = KeyRegistry(cfg.keys_path)
    if args.action == "list":
        for d in reg.export_public_info():
            site = d["info"].get("site") or ""
            added = time.strftime("%Y-%m-%d", time.localtime(d["added_at"])) if d["added_at"] else "?"
            print(f"{d['device_id']:>12}  key {d['key_id']}  added {added}  {site}")
        return 0
    if args.action == "add":
        key = None
        if args.key_hex:
            try:
                key = bytes.fromhex(args.key_hex)
            except ValueError:
                raise ConfigError("--key-hex must be 64 hex digits") from None
        info = {"provisioned_at": time.time()}
        if args.site:
            info["site"] = args.site
        key = reg.add(args.device_id, key, **info)
        print(key.hex())  # for the provisioning step; the registry keeps it 0600
        return 0
    if args.action == "rotate":
        print(reg.rotate(args.device_id).hex())
        return 0
    if args.action == "remove":
        reg.remove(args.device_id)
        return 0
    n = reg.export_keys(args.path)
    print(f"wrote {n} key(s) to {args.path} (mode 0600)")
    return 0
