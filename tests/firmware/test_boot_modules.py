"""The boot's cold modules (assemble, settings, board) serve their host-facing names through
module __getattr__ from private constants and long-string tables: the names and values tools
read stay the same."""

import json
from pathlib import Path

import pytest

from tagweigh import hw

hw.install_fakes()  # fake machine/micropython modules for the firmware

ROOT = Path(__file__).resolve().parents[2]

from twstation import app, assemble, board, config, settings, station  # noqa: E402
from twstation.errors import ConfigError  # noqa: E402


def test_settings_limits_through_getattr():
    assert settings.KEY_LEN == 32 and config.KEY_LEN == 32
    assert settings.MAX_FILE == 2048 and config.MAX_FILE == 2048
    with pytest.raises(AttributeError):
        settings.NOT_A_NAME  # noqa: B018


def test_assemble_host_names():
    assert app.JOURNAL_SEGMENTS == 8 and app.RECORD == 63
    assert app.journal_bytes(1000) == 1000 * 63 + 8 * (18 + 255)
    assert station.STATE_NAMES == ("idle", "weighing", "stable", "tag", "validate", "sign",
                                   "journal", "send", "await_ack", "feedback", "remove")
    assert station.STATE_NAMES[assemble._IDLE] == "idle"
    with pytest.raises(AttributeError):
        assemble.NOT_A_NAME  # noqa: B018


def _spec():
    return json.loads((ROOT / "hardware" / "boards" / "esp32-devkitc.json").read_text())


def test_board_tables_checked():
    spec = _spec()
    assert board.validate(spec) is spec
    spec["chip"] = "esp8266"
    with pytest.raises(ConfigError, match=r"one of \['esp32', 'esp32s3'\], got 'esp8266'"):
        board.validate(spec)
    spec = _spec()
    del spec["hx711"]
    with pytest.raises(ConfigError, match="section hx711 is missing"):
        board.validate(spec)
    spec = _spec()
    spec["leds"]["ok"] = 6  # flash pin on the ESP32
    with pytest.raises(ConfigError, match="leds.ok: GPIO6 is wired to the module's flash"):
        board.validate(spec)
    spec = _spec()
    spec["scanner"]["tx"] = 1  # the console's TX
    with pytest.raises(ConfigError, match=r"scanner.tx: GPIO1 is the console UART \(console.tx\)"):
        board.validate(spec)
    spec = _spec()
    spec["chip"] = "esp32s3"
    spec["hx711"]["dout"] = 22  # absent on the S3
    with pytest.raises(ConfigError, match="hx711.dout: GPIO22 does not exist on esp32s3"):
        board.validate(spec)
