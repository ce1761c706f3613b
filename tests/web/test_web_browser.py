"""The operator page in a real browser (headless Chromium) against a bridge fed by simulated
stations. The tests run in order on one page, like an operator's shift: a bag is weighed, a
foreign tag is refused, the operator switches to French, voids a reading with a PIN, tares a
station, and the bridge restarts underneath the page. Screenshots go to test-artifacts/web/."""

from __future__ import annotations

import json
import tempfile
import time

import pytest

from twproto import reasons as R

from tagweigh.sim.scenarios import label
from tagweigh.web.testbed import OPERATOR, PIN, Depot, launch_chromium

pytestmark = pytest.mark.browser

DEV = "1001"


@pytest.fixture(scope="module")
def depot():
    d = Depot([("Receiving A", 1001, "qr"), ("Receiving B", 1002, "qr")])
    try:
        d.online()
        yield d
    finally:
        d.close()


@pytest.fixture(scope="module")
def page(playwright_instance, depot, artifacts):
    with tempfile.TemporaryDirectory(prefix="tw-chromium-") as profile:
        ctx = launch_chromium(playwright_instance, profile, viewport={"width": 1024, "height": 600},
                              locale="en-GB")
        pg = ctx.pages[0] if ctx.pages else ctx.new_page()
        pg.errors = []  # type: ignore[attr-defined]
        pg.requests = []  # type: ignore[attr-defined]
        pg.on("pageerror", lambda e: pg.errors.append(str(e)))
        # "Failed to load resource" is the browser noting an HTTP error status (the wrong PIN's
        # 403, the bridge being down): expected here; script errors are not.
        pg.on("console", lambda m: pg.errors.append(m.text)
              if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
        pg.on("request", lambda r: pg.requests.append(r.url))
        pg.set_default_timeout(10_000)
        pg.goto(depot.url)
        pg.wait_for_selector(f'.card[data-device="{DEV}"]')
        yield pg
        ctx.close()


def _card(page, dev=DEV):
    return page.locator(f'.card[data-device="{dev}"]')


def _shot(page, artifacts, name):
    page.screenshot(path=str(artifacts / f"{name}.png"))


def test_bag_appears_stable_within_a_second_of_the_reading(page, depot, artifacts):
    from playwright.sync_api import expect

    tag = label(10100)
    reading = depot.weigh(0, 30000, tag, swing_g=300)
    card = _card(page)
    expect(card.locator(".vtag")).to_have_text(tag)
    expect(card.locator('.weight[data-stable="1"] .num')).to_have_text(f"{reading['net_g'] / 1000:.2f}")
    expect(card.locator(".vword")).to_have_text("ACCEPTED")
    key = f"card:{DEV}:{reading['seq']}"
    shown_ms = page.evaluate("(k) => window.tw.shown.get(k)", key)
    assert shown_ms, "the page never marked the reading as shown"
    delay_ms = shown_ms - reading["received_at"] * 1000.0
    assert -50 <= delay_ms <= 1000, f"shown {delay_ms:.0f} ms after the bridge stored it"
    page.click('[data-tab="bags"]')
    expect(page.locator(f'#bag-rows tr[data-id="{reading["id"]}"]')).to_contain_text(f"{reading['net_g'] / 1000:.2f} kg")
    _shot(page, artifacts, "1-accepted-1024x600")


def test_rejected_tag_shows_its_reason_in_french(page, depot, artifacts):
    from playwright.sync_api import expect

    depot.lift(0)
    tag = label(99001)  # issued to another site
    reading = depot.weigh(0, 25000, tag)
    assert reading["verdict"] == "reject" and reading["reason"] == "TAG-SITE"
    card = _card(page)
    expect(card.locator(".vtag")).to_have_text(tag)
    expect(card.locator(".vreason")).to_have_text(R.message(R.TAG_SITE, "en"))
    page.click("#lang")  # one tap
    expect(card.locator(".vword")).to_have_text("REFUSÉ")
    expect(card.locator(".vreason")).to_have_text(R.message(R.TAG_SITE, "fr"))
    page.click('[data-tab="attention"]')
    item = page.locator(f'.att[data-id="{reading["id"]}"]')
    expect(item).to_contain_text(R.message(R.TAG_SITE, "fr"))
    expect(item).to_contain_text(R.hint(R.TAG_SITE, "fr"))
    _shot(page, artifacts, "2-rejected-fr-1024x600")
    page.reload()  # the choice is remembered
    expect(_card(page).locator(".vreason")).to_have_text(R.message(R.TAG_SITE, "fr"))
    expect(page.locator("#lang")).to_have_text("EN")
    assert page.evaluate("document.documentElement.lang") == "fr"
    page.click("#lang")
    expect(page.locator("#lang")).to_have_text("FR")


def test_voiding_a_reading_asks_for_the_pin(page, depot, artifacts):
    from playwright.sync_api import expect

    rid = depot.readings()[-1]["id"]
    page.click('[data-tab="attention"]')
    page.locator(f'.att[data-id="{rid}"] button').click()
    dialog = page.locator("#pin-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator(".key")).to_have_count(12)
    page.click("#pin-ok")
    expect(page.locator("#pin-msg")).to_have_text("Type your PIN.")
    for k in "0000":
        page.click(f'.key[data-key="{k}"]')
    page.locator("#void-choices button").nth(1).click()  # "Wrong tag on the bag"
    page.click("#pin-ok")
    expect(page.locator("#pin-msg")).to_have_text("Wrong PIN.")
    _shot(page, artifacts, "3-void-pin-1024x600")
    assert depot.readings()[-1]["voided"] == 0
    for k in PIN:
        page.click(f'.key[data-key="{k}"]')
    page.click("#pin-ok")
    expect(dialog).to_be_hidden()
    expect(page.locator("#toast")).to_contain_text("Reading voided.")
    expect(page.locator(f'.att[data-id="{rid}"]')).to_have_count(0)
    row = depot.readings()[-1]
    assert row["voided"] == 1 and row["void_reason"] == "Wrong tag on the bag"
    log = depot.bridge.queue.audit_log()
    assert (log[0]["actor"], log[0]["action"]) == (OPERATOR, "void")
    assert (log[1]["actor"], log[1]["action"]) == ("?", "pin_failed")
    page.click('[data-tab="bags"]')
    expect(page.locator(f'#bag-rows tr[data-id="{rid}"]')).to_contain_text("VOIDED")


def test_tare_goes_to_the_station_and_shows_its_result(page, depot, artifacts):
    from playwright.sync_api import expect

    _card(page).locator('button[data-op="tare"]').click()
    expect(page.locator("#pin-title")).to_have_text("Tare Receiving A")
    for k in PIN:
        page.keyboard.press(k)  # a keyboard works too
    page.keyboard.press("Enter")
    toast = page.locator("#toast")
    expect(toast).to_be_visible()
    expect(toast).to_contain_text(f"{OPERATOR}: ")
    text = toast.inner_text()
    assert "Done." in text or "moving" in text, text  # the station's own RESULT
    entry = depot.bridge.queue.audit_log()[0]
    assert (entry["actor"], entry["action"]) == (OPERATOR, "tare")
    assert json.loads(entry["detail"])["result"] in ("ok", "refused_motion")
    _shot(page, artifacts, "4-tare-1024x600")


def test_page_survives_the_bridge_restarting(page, depot, artifacts):
    from playwright.sync_api import expect

    depot.stop_bridge()
    expect(page.locator("#conn")).to_have_attribute("data-state", "reconnecting", timeout=5000)
    _shot(page, artifacts, "5-bridge-down-1024x600")
    depot.start_bridge()
    expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=10_000)
    depot.online()
    tag = label(10101)
    reading = depot.weigh(1, 41000, tag)  # on the other station: the first one is tared
    card = _card(page, "1002")
    expect(card.locator(".vtag")).to_have_text(tag)
    expect(card.locator('.weight[data-stable="1"] .num')).to_have_text(f"{reading['net_g'] / 1000:.2f}")
    expect(card.locator(".vword")).to_have_text("ACCEPTED")
    _shot(page, artifacts, "6-after-restart-1024x600")
    page.set_viewport_size({"width": 1440, "height": 900})
    page.click('[data-tab="bags"]')
    time.sleep(0.2)
    _shot(page, artifacts, "7-desktop-1440x900")
    page.set_viewport_size({"width": 1024, "height": 600})


def test_everything_came_from_the_bridge_and_nothing_failed(page, depot):
    origin = depot.url.rstrip("/")
    foreign = [u for u in page.requests if not u.startswith(origin)]
    assert foreign == [], foreign  # no CDN, no font service: works with no internet at all
    real = [e for e in page.errors if "ERR_CONNECTION_REFUSED" not in e and "EventSource" not in e]
    assert real == [], real
