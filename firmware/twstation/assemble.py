# Boot-time assembly of a Station from what is on the flash (/station.json, /key.bin,
# /board.json, /scale.json, /ruleset.json, /journal/), and the technician's self-test without
# the station loop. Imported by twstation.app's build()/selftest() and forgotten afterwards
# (twstation.COLD): this code runs once per boot, so it does not stay in the ESP32's heap.
from twproto.mac import Mac
from twstation import config as config_mod
from twstation import forget
from twstation.errors import DriverError, StationError

JOURNAL_SEGMENTS = 8
RECORD = 63  # journal bytes of a typical READING (journal.TYPICAL_RECORD)


def _join(root, name):
    if not root or root == "/":
        return "/" + name
    return root.rstrip("/") + "/" + name


def journal_bytes(readings):
    """Flash bytes for `readings` typical READINGs, with the segment headers and the slack of a
    partly filled segment (journal.py)."""
    return readings * RECORD + JOURNAL_SEGMENTS * (18 + 255)


def build_scale(root, cfg, sps=10):
    """The scale engine with the stored calibration and zero. Without /scale.json the station
    runs uncalibrated (1 count per gram, flagged in HELLO/STATUS) and takes no readings."""
    from twstation.calib import CalStore, Calibration
    from twstation.scale import Scale

    store = CalStore(_join(root, "scale.json"))
    got = store.load()  # CalibrationError for a bad file: never guess a calibration
    if got is None:
        sc = Scale(Calibration(0, 0, 1, 1, cfg.division_g, cfg.capacity_g), sps=sps, store=store)
        sc.calibrated = False
    else:
        sc = Scale(got[0], sps=sps, zero=got[1], store=store)
        sc.calibrated = True
    return sc


def build_devices(board, cfg):
    from twstation.hx711 import HX711
    from twstation.station import Devices

    dout, sck = board.hx711()
    rate = board.spec["hx711"].get("rate_sps", 10)
    hx = HX711(dout, sck, 128, rate)
    rfid = scanner = feedback = None
    faults = []
    if cfg.reader in ("rfid", "both") and board.has("mfrc522"):
        from twstation.mfrc522 import MFRC522

        spi, cs, rst = board.mfrc522()
        try:
            rfid = MFRC522(spi, cs, rst)
        except DriverError:
            # a dead reader must not stop the scale, the journal and the backlog: the station
            # runs, flags READER_FAULT and raises the event; the self-test says "not_found"
            faults.append("rfid")
    if cfg.reader in ("qr", "both") and board.has("scanner"):
        from twstation.scanner import Scanner

        scanner = Scanner(board.scanner())
    if board.has("leds"):
        from twstation.feedback import Feedback

        ok, bad, attn = board.leds()
        buzzer = board.buzzer() if board.has("buzzer") else None
        feedback = Feedback(ok, bad, attn, buzzer)
    d = Devices(hx, rfid=rfid, scanner=scanner, feedback=feedback)
    d.faults = faults
    return d, rate


def build(root="/", board=None, stream=None, clock=None, reboot=None, urandom=None):
    """A ready Station. Raises StationError (ConfigError, CalibrationError, JournalCorrupt...)
    with a one-line message when the flash holds something the station cannot trust."""
    from twstation.journal import Journal
    from twstation.link import Link, UsbStream
    from twstation.station import Station

    cfg = config_mod.load(root)
    mac = Mac(config_mod.load_key(root))  # the key goes into the MAC and nowhere else
    if board is None:
        from twstation import board as board_mod

        board = board_mod.load(_join(root, "board.json"))
    if clock is None:
        from twproto import port as clock  # its ticks_ms(): the default clock
    devices, rate = build_devices(board, cfg)
    scale = build_scale(root, cfg, rate)
    journal = Journal(_join(root, "journal"), journal_bytes(cfg.journal_capacity),
                      warn_pct=cfg.journal_warn_pct, segments=JOURNAL_SEGMENTS)
    boot = config_mod.next_boot(root)
    link = Link(stream if stream is not None else UsbStream(), mac, clock, urandom)
    st = Station(devices, scale, journal, cfg, link, clock=clock, boot=boot, root=root,
                 reboot=reboot)
    forget()  # the boot's validation code and this module (twstation.COLD)
    return st


def selftest(root="/", board=None, clock=None):
    """Self-test without the station loop (REPL tooling): builds the parts, returns the dict."""
    from twstation import selftest as st_mod
    from twstation.journal import Journal

    cfg = config_mod.load(root)
    if board is None:
        from twstation import board as board_mod

        board = board_mod.load(_join(root, "board.json"))
    devices, _ = build_devices(board, cfg)
    try:
        journal = Journal(_join(root, "journal"), journal_bytes(cfg.journal_capacity),
                          warn_pct=cfg.journal_warn_pct, segments=JOURNAL_SEGMENTS)
    except StationError:
        journal = None
    r = st_mod.run(devices, journal, root, clock)
    if journal is None:
        r["jnl"] = "corrupt"
        r["ok"] = False
    return r
