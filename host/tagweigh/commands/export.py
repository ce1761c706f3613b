"""`tagweigh export`: readings, totals per tag/step or chain of custody as CSV, JSON Lines or
EPCIS 2.0, for audits and regulators."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="config file (default: $TAGWEIGH_CONFIG or ./tagweigh.toml)")
    parser.add_argument("--queue", help="queue database (default: [queue] path of the config)")
    parser.add_argument("--format", choices=("csv", "jsonl", "epcis"), default="csv")
    parser.add_argument("--view", choices=("readings", "totals", "custody"), default="readings",
                        help="readings (one row each), totals per tag and step, or chain of custody per tag")
    parser.add_argument("--since", help="readings weighed at or after: 2024-05-01, an ISO date-time, or Unix seconds")
    parser.add_argument("--site", help="only this site")
    parser.add_argument("--tag", help="only this tag (tag key or text)")
    parser.add_argument("-o", "--output", help="write here instead of standard output")


def run(args: argparse.Namespace) -> int:
    import sys

    from tagweigh import config as cfg
    from tagweigh.export import iter_records, parse_since, write
    from tagweigh.queue import Queue

    path = args.queue or cfg.load(args.config).queue_path
    with Queue(path, readonly=True) as queue:
        records = iter_records(queue, since=parse_since(args.since), site=args.site, tag=args.tag)
        if args.output:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                n = write(out, args.format, args.view, records)
            print(f"{n} {'events' if args.format == 'epcis' else 'rows'} written to {args.output}", file=sys.stderr)
        else:
            sys.stdout.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
            write(sys.stdout, args.format, args.view, records)
    return 0
