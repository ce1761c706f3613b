"""The operator page's HTTP server over real loopback sockets, with a real bridge (no ports) and
its SQLite queue: static files, state, SSE, and every guard in front of an action."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path

import pytest

from tagweigh.bridge import Bridge
from tagweigh.config import from_dict
from tagweigh.queue import READING_COLUMNS
from tagweigh.upload.sink import Sink, SinkError
from tagweigh.upload.uploader import Uploader
from tagweigh.web.auth import hash_pin, web_config
from tagweigh.web.server import WebServer

REPO = Path(__file__).resolve().parents[2]
PIN = "4321"
HASH = hash_pin(PIN)


def _row(seq, device="1001", verdict="accept", reason="NONE", **kw):
    values = dict(
        device_id=device, seq=seq, raw=b"\xa1frame%d" % seq, received_at=time.time(), time=int(time.time()),
        time_estimated=0, boot=None, uptime_ms=None, step=2, tag_kind=3, tag_text=f"SK{seq:08d}",
        tag_key=f"SK{seq:08d}", mineral="SN", net_g=30000 + seq, tare_g=0, e_g=10, flags=8, operator=201,
        cal_id=1, ruleset_id="0a0b0c0d", prev="00000000", station_verdict=verdict, station_reason=reason,
        verdict=verdict, reason=reason, rule_id=None, findings=None, chain_ok=1, site="CD-SK-012",
        port="memory://x")
    values.update(kw)
    return tuple(values[c] for c in READING_COLUMNS)


def _insert(bridge, rows):
    q = bridge.queue
    with q.transaction() as db:
        q.insert_readings(db, rows)


class Page:
    """A started bridge + web server and a tiny HTTP client that behaves like the page."""

    def __init__(self, tmp_path, web: dict | None = None):
        doc = {"bridge": {"metrics_listen": ""}, "queue": {"path": str(tmp_path / "q.sqlite3")},
               "keys": {"path": str(tmp_path / "keys.json")},
               "rules": {"ruleset": str(REPO / "protocol/rulesets/example-depot.json")},
               "web": dict({"listen": "127.0.0.1:0", "operators": [{"name": "Amani", "pin": HASH}]}, **(web or {}))}
        cfg = from_dict(doc, base_dir=tmp_path)
        self.bridge = Bridge(cfg).start()
        self.web = WebServer(self.bridge, web_config(cfg), hub_interval_s=0.02).start()
        self.port = self.web.address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.cookies: dict[str, str] = {}
        st = self.get_json("/api/state")
        self.csrf = st["server"]["csrf"]
        self.state = st

    def request(self, method, path, body=None, headers=None, host=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        h = {"Host": host or self.host}
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        h.update(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        payload = r.read()
        for c in r.headers.get_all("Set-Cookie") or []:
            k, _, v = c.split(";")[0].partition("=")
            self.cookies[k] = v
        conn.close()
        return r, payload

    def get_json(self, path):
        r, body = self.request("GET", path)
        assert r.status == 200, body
        return json.loads(body)

    def post(self, path, body, *, origin=True, csrf=True, headers=None, host=None):
        h = {"Content-Type": "application/json"}
        if origin:
            h["Origin"] = f"http://{host or self.host}"
        if csrf:
            h["X-CSRF-Token"] = self.csrf
        h.update(headers or {})
        r, payload = self.request("POST", path, body, h, host=host)
        return r.status, json.loads(payload)

    def audit(self):
        return self.bridge.queue.audit_log()

    def close(self):
        self.web.stop()
        self.bridge.stop()


@pytest.fixture
def page(tmp_path):
    p = Page(tmp_path)
    yield p
    p.close()


def test_page_and_assets_are_served_locally_with_a_strict_policy(page):
    r, body = page.request("GET", "/")
    assert r.status == 200 and b"/static/app.js" in body
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert b"http://" not in body and b"https://" not in body  # no CDN, no external font
    total = len(body)
    for name in ("app.js", "i18n.js", "style.css", "icon.svg"):
        r, asset = page.request("GET", f"/static/{name}")
        assert r.status == 200 and asset
        fetchable = asset.replace(b'xmlns="http://www.w3.org/2000/svg"', b"")  # a name, never fetched
        assert b"https://" not in fetchable and b"http://" not in fetchable
        total += len(asset)
        etag = r.headers["ETag"]
        r2, again = page.request("GET", f"/static/{name}", headers={"If-None-Match": etag})
        assert r2.status == 304 and again == b""
    assert total < 300_000
    for bad in ("/static/../server.py", "/static/%2e%2e/server.py", "/static/server.py", "/nope"):
        assert page.request("GET", bad)[0].status == 404


def test_loopback_server_refuses_foreign_host_names(page):
    # DNS rebinding: a page from evil.example resolved to 127.0.0.1 must not reach the API.
    r, _ = page.request("GET", "/api/state", host="evil.example:%d" % page.port)
    assert r.status == 421
    status, body = page.post("/api/upload/retry", {"pin": PIN}, host="evil.example:%d" % page.port)
    assert status == 421 and body["error"] == "host"
    assert page.request("GET", "/healthz", host="localhost:%d" % page.port)[0].status == 200


def test_state_shows_today_and_what_needs_attention(page):
    _insert(page.bridge, [_row(1), _row(2, verdict="reject", reason="TAG-SITE"),
                          _row(3, verdict="warn", reason="TIME-NOT-SYNCED", mineral="TA")])
    st = page.get_json("/api/state")
    assert [r["seq"] for r in st["readings"]] == [3, 2, 1]
    assert {r["reason"] for r in st["day"]["attention"]} == {"TAG-SITE", "TIME-NOT-SYNCED"}
    totals = {(t["step"], t["mineral"]): t for t in st["day"]["totals"]}
    assert totals[(2, "SN")] == {"step": 2, "mineral": "SN", "bags": 1, "net_g": 30001, "rejected": 1}
    assert totals[(2, "TA")]["bags"] == 1
    assert st["day"]["counts"] == {"accept": 1, "warn": 1, "reject": 1}
    assert st["sync"]["backlog"] == 3 and st["sync"]["uploader"] is False
    assert st["server"]["can_act"] is True and st["minerals"]["SN"]["fr"].startswith("Cassitérite")
    # an offline station known from the queue still gets a card, with its last verdict
    assert st["stations"] == [] or st["stations"][0]["online"] is False
    rows = page.get_json("/api/readings?verdict=reject")
    assert [r["seq"] for r in rows] == [2]
    assert page.request("GET", "/api/readings?verdict=drop")[0].status == 400
    reasons = page.get_json("/api/reasons")
    assert reasons["TAG-SITE"]["fr"] == "Étiquette non attribuée à ce site"


def _events(page, until, timeout=5.0):
    """Read SSE events until until(events) is true; returns [(event, data)]."""
    conn = http.client.HTTPConnection("127.0.0.1", page.port, timeout=timeout)
    conn.request("GET", "/api/events", headers={"Host": page.host, "Accept": "text/event-stream"})
    r = conn.getresponse()
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    events, ev, data = [], None, []
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            line = r.fp.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                ev = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line == "" and ev:
                events.append((ev, json.loads("".join(data))))
                ev, data = None, []
                if until(events):
                    return events
    finally:
        conn.close()
    raise AssertionError(f"events so far: {[e for e, _ in events]}")


def test_events_start_with_state_then_push_new_readings(page):
    import threading

    def later():
        time.sleep(0.3)
        _insert(page.bridge, [_row(7, verdict="reject", reason="DUPLICATE-STEP")])

    threading.Thread(target=later).start()
    t0 = time.monotonic()
    events = _events(page, lambda evs: any(e == "readings" for e, _ in evs))
    assert events[0][0] == "state" and events[0][1]["server"]["csrf"]
    new = next(d for e, d in events if e == "readings")
    assert new[0]["seq"] == 7 and new[0]["reason"] == "DUPLICATE-STEP" and new[0]["code"] == 7
    assert time.monotonic() - t0 < 2.0


@pytest.mark.parametrize("case", ["no_origin", "foreign_origin", "cross_site_fetch", "no_csrf", "wrong_csrf", "form"])
def test_cross_site_requests_are_refused(page, case):
    _insert(page.bridge, [_row(1)])
    kw: dict = {}
    if case == "no_origin":
        kw = {"origin": False}
    elif case == "foreign_origin":
        kw = {"origin": False, "headers": {"Origin": "http://evil.example"}}
    elif case == "cross_site_fetch":
        kw = {"origin": False, "headers": {"Sec-Fetch-Site": "cross-site"}}
    elif case == "no_csrf":
        kw = {"csrf": False}
    elif case == "wrong_csrf":
        kw = {"headers": {"X-CSRF-Token": "x" * 24}}
    elif case == "form":
        kw = {"headers": {"Content-Type": "application/x-www-form-urlencoded"}}
    status, body = page.post("/api/readings/1/void", {"pin": PIN, "reason": "test"}, **kw)
    assert status in (403, 415) and body["ok"] is False
    assert page.bridge.queue.readings()[0]["voided"] == 0
    assert page.audit() == []  # never reached the PIN check


def test_void_needs_the_right_pin_and_is_audited(page):
    _insert(page.bridge, [_row(1, verdict="reject", reason="TAG-SITE")])
    status, body = page.post("/api/readings/1/void", {"pin": "0000", "reason": "Wrong tag"})
    assert (status, body["error"]) == (403, "pin_wrong")
    status, body = page.post("/api/readings/1/void", {"pin": PIN})
    assert (status, body["error"]) == (400, "reason_missing")
    assert page.bridge.queue.readings()[0]["voided"] == 0
    status, body = page.post("/api/readings/1/void", {"pin": PIN, "reason": "  Wrong   tag "})
    assert status == 200 and body == {"ok": True, "operator": "Amani", "result": "voided"}
    row = page.bridge.queue.readings()[0]
    assert row["voided"] == 1 and row["void_reason"] == "Wrong tag"
    log = page.audit()
    assert [(a["actor"], a["action"]) for a in log] == [("Amani", "void"), ("?", "pin_failed")]
    assert json.loads(log[0]["detail"]) == {"reading_id": 1, "reason": "Wrong tag"}
    st = page.get_json("/api/state")
    assert st["day"]["voided"] == [1] and st["day"]["attention"] == []
    status, body = page.post("/api/readings/99/void", {"pin": PIN, "reason": "x"})
    assert (status, body["error"]) == (404, "not_found")


def test_wrong_pins_lock_the_client_out(page):
    _insert(page.bridge, [_row(1)])
    for _ in range(5):
        status, body = page.post("/api/readings/1/void", {"pin": "0000", "reason": "x"})
        assert status == 403
    status, body = page.post("/api/readings/1/void", {"pin": PIN, "reason": "x"})
    assert status == 429 and body["error"] == "pin_locked" and body["retry_in_s"] > 50
    assert page.bridge.queue.readings()[0]["voided"] == 0
    assert sum(1 for a in page.audit() if a["action"] == "pin_failed") == 5


def test_tare_of_an_offline_station_is_refused_and_audited(page):
    status, body = page.post("/api/stations/1001/tare", {"pin": PIN})
    assert (status, body["error"]) == (409, "offline")
    a = page.audit()[0]
    assert a["actor"] == "Amani" and a["action"] == "tare" and json.loads(a["detail"])["result"] == "offline"
    assert page.post("/api/stations/1001/explode", {"pin": PIN})[0] == 404


class _DownSink(Sink):
    name = "http"

    def send(self, rows):
        raise SinkError("backend unreachable: connection refused")


def test_sync_shows_the_uploader_error_and_retry_clears_its_backoff(page):
    _insert(page.bridge, [_row(1), _row(2)])
    status, body = page.post("/api/upload/retry", {"pin": PIN})
    assert (status, body["error"]) == (409, "no_uploader")
    up = Uploader(page.bridge.queue, _DownSink(), backoff_initial_s=600)
    up.run_once()
    page.bridge.uploader = up  # the hook the bridge's uploader wiring fills
    assert up.next_due() > 100
    sync = page.get_json("/api/state")["sync"]
    assert sync["uploader"] and sync["backlog"] == 2 and "connection refused" in sync["last_error"]
    assert sync["last_success"] is None
    status, body = page.post("/api/upload/retry", {"pin": PIN})
    assert status == 200 and body["result"] == "scheduled"
    assert up.next_due() == 0
    assert [a["action"] for a in page.audit()][:2] == ["retry_upload", "retry_upload"]


def test_network_binding_is_read_only_without_the_token(tmp_path):
    token = "t0ken-" + "x" * 20
    p = Page(tmp_path, {"listen": "0.0.0.0:0", "access_token": token})
    try:
        _insert(p.bridge, [_row(1)])
        assert p.state["server"]["can_act"] is False and p.state["server"]["readonly"] == "token"
        status, body = p.post("/api/readings/1/void", {"pin": PIN, "reason": "x"})
        assert (status, body["error"]) == (403, "readonly")
        r, _ = p.request("GET", "/?token=wrong")
        assert r.status == 303 and "tw_access" not in p.cookies
        r, _ = p.request("GET", f"/?token={token}")
        assert r.status == 303 and r.headers["Location"] == "/" and p.cookies["tw_access"] == token
        assert p.get_json("/api/state")["server"]["can_act"] is True
        status, body = p.post("/api/readings/1/void", {"pin": PIN, "reason": "x"})
        assert status == 200 and body["ok"]
        # Any host name works when the token protects the actions
        assert p.request("GET", "/healthz", host="depot.local:1")[0].status == 200
    finally:
        p.close()


def test_sse_subscribers_are_bounded_and_released(page):
    from tagweigh.web.view import Hub

    subs = [page.web.hub.subscribe() for _ in range(Hub.MAX_SUBSCRIBERS)]
    assert all(subs) and page.web.hub.subscribe() is None
    r, body = page.request("GET", "/api/events")
    assert r.status == 503
    for s in subs:
        page.web.hub.unsubscribe(s)
    assert page.web.hub.subscribers == 0
