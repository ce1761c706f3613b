# The station's pins, from one board file (hardware/boards/<board>.json, copied to the station as
# /board.json). The drivers take the objects built here; no driver knows a pin number.
#
#   board = load()                    # reads and validates /board.json
#   dout, sck = board.hx711()         # Pin(IN), Pin(OUT, 0)
#   spi, cs, rst = board.mfrc522()    # SPI, Pin(OUT, 1), Pin(OUT, 1)
#
# All validation happens here, when the file is read, with messages naming the field; parts are
# built only when asked for (a scanner station never builds the RFID SPI bus).
import json

import machine

from twstation.errors import ConfigError

# (section, key, direction): "i" input, "o" output, "io" open-drain both ways (I2C).
SIGNALS = (
    ("hx711", "dout", "i"),
    ("hx711", "sck", "o"),
    ("mfrc522", "sck", "o"),
    ("mfrc522", "mosi", "o"),
    ("mfrc522", "miso", "i"),
    ("mfrc522", "cs", "o"),
    ("mfrc522", "rst", "o"),
    ("scanner", "tx", "o"),
    ("scanner", "rx", "i"),
    ("leds", "ok", "o"),
    ("leds", "bad", "o"),
    ("leds", "attn", "o"),
    ("buzzer", "pin", "o"),
    ("button", "pin", "i"),
    ("i2c", "sda", "io"),
    ("i2c", "scl", "io"),
)
REQUIRED = ("hx711",)

# Per chip: highest GPIO, GPIOs that do not exist, pins wired to the module's flash/PSRAM,
# input-only pins (no output driver, no pull resistors).
CHIPS = {
    "esp32": (39, (20, 24, 28, 29, 30, 31), (6, 7, 8, 9, 10, 11), (34, 35, 36, 37, 38, 39)),
    "esp32s3": (48, (22, 23, 24, 25), (26, 27, 28, 29, 30, 31, 32), ()),
}


def _pin(spec, section, key, chip):
    where = section + "." + key
    value = spec[section].get(key)
    if type(value) is not int:
        raise ConfigError("board: %s must be a GPIO number, got %r" % (where, value))
    top, absent, flash, _ = CHIPS[chip]
    if value < 0 or value > top or value in absent:
        raise ConfigError("board: %s: GPIO%d does not exist on %s" % (where, value, chip))
    if value in flash:
        raise ConfigError("board: %s: GPIO%d is wired to the module's flash" % (where, value))
    return value


def validate(spec):
    """Check a board dict; return it. ConfigError names the first wrong field."""
    if not isinstance(spec, dict):
        raise ConfigError("board: the file must hold a JSON object")
    chip = spec.get("chip")
    if chip not in CHIPS:
        raise ConfigError("board: chip must be one of %s, got %r" % (sorted(CHIPS), chip))
    for section in REQUIRED:
        if section not in spec:
            raise ConfigError("board: section %s is missing" % section)
    console = spec.get("console") or {}
    reserved = {}
    for key in ("tx", "rx"):
        if key in console:
            reserved[console[key]] = "console." + key
    input_only = CHIPS[chip][3]
    used = {}
    for section, key, direction in SIGNALS:
        if section not in spec:
            continue
        if not isinstance(spec[section], dict):
            raise ConfigError("board: section %s must be an object" % section)
        where = section + "." + key
        gpio = _pin(spec, section, key, chip)
        if gpio in reserved:
            raise ConfigError("board: %s: GPIO%d is the console UART (%s)" % (where, gpio, reserved[gpio]))
        if gpio in used:
            raise ConfigError("board: GPIO%d used twice: %s and %s" % (gpio, used[gpio], where))
        if direction != "i" and gpio in input_only:
            raise ConfigError("board: %s: GPIO%d is input-only and cannot drive an output" % (where, gpio))
        used[gpio] = where
    if "button" in spec:
        pull = spec["button"].get("pull", "up")
        if pull not in ("up", "external"):
            raise ConfigError("board: button.pull must be 'up' or 'external', got %r" % (pull,))
        if pull == "up" and spec["button"]["pin"] in input_only:
            raise ConfigError("board: button.pin: GPIO%d has no internal pull-up; set pull to "
                              "'external' and fit a resistor" % spec["button"]["pin"])
    for section, key in (("scanner", "uart"), ("mfrc522", "spi")):
        if section in spec and spec[section].get(key) not in (1, 2):
            raise ConfigError("board: %s.%s must be 1 or 2 (0 is the console)" % (section, key))
    if "scanner" in spec:
        baud = spec["scanner"].get("baud", 9600)
        if type(baud) is not int or not 1200 <= baud <= 921600:
            raise ConfigError("board: scanner.baud out of range: %r" % (baud,))
    return spec


def load(path="/board.json"):
    try:
        with open(path) as f:
            spec = json.load(f)
    except OSError:
        raise ConfigError("board: cannot read %s" % path)
    except ValueError:
        raise ConfigError("board: %s is not valid JSON" % path)
    return Board(spec)


class Board:
    def __init__(self, spec):
        self.spec = validate(spec)
        self.name = spec.get("board", "?")
        self.chip = spec["chip"]

    def has(self, section):
        return section in self.spec

    def hx711(self):
        s = self.spec["hx711"]
        Pin = machine.Pin
        return Pin(s["dout"], Pin.IN), Pin(s["sck"], Pin.OUT, value=0)

    def mfrc522(self):
        s = self.spec["mfrc522"]
        Pin = machine.Pin
        cs = Pin(s["cs"], Pin.OUT, value=1)  # deselected before the bus starts
        rst = Pin(s["rst"], Pin.OUT, value=1)
        spi = machine.SPI(s["spi"], baudrate=s.get("baudrate", 1000000), polarity=0, phase=0,
                          sck=Pin(s["sck"]), mosi=Pin(s["mosi"]), miso=Pin(s["miso"]))
        return spi, cs, rst

    def scanner(self, rxbuf=256):
        s = self.spec["scanner"]
        return machine.UART(s["uart"], baudrate=s.get("baud", 9600), tx=s["tx"], rx=s["rx"],
                            rxbuf=rxbuf, timeout=0)

    def leds(self):
        s = self.spec["leds"]
        Pin = machine.Pin
        return tuple(Pin(s[k], Pin.OUT, value=0) for k in ("ok", "bad", "attn"))

    def buzzer(self):
        return machine.PWM(machine.Pin(self.spec["buzzer"]["pin"]), freq=2000, duty_u16=0)

    def button(self):
        s = self.spec["button"]
        Pin = machine.Pin
        if s.get("pull", "up") == "up":
            return Pin(s["pin"], Pin.IN, Pin.PULL_UP)
        return Pin(s["pin"], Pin.IN)  # external pull-up resistor

    def i2c(self):
        s = self.spec["i2c"]
        Pin = machine.Pin
        return machine.I2C(s.get("id", 0), sda=Pin(s["sda"]), scl=Pin(s["scl"]),
                           freq=s.get("freq", 400000))
