"""Structured logs: one JSON object per line (or plain text), with the fields passed in `extra`.

    log.warning("bad MAC on %s", port, extra={"event": "bad_mac", "device": dev, "port": port})
    -> {"ts": "2025-01-01T12:00:00.123Z", "level": "warning", "logger": "tagweigh.session",
        "msg": "bad MAC on /dev/ttyUSB0", "event": "bad_mac", "device": "17", "port": "/dev/ttyUSB0"}

Keys are never passed to a logger anywhere in the package; as a second line of defence any
field whose name contains "key" and whose value is bytes is written as "<redacted>".
"""

from __future__ import annotations

import json
import logging
import sys
import time

__all__ = ["JsonFormatter", "setup"]

# Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        t = time.gmtime(record.created)
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".%03dZ" % int(record.msecs),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k in _STANDARD or k.startswith("_"):
                continue
            if isinstance(v, (bytes, bytearray)):
                v = "<redacted>" if "key" in k.lower() else v.hex()
            out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def setup(level: str = "info", fmt: str = "json", stream=None) -> None:
    """Configure the root 'tagweigh' logger (idempotent)."""
    logger = logging.getLogger("tagweigh")
    for h in list(logger.handlers):
        if getattr(h, "_tagweigh", False):
            logger.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._tagweigh = True  # type: ignore[attr-defined]
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
