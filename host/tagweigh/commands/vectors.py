"""`tagweigh vectors`: decode every golden vector with both implementations and show the result.

twproto (the code the station runs) must rebuild each frame from its fields byte for byte, decode
it back to the same fields after the CRC and MAC checks, split each garbage stream into the
listed frames and errors, and fail each negative case with the listed code. The independent
construct description (tagweigh.wire) must parse each frame to the same fields and refuse each
negative case. Exit status 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tagweigh.errors import ConfigError


def default_dir() -> Path:
    import twproto

    return Path(twproto.__file__).resolve().parent.parent / "vectors"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=None,
                        help="folder with frames.json and negative.json (default: protocol/vectors)")
    parser.add_argument("--failures-only", action="store_true", help="list only failing rows")


def _load(folder: Path, name: str) -> dict[str, Any]:
    path = folder / name
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no {name} in {folder}", hint="pass --dir protocol/vectors") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None


def _hex(s: str | None) -> bytes | None:
    return None if s is None else bytes.fromhex(s)


def _twproto_receive(stream: bytes, sender: str, key: bytes, nonce: bytes | None):
    """Feed stream to a twproto Decoder: (frames, errors, outcome of the first frame)."""
    from twproto.errors import ProtocolError
    from twproto.frame import ERROR, FRAME, Decoder
    from twproto.mac import DIR_BRIDGE, DIR_STATION, Mac
    from twproto.messages import decode_frame

    dec = Decoder()
    frames, errors, first = [], [], None
    for kind, value in dec.decode(stream):
        if kind == ERROR:
            errors.append(value)
            first = first or value
        elif kind == FRAME:
            frames.append(bytes(value))
            if first is None:
                try:
                    first = decode_frame(value, Mac(key), DIR_STATION if sender == "S" else
                                         DIR_BRIDGE, nonce)
                except ProtocolError as exc:
                    first = exc.code
    if first is None:
        first = "incomplete" if dec.pending() else "nothing"
    return frames, errors, first


def check_positive(v: dict[str, Any]) -> tuple[bool, str, str]:
    from tagweigh import wire
    from twproto.frame import MAX_FRAME, TYPE_NAMES
    from twproto.mac import DIR_BRIDGE, DIR_STATION, Mac
    from twproto.messages import CLASSES, encode_message

    key, nonce, frame = bytes.fromhex(v["key"]), _hex(v["nonce"]), bytes.fromhex(v["frame"])
    ours = []
    cls = next(CLASSES[t] for t, n in TYPE_NAMES.items() if n == v["type"])
    buf = bytearray(MAX_FRAME)
    n = encode_message(buf, cls.from_dict(v["fields"]), Mac(key),
                       DIR_STATION if v["direction"] == "S" else DIR_BRIDGE, nonce)
    if bytes(buf[:n]) != frame:
        ours.append("encode differs")
    frames, errors, first = _twproto_receive(frame, v["direction"], key, nonce)
    if frames != [frame] or errors:
        ours.append("decoder: %s" % (errors or "no frame"))
    elif isinstance(first, str):
        ours.append(first)
    elif first[1].as_dict() != v["fields"]:
        ours.append("fields differ")
    try:
        name, fields = wire.parse_frame(frame, key, v["direction"], nonce)
        theirs = "ok" if (name, fields) == (v["type"], v["fields"]) else "fields differ"
    except wire.WireError as exc:
        theirs = exc.code
    ours_s = "ok" if not ours else "; ".join(ours)
    return ours_s == "ok" and theirs == "ok", ours_s, theirs


def check_stream(s: dict[str, Any]) -> tuple[bool, str, str]:
    frames, errors, _ = _twproto_receive(bytes.fromhex(s["stream"]), "S", bytes(32), None)
    ok = [f.hex() for f in frames] == s["frames"] and errors == s["errors"]
    ours = "ok" if ok else "frames %d/%d, errors %s" % (len(frames), len(s["frames"]), errors)
    return ok, ours, "n/a (no stream decoder)"


def check_negative(c: dict[str, Any]) -> tuple[bool, str, str]:
    from tagweigh import wire

    key, nonce, stream = bytes.fromhex(c["key"]), _hex(c["nonce"]), bytes.fromhex(c["stream"])
    _, _, first = _twproto_receive(stream, c["direction"], key, nonce)
    ours = first if isinstance(first, str) else "accepted"
    try:
        wire.parse_frame(stream, key, c["direction"], nonce)
        theirs = "accepted"
    except wire.WireError as exc:
        theirs = exc.code
    return ours == c["error"] and theirs != "accepted", ours, theirs


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    folder = args.dir or default_dir()
    frames_doc = _load(folder, "frames.json")
    neg_doc = _load(folder, "negative.json")
    rows = []
    for v in frames_doc["frames"]:
        rows.append(("frame", v["name"], "ok", *check_positive(v)))
    for s in frames_doc.get("streams", []):
        rows.append(("stream", s["name"], "%d frames" % len(s["frames"]), *check_stream(s)))
    for c in neg_doc["cases"]:
        rows.append(("negative", c["name"], c["error"], *check_negative(c)))

    console = Console()
    table = Table(title=f"golden vectors in {folder}")
    for col in ("kind", "name", "expected", "twproto", "construct (tagweigh.wire)", "result"):
        table.add_column(col, overflow="fold")
    failed = 0
    for kind, name, expected, ok, ours, theirs in rows:
        failed += not ok
        if ok and args.failures_only:
            continue
        table.add_row(kind, name, expected, ours, theirs,
                      "[green]pass[/green]" if ok else "[bold red]FAIL[/bold red]")
    console.print(table)
    console.print(f"{len(rows) - failed} passed, {failed} failed, {len(rows)} vectors")
    return 1 if failed else 0
