# Boot-time assembly of a Station from what is on the flash (/station.json, /key.bin,
# /board.json, /scale.json, /ruleset.json, /journal/), and the technician's self-test without
# the station loop. Imported by twstation.app's build()/selftest() and forgotten afterwards
# (twstation.COLD): this code runs once per boot, so it does not stay in the ESP32's heap.
from twproto.mac import Mac
from twproto.port import const
from twstation import settings
from twstation import forget
from twstation.errors import DriverError, StationError

_SEGMENTS = const(8)  # journal segments
_RECORD = const(63)  # journal bytes of a typical READING (journal.TYPICAL_RECORD)
# journal_bytes(readings) = readings * _RECORD + _SLACK: flash bytes for `readings` typical
# READINGs, with the segment headers and the slack of a partly filled segment (journal.py)
_SLACK = const(2184)  # 8 segments * (18 header + 255 slack)
# For tools and tests, served by __getattr__ below under names of 11+ characters (a literal that
# long is not interned: this module's names would stay in the station's heap after the boot):
# JOURNAL_SEGMENTS, RECORD, journal_bytes(readings) and STATE_NAMES, the names of the station's
# reading states (station.py _IDLE..._REMOVE; station.STATE_NAMES reaches it through station's
# module __getattr__).
_STATES = const("idle weighing stable tag validate sign journal send await_ack feedback remove")


_HOST = const("JOURNAL_SEGMENTS RECORD journal_bytes STATE_NAMES")


def __getattr__(name):
    names = _HOST.split()
    if name not in names:
        raise AttributeError(name)
    return (_SEGMENTS, _RECORD, lambda n: n * _RECORD + _SLACK,
            tuple(_STATES.split()))[names.index(name)]


# Private copies of station.py's numbers station() needs (tests/protocol/test_bodies_numbers.py
# checks the protocol's against twproto.messages; _IDLE against station.STATE_NAMES).
_IDLE = const(0)
_RULE_CAPACITY = const(256)  # recent readings the duplicate rules remember
_BODY = const(3)  # frame: offset of the body
_MAX_FRAME = const(253)
_T_READING = const(0x10)
_SF_READER_FAULT = const(0x80)
_EV_READER_FAULT = const(5)
_EV_SCANNER_FAULT = const(6)
_EV_JOURNAL_RECOVERED = const(11)
_EV_BOOT = const(13)
_SEV_INFO = const(0)
_SEV_WARNING = const(1)
_SEV_ERROR = const(2)


def journal(root, config):
    """The journal the settings ask for, opened (and recovered) under root/journal."""
    from twstation.journal import Journal

    return Journal(settings.join(root, "journal"), config.journal_capacity * _RECORD + _SLACK,
                   warn_pct=config.journal_warn_pct, segments=_SEGMENTS)


def devices(board, config):
    """The devices the board and the settings ask for: (Devices, HX711 rate)."""
    from twstation.hx711 import HX711

    dout, sck = board.hx711()
    rate = board.spec["hx711"].get("rate_sps", 10)
    hx = HX711(dout, sck, 128, rate)
    rfid = scanner = feedback = None
    faults = []
    if config.reader in ("rfid", "both") and board.has("mfrc522"):
        from twstation.mfrc522 import MFRC522

        spi, cs, rst = board.mfrc522()
        try:
            rfid = MFRC522(spi, cs, rst)
        except DriverError:
            # a dead reader must not stop the scale, the journal and the backlog: the station
            # runs, flags READER_FAULT and raises the event; the self-test says "not_found"
            faults.append("rfid")
    if config.reader in ("qr", "both") and board.has("scanner"):
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
    from twstation.link import Link, UsbStream

    cfg = settings.load(root)
    mac = Mac(settings.load_key(root))  # the key goes into the MAC and nowhere else
    if board is None:
        from twstation import board as board_mod

        board = board_mod.load(settings.join(root, "board.json"))
    if clock is None:
        from twproto import port as clock  # its ticks_ms(): the default clock
    devs, rate = devices(board, cfg)
    # the scale engine with the stored calibration and zero. Without /scale.json the station
    # runs uncalibrated (1 count per gram, flagged in HELLO/STATUS) and takes no readings.
    from twstation.calib import CalStore, Calibration
    from twstation.scale import Scale

    store = CalStore(settings.join(root, "scale.json"))
    got = store.load()  # CalibrationError for a bad file: never guess a calibration
    if got is None:
        sc = Scale(Calibration(0, 0, 1, 1, cfg.division_g, cfg.capacity_g), sps=rate, store=store)
        sc.calibrated = False
    else:
        sc = Scale(got[0], sps=rate, zero=got[1], store=store)
        sc.calibrated = True
    jnl = journal(root, cfg)
    boot = settings.next_boot(root)
    link = Link(stream if stream is not None else UsbStream(), mac, clock, urandom)
    st = station(devs, sc, jnl, cfg, link, clock=clock, boot=boot, root=root,
                 reboot=reboot)
    forget()  # the boot's validation code and this module (twstation.COLD)
    return st


def selftest(root="/", board=None, clock=None):
    """Self-test without the station loop (REPL tooling): builds the parts, returns the dict."""
    from twstation import selftest as st_mod

    cfg = settings.load(root)
    if board is None:
        from twstation import board as board_mod

        board = board_mod.load(settings.join(root, "board.json"))
    devs, _ = devices(board, cfg)
    try:
        jnl = journal(root, cfg)
    except StationError:
        jnl = None
    r = st_mod.run(devs, jnl, root, clock)
    if jnl is None:
        r["jnl"] = "corrupt"
        r["ok"] = False
    return r


class Devices:
    """The hardware the station uses, built from the board (or by the simulator/tests from fake
    pins wired to models). hx711 is required; rfid/scanner per config 'reader'. station() copies
    them onto the Station (this class is cold: only assembly and the self-test use it)."""

    def __init__(self, hx711, rfid=None, scanner=None, feedback=None):
        self.hx711 = hx711
        self.rfid = rfid
        self.scanner = scanner
        self.feedback = feedback
        self.faults = []  # parts that failed to start ("rfid", "scanner")


def station(devices, scale, journal, config, link, clock=None, boot=1, root="/", ruleset=None,
            reboot=None):
    """A Station with all its state set (what Station.__init__ did: it runs once per boot, so it
    lives here, in a module the heap drops after the boot). Without `ruleset` it is loaded from
    the station's rule-set file (none if missing or invalid: SF_NO_RULESET)."""
    from twproto import bodies as M
    from twproto import port
    from twproto import rules
    from twstation.station import Station, _u32

    st = Station()
    # the devices become the station's own attributes (no Devices object stays resident)
    st.dev = st  # tools and tests read st.dev.feedback / st.dev.rfid
    st.hx711 = devices.hx711
    st.rfid = devices.rfid
    st.scanner = devices.scanner
    st.feedback = devices.feedback
    st.faults = devices.faults
    st.scale = scale
    st.journal = journal
    st.config = config
    st.link = link
    # anything with ticks_ms(): tests pass their clock; by default twproto.port itself
    st.clock = clock if clock is not None else port
    st.boot = boot
    st.root = root
    st._reboot = reboot
    if ruleset is None:
        from twproto.errors import ProtocolError
        from twproto.ruleset import load_file

        try:
            ruleset = load_file(settings.join(root, "ruleset.json"))
        except (OSError, ValueError, ProtocolError):  # missing or invalid: SF_NO_RULESET
            ruleset = None
        else:
            ruleset.drop_document()  # ~4 KB the station never reads
    st.ruleset = ruleset
    st.rule_state = rules.MemoryRuleState(_RULE_CAPACITY)
    now = st.clock.ticks_ms()
    # deadlines and last-seen ticks (_AT_*), then the last LIVE's net (None: none sent) and flags
    st._at = [now] * 10 + [None, 0]
    st.uptime_ms = 0
    st.state = _IDLE
    st.running = True
    st.maintenance = False
    st.operator = config.operator
    # time: synced when the bridge told us (WELCOME with time, or SET_TIME)
    st._t0 = None  # (Unix seconds, uptime_ms) at the last sync
    # binding
    st._tag = None  # (kind, bytes) held
    st.net_g = 0  # captured stable net weight
    st._last = None  # last bound tag, for repeat suppression
    # reading in progress
    st.reading = M.Reading()
    st.verdict = None  # the rule set's Verdict on it
    st.result = None  # the bridge's verdict byte on it (from its ACK), None until then
    st.last_result = None  # (seq or None, station verdict byte, bridge verdict byte or None)
    # journal head: sequence and chain survive reboot
    last_seq, chain = journal.head()
    st.seq = last_seq
    st.prev = chain if isinstance(chain, int) else _u32(chain)
    st.boot_first_seq = last_seq + 1
    # session and backlog
    st.session = False
    st._inflight = []  # seqs sent, not yet acknowledged (oldest first, <= send_window)
    st.window = 0  # readings in flight allowed: min(config, WELCOME.window)
    st.skip = []  # seqs the bridge refused this session (NACK bad_mac/malformed/conflict)
    st._backoff = 0
    st.cmd_id = 0  # the last command run
    st._buf = bytearray(_MAX_FRAME)  # its RESULT frame (SPEC 9 retries), st._n bytes long
    st._n = 0
    st._events = []  # (code, severity, detail, uptime) while no session
    st._ev_last = {}
    st._bg = 0
    st.garbage = 0  # scanner lines dropped (its garbage + overlong counts)
    # the station's own faults, kept as the HELLO/STATUS flag bits they raise:
    # _SF_SCALE_FAULT (HX711 silent), _SF_READER_FAULT, _SF_ZERO_OUT_OF_RANGE (boot zero);
    # the bits above 0xFF are its private booleans (station.py _B_*), all false at boot
    st._sf = 0
    st.timeouts = 0  # HX711 stalls
    st.raw = 0
    st._rs_push = None  # (tmp path, expected length, sha256 obj, expected digest, received)
    st._reboot_at = None
    # Readings not yet acknowledged are still in the journal: feed them to the rule state so
    # a duplicate weighed before the reboot is still seen (without a rule set nothing reads it).
    if ruleset is not None:
        for fr in journal.pending():
            if fr[2] != _T_READING:
                continue
            # the station unpacks READINGs only here: the unpacker is not resident (dropped
            # below, as this module is by build's forget())
            from twproto.readingbody import unpack_reading

            try:
                r = unpack_reading(memoryview(fr)[_BODY : _BODY + fr[1]])
            except Exception:
                continue
            st.rule_state.record(r, rules.evaluate(ruleset, r, None, None))
        forget(("twproto.readingbody",))  # a no-op when no READING was pending
    # boot events (queued until the first session)
    st.event(_EV_BOOT, _SEV_INFO, boot)
    if "rfid" in devices.faults:
        st._sf = _SF_READER_FAULT
        st.event(_EV_READER_FAULT, _SEV_ERROR, 0)
    if "scanner" in devices.faults:
        st.event(_EV_SCANNER_FAULT, _SEV_ERROR, 0)
    if getattr(journal, "recovered", 0):
        st.event(_EV_JOURNAL_RECOVERED, _SEV_WARNING, journal.recovered)
    return st
