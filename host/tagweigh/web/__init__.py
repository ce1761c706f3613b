"""The depot operator's page: live stations, today's bags, what needs attention, upload sync.

Served by the bridge (`tagweigh bridge`, on by default on 127.0.0.1:8080; see
docs/OPERATOR_PAGE.md). `WebServer(bridge, web_config(config)).start()` serves it for a running
`Bridge`; `hash_pin` makes the PIN hashes the [web] section stores.
"""

from tagweigh.web.auth import Operator, PinGate, WebConfig, hash_pin, verify_pin, web_config
from tagweigh.web.server import WebServer

__all__ = ["Operator", "PinGate", "WebConfig", "WebServer", "hash_pin", "verify_pin", "web_config"]
