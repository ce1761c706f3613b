"""The wiring diagram source agrees with the pin map and renders; the BOM adds up."""

import csv
import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HW = ROOT / "hardware"

# (device connector, device pin) -> the board-file field wired to it.
DEVICE_PINS = {
    ("HX711", "DT"): ("hx711", "dout"),
    ("HX711", "SCK"): ("hx711", "sck"),
    ("RC522", "SCK"): ("mfrc522", "sck"),
    ("RC522", "MOSI"): ("mfrc522", "mosi"),
    ("RC522", "MISO"): ("mfrc522", "miso"),
    ("RC522", "SDA"): ("mfrc522", "cs"),
    ("RC522", "RST"): ("mfrc522", "rst"),
    ("SCANNER", "RXD"): ("scanner", "tx"),  # ESP32 TX -> scanner RX
    ("SCANNER", "TXD"): ("scanner", "rx"),
    ("PANEL", "OK"): ("leds", "ok"),
    ("PANEL", "BAD"): ("leds", "bad"),
    ("PANEL", "ATTN"): ("leds", "attn"),
    ("PANEL", "BUZZ"): ("buzzer", "pin"),
    ("PANEL", "BTN"): ("button", "pin"),
    ("OLED", "SDA"): ("i2c", "sda"),
    ("OLED", "SCL"): ("i2c", "scl"),
}
SUPPLY = {"RC522": "3V3", "HX711": "3V3", "SCANNER": "5V", "OLED": "3V3"}


def esp32_links():
    """{(device, pin): ESP32 pin label} from every ESP32 -> cable -> device connection."""
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load((HW / "wiring.yml").read_text())
    links = {}
    for left, _cable, right in doc["connections"]:
        (lname, lpins), (rname, rpins) = next(iter(left.items())), next(iter(right.items()))
        if lname != "ESP32":
            continue
        assert len(lpins) == len(rpins)
        for a, b in zip(lpins, rpins):
            links[(rname, b)] = a
    return doc, links


def test_every_signal_wire_matches_the_devkitc_pin_map():
    spec = json.loads((HW / "boards" / "esp32-devkitc.json").read_text())
    _, links = esp32_links()
    for (device, pin), (section, key) in DEVICE_PINS.items():
        assert links[(device, pin)] == f"IO{spec[section][key]}", (device, pin)


def test_supplies_are_the_right_voltage():
    _, links = esp32_links()
    for device, rail in SUPPLY.items():
        vcc = next(p for (d, p) in links if d == device and p in ("VCC", "3.3V", "5V"))
        assert links[(device, vcc)] == rail, f"{device} must be fed from {rail}"


def test_load_cell_shield_is_grounded_at_the_hx711_end_only():
    doc, _ = esp32_links()
    (cell_link,) = [c for c in doc["connections"] if "W_CELL" in c[1]]
    assert cell_link[1]["W_CELL"][-1] == "s"
    assert cell_link[0]["HX711"][-1] == "E-" and cell_link[2]["CELL"][-1] == "SHIELD"
    assert doc["cables"]["W_CELL"]["shield"] is True


def test_wiring_is_valid_wireviz_input():
    wv = pytest.importorskip("wireviz.wireviz")
    harness = wv.parse((HW / "wiring.yml").read_text(), return_types="harness")
    source = harness.create_graph().source  # builds the Graphviz source, no 'dot' needed
    for name in ("ESP32", "HX711", "RC522", "SCANNER", "OLED", "PANEL", "W_CELL"):
        assert name in source


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' not installed")
def test_wiring_renders_to_svg(tmp_path):
    wv = pytest.importorskip("wireviz.wireviz")
    wv.parse(HW / "wiring.yml", output_formats=("svg",), output_dir=tmp_path, output_name="wiring")
    svg = tmp_path / "wiring.svg"
    assert svg.exists() and b"<svg" in svg.read_bytes()[:2000]


def test_bom_arithmetic_and_total():
    rows = list(csv.DictReader((HW / "bom.csv").open(newline="")))
    assert list(rows[0])[:5] == ["part", "quantity", "example part number", "unit cost USD",
                                 "line total USD"]
    *items, total = rows
    assert total["part"].startswith("TOTAL")
    running = Decimal(0)
    for row in items:
        qty, unit, line = int(row["quantity"]), Decimal(row["unit cost USD"]), Decimal(row["line total USD"])
        assert row["example part number"], row["part"]
        assert qty * unit == line, row["part"]
        running += line
    assert Decimal(total["line total USD"]) == running


def test_bom_has_every_part_of_the_pin_map():
    text = (HW / "bom.csv").read_text().lower()
    for part in ("esp32", "hx711", "load cell", "mfrc522", "scanner", "led", "buzzer", "button",
                 "ssd1306", "enclosure", "gland", "desiccant"):
        assert part in text, part
