"""`tagweigh pin`: hash an operator PIN for the [web] operators list of the config."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the operator's name, as the audit log will show it")
    parser.add_argument("--pin-stdin", action="store_true",
                        help="read the PIN from standard input instead of asking (for scripts)")


def run(args: argparse.Namespace) -> int:
    import getpass
    import json
    import sys

    from tagweigh.errors import ConfigError
    from tagweigh.web.auth import check_pin_format, hash_pin

    if args.pin_stdin:
        pin = sys.stdin.readline().strip()
    else:
        pin = getpass.getpass(f"PIN for {args.name} (4-12 digits): ")
        if getpass.getpass("Again: ") != pin:
            raise ConfigError("the two PINs differ")
    check_pin_format(pin)
    name = json.dumps(args.name.strip(), ensure_ascii=False)
    print("# add to the [web] section of tagweigh.toml (PINs must differ between operators):")
    print(f'operators = [{{ name = {name}, pin = "{hash_pin(pin)}" }}]')
    return 0
