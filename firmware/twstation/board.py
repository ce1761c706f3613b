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

from twproto.port import const
from twstation.errors import ConfigError

# The tables below are long string constants split when the board is read: a cold module's names
# stay interned for good (MicroPython never frees a qstr), and a string of 11+ characters is not
# interned, nor are the words split() makes from it (firmware/MEMORY.md).
# Signals, one "section key direction" triple each: "i" input, "o" output, "io" open-drain both
# ways (I2C). The first section (hx711) is required.
_SIGNALS = const(
    "hx711 dout i hx711 sck o "
    "mfrc522 sck o mfrc522 mosi o mfrc522 miso i mfrc522 cs o mfrc522 rst o "
    "scanner tx o scanner rx i "
    "leds ok o leds bad o leds attn o "
    "buzzer pin o button pin i "
    "i2c sda io i2c scl io"
)
# Per chip (names in _CHIP_NAMES, same order): highest GPIO, GPIOs that do not exist, pins wired
# to the module's flash/PSRAM, input-only pins (no output driver, no pull resistors).
_CHIP_NAMES = const("esp32 esp32s3")
_CHIPS = const((
    (39, (20, 24, 28, 29, 30, 31), (6, 7, 8, 9, 10, 11), (34, 35, 36, 37, 38, 39)),
    (48, (22, 23, 24, 25), (26, 27, 28, 29, 30, 31, 32), ()),
))
# the board file's other keys the checks and build() read (not interned: see above)
_KEYS = const("chip console button pin pull up external scanner baud")


def validate(spec):
    """Check a board dict; return it. ConfigError names the first wrong field."""
    if not isinstance(spec, dict):
        raise ConfigError("board: the file must hold a JSON object")
    chip_k, console_k, button, pin, pull_k, up, external, scanner, baud_k = _KEYS.split()
    names = _CHIP_NAMES.split()
    chip = spec.get(chip_k)
    if chip not in names:
        raise ConfigError("board: chip must be one of %s, got %r" % (sorted(names), chip))
    top, absent, flash, input_only = _CHIPS[names.index(chip)]
    signals = _SIGNALS.split()
    if signals[0] not in spec:
        raise ConfigError("board: section %s is missing" % signals[0])
    console = spec.get(console_k) or {}
    reserved = {}
    for key in ("tx", "rx"):
        if key in console:
            reserved[console[key]] = console_k + "." + key
    used = {}
    for i in range(0, len(signals), 3):
        section, key, direction = signals[i:i + 3]
        if section not in spec:
            continue
        if not isinstance(spec[section], dict):
            raise ConfigError("board: section %s must be an object" % section)
        where = section + "." + key
        gpio = spec[section].get(key)
        if type(gpio) is not int:
            raise ConfigError("board: %s must be a GPIO number, got %r" % (where, gpio))
        if gpio < 0 or gpio > top or gpio in absent:
            raise ConfigError("board: %s: GPIO%d does not exist on %s" % (where, gpio, chip))
        if gpio in flash:
            raise ConfigError("board: %s: GPIO%d is wired to the module's flash" % (where, gpio))
        if gpio in reserved:
            raise ConfigError("board: %s: GPIO%d is the console UART (%s)" % (where, gpio, reserved[gpio]))
        if gpio in used:
            raise ConfigError("board: GPIO%d used twice: %s and %s" % (gpio, used[gpio], where))
        if direction != "i" and gpio in input_only:
            raise ConfigError("board: %s: GPIO%d is input-only and cannot drive an output" % (where, gpio))
        used[gpio] = where
    if button in spec:
        pull = spec[button].get(pull_k, up)
        if pull not in (up, external):
            raise ConfigError("board: button.pull must be 'up' or 'external', got %r" % (pull,))
        if pull == up and spec[button][pin] in input_only:
            raise ConfigError("board: button.pin: GPIO%d has no internal pull-up; set pull to "
                              "'external' and fit a resistor" % spec[button][pin])
    for section, key in ((scanner, "uart"), ("mfrc522", "spi")):
        if section in spec and spec[section].get(key) not in (1, 2):
            raise ConfigError("board: %s.%s must be 1 or 2 (0 is the console)" % (section, key))
    if scanner in spec:
        baud = spec[scanner].get(baud_k, 9600)
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

    def has(self, name):
        return name in self.spec

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
        return machine.UART(s["uart"], baudrate=s.get(_KEYS.split()[-1], 9600), tx=s["tx"], rx=s["rx"],
                            rxbuf=rxbuf, timeout=0)

    def leds(self):
        s = self.spec["leds"]
        Pin = machine.Pin
        return tuple(Pin(s[k], Pin.OUT, value=0) for k in ("ok", "bad", "attn"))

    def buzzer(self):
        pin = _KEYS.split()[3]
        return machine.PWM(machine.Pin(self.spec["buzzer"][pin]), freq=2000, duty_u16=0)

    def button(self):
        _, _, button, pin, pull, up, _, _, _ = _KEYS.split()
        s = self.spec[button]
        Pin = machine.Pin
        if s.get(pull, up) == up:
            return Pin(s[pin], Pin.IN, Pin.PULL_UP)
        return Pin(s[pin], Pin.IN)  # external pull-up resistor

    def i2c(self):
        s = self.spec["i2c"]
        Pin = machine.Pin
        return machine.I2C(s.get("id", 0), sda=Pin(s["sda"]), scl=Pin(s["scl"]),
                           freq=s.get("freq", 400000))
