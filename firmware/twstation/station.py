# The station: one state machine advanced by non-blocking steps (Station.step), plus the link
# session (HELLO/WELCOME, in-order backlog with a bounded window, ACKs, commands) serviced in the
# same step. Nothing here waits: every wait is a deadline checked with ticks_diff. What runs per
# step or per reading is here; the session's rare parts (HELLO, WELCOME, COMMAND, NACK, STATUS,
# EVENT) are in twstation.session, imported when needed and dropped again (firmware/MEMORY.md).
#
# Reading states (self.state):
#   IDLE       platform empty, no tag held
#   WEIGHING   load on the platform, weight not yet stable
#   STABLE     stable weight captured; waiting for a tag until bind deadline (config bind_ms)
#   TAG        tag held; waiting for a stable weight until bind deadline
#   VALIDATE   one stable weight + one tag bound: rules from the shared core give the verdict
#   SIGN       READING packed (next seq, prev = chain link of the previous READING) and MAC'd
#   JOURNAL    frame appended to the flash journal: durable before anything is sent (in the same
#              step as SIGN: the signed bytes sit in the shared TX buffer until journaled)
#   SEND       frame written to the link if a session is up and the window has room
#   AWAIT_ACK  waiting for the bridge's ACK (its verdict is authoritative) until ack deadline
#   FEEDBACK   verdict shown to the operator (accepted / rejected / attention, not synced)
#   REMOVE     the weighed bag is still on the platform: nothing new binds until it leaves
#
# Decisions (firmware/README.md explains them for operators and integrators):
#   weight then tag       STABLE -> tag within bind_ms -> reading
#   tag then weight       TAG -> stable weight within bind_ms -> reading
#   scale still moving    no capture while moving; a tag held until bind deadline while the load
#                         is on but never settles gives a reading WITHOUT the stable flag, which
#                         is never accepted (rejected NOT-STABLE): the evidence is kept
#   bag removed untagged  STABLE/WEIGHING -> platform empty: no reading (nothing to bind), attention
#   tag, no load          TAG -> bind deadline with an empty platform: tag dropped, attention
#   two tags              reader reports a collision, or a second different tag while one is held:
#                         nothing binds, EVENT multiple_tags, attention; tags are ignored until
#                         the platform is emptied or no tag is seen for bind_ms
#   same tag re-read      an RFID reader sees a tag continuously: repeats of the held or just
#                         weighed tag are ignored (it must be gone for _REPEAT_MS to count again)
#   weight changes        STABLE -> moving again: captured weight dropped, back to WEIGHING
#   journal full          refuse the reading (no record, nothing overwritten), rejected pattern,
#                         EVENT journal_full
#   maintenance mode      no readings; commands for calibration allowed
#   uncalibrated scale    no readings (no /scale.json): HELLO/STATUS flag it, tags get attention
from twproto.port import const, ticks_add, ticks_diff
from twproto import bodies as M
from twproto import rules
from twstation import forget
from twstation.errors import DriverError, StationError

TYPE_CHECKING = const(0)  # true for mypy (it knows this name): Station's attribute declarations
if TYPE_CHECKING:
    from typing import Any

    from twproto.rules import MemoryRuleState
    from twstation.link import Link
    from twstation.scale import Scale

# The protocol's numbers this module uses: private copies (the compiler inlines them: no dict
# entry, no interned name) of twproto.frame T_*/BODY/MAX_FRAME and the public numbers in
# twproto.messages; tests/protocol/test_bodies_numbers.py checks every copy against those.
_BODY = const(3)  # frame: offset of the body
_MAX_FRAME = const(253)
_T_READING = const(0x10)
_T_ACK = const(0x11)
_T_NACK = const(0x12)
_T_LIVE = const(0x21)
_ACCEPT = const(0)  # verdicts
_WARN = const(1)
_REJECT = const(2)
_F_STABLE = const(0x08)  # READING flags
_F_OUT_OF_RANGE = const(0x20)
_F_ZERO_TRACKED = const(0x40)
_F_PRESET_TARE = const(0x80)
_TAG_RFID_UID = const(0)  # tag kinds
_TAG_NDEF_TEXT = const(1)
_TAG_NDEF_URI = const(2)
_TAG_QR_TEXT = const(3)
_TAG_MAX = const(64)
_SF_ZERO_OUT_OF_RANGE = const(0x04)  # HELLO/STATUS flags the station raises (the others:
# twstation.session.flags)
_SF_SCALE_FAULT = const(0x40)
_SF_READER_FAULT = const(0x80)
_TS_NONE = const(0)  # LIVE tag state
_TS_READ = const(2)
_NACK_MALFORMED = const(1)
_EV_HX711_NOT_READY = const(1)
_EV_OVERLOAD = const(2)
_EV_UNDERLOAD = const(3)
_EV_ZERO_OUT_OF_RANGE = const(4)
_EV_READER_FAULT = const(5)
_EV_SCANNER_FAULT = const(6)
_EV_SCANNER_GARBAGE = const(7)
_EV_MULTIPLE_TAGS = const(8)
_EV_JOURNAL_NEARLY_FULL = const(9)
_EV_JOURNAL_FULL = const(10)
_EV_JOURNAL_RECOVERED = const(11)
_EV_BOOT = const(13)
_EV_MOTION_TIMEOUT = const(19)
_SEV_INFO = const(0)
_SEV_WARNING = const(1)
_SEV_ERROR = const(2)
_SEV_CRITICAL = const(3)

# Reading states (self.state). Their names for tools and tests, STATE_NAMES[state], are in
# twstation.assemble (not kept in the station's heap), reached as station.STATE_NAMES through
# the module __getattr__ at the end.
_IDLE = const(0)
_WEIGHING = const(1)
_STABLE = const(2)
_TAG = const(3)
_VALIDATE = const(4)
_SIGN = const(5)
_JOURNAL = const(6)
_SEND = const(7)
_AWAIT_ACK = const(8)
_FEEDBACK = const(9)
_REMOVE = const(10)

# Feedback patterns: the numbers of twstation.feedback (ACCEPTED, REJECTED, ATTENTION, NOT_SYNCED,
# IDLE). NOT_SYNCED / IDLE are background patterns: "not synced" while there is no session or
# readings wait in the journal, a calm heartbeat when everything is at the bridge.
_P_ACCEPTED = const(1)
_P_REJECTED = const(2)
_P_ATTENTION = const(3)
_P_NOT_SYNCED = const(4)
_P_IDLE = const(5)

_REPEAT_MS = const(1000)  # a tag unseen this long counts as a new presentation
_SAMPLE_MS = const(1000)  # no HX711 sample for this long: EVENT hx711_not_ready
_EVENT_GAP_MS = const(5000)  # the same event code is not repeated faster than this
_SESSION_IDLE_MS = const(30000)  # no valid bridge frame for this long: new HELLO (SPEC 9)
_TIME_MIN = const(1700000000)  # a bridge time before 2023-11-14 is invalid and ignored (SPEC 11)
_ACK_WAIT_MS = const(400)  # feedback waits this long for the bridge's verdict, no longer

# Deadlines and last-seen ticks, one preallocated list self._at indexed by these (one attribute
# instead of ten: each attribute name is an interned string kept in the heap for good).
_AT_DEADLINE = const(0)  # the reading state's deadline (bind, ACK wait, feedback)
_AT_HELLO = const(1)  # next HELLO while no session
_AT_RESEND = const(2)  # next resend of the oldest unacknowledged READING (or end of back-off)
_AT_RX = const(3)  # last valid bridge frame
_AT_LIVE = const(4)  # next LIVE
_AT_STATUS = const(5)  # next STATUS
_AT_SAMPLE = const(6)  # last HX711 sample
_AT_TAG_SEEN = const(7)  # last time the last bound tag was seen (repeat suppression)
_AT_CONFLICT = const(8)  # last time two tags were seen at once
_AT_TICKS = const(9)  # ticks of the previous step (uptime)
# ... and two values of the last LIVE sent (not ticks; assemble.station sets them None and 0)
_AT_LIVE_NET = const(10)  # its net weight (None: no LIVE sent yet)
_AT_LIVE_FLAGS = const(11)  # its flags

# The station's own booleans share the int self._sf with its own faults: bits 0-7 are the
# HELLO/STATUS flag bits the station raises itself (_SF_SCALE_FAULT, _SF_READER_FAULT,
# _SF_ZERO_OUT_OF_RANGE; twstation.session.flags adds the others), the bits above are private
# state (one attribute instead of seven: each attribute name is an interned string kept for good).
_B_TAG_LOADED = const(0x100)  # the held tag's bag is (or was) on the platform
_B_STABLE_CAP = const(0x200)  # the captured weight was stable (else recorded NOT-STABLE)
_B_WEIGHED = const(0x400)  # the load on the platform settled once (a bag was weighed)
_B_CONFLICT = const(0x800)  # two tags seen: nothing binds until none is seen for bind_ms
_B_OVER = const(0x1000)  # the scale was out of range at the last sample (EVENT on the edge)
_B_FILL_WARNED = const(0x2000)  # EVENT journal_nearly_full sent (again once it drained)
_B_ZERO_CHECKED = const(0x4000)  # the boot zero was compared with the stored one


def _u32(b):
    return b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)


class Station:
    # Built and given its attributes by twstation.assemble.station() (once per boot, code that
    # then leaves the heap): the devices (hx711, rfid, scanner, feedback, display, faults; dev is
    # the station itself for tools that read st.dev.feedback), scale, journal, config, link,
    # clock, rule set and rule state, and the state below; assemble.station comments each one.
    if TYPE_CHECKING:  # for mypy only: the compiler drops this block (no code, no names)
        dev: "Station"
        hx711: Any
        rfid: Any
        scanner: Any
        feedback: Any
        display: Any
        faults: list
        scale: Scale
        journal: Any
        config: Any  # twstation.config.Config (its fields are set from a table)
        link: Link
        clock: Any
        boot: int
        root: str
        _reboot: Any
        ruleset: Any
        rule_state: MemoryRuleState
        _at: list
        uptime_ms: int
        state: int
        running: bool
        maintenance: bool
        operator: int
        _t0: Any  # (Unix seconds, uptime_ms) when the time was last set; None: not synced
        _tag: Any
        net_g: int  # the captured net weight
        _last: Any  # the last bound tag (repeat suppression)
        reading: M.Reading  # the reading in progress
        verdict: Any  # the rule set's Verdict on the reading in progress
        result: Any  # the bridge's verdict byte on the reading in progress (its ACK), or None
        last_result: Any
        last_error: Any
        seq: int
        prev: int
        boot_first_seq: int
        session: bool
        _inflight: list
        window: int  # readings in flight allowed
        skip: list  # seqs the bridge refused this session
        _backoff: int
        cmd_id: int  # the last command run
        _buf: bytearray  # its RESULT frame (SPEC 9 retries)
        _n: int  # that frame's length (0: none)
        _events: list
        _ev_last: dict
        _bg: int
        garbage: int  # scanner lines dropped so far
        _sf: int
        timeouts: int  # HX711 stalls (STATUS hx711_timeouts)
        raw: int  # the last HX711 conversion
        _rs_push: Any
        _reboot_at: Any
    # ------------------------------------------------------------------ time
    def utc(self):
        """Unix seconds if synced, else None."""
        t0 = self._t0
        if t0 is None:
            return None
        return t0[0] + (self.uptime_ms - t0[1]) // 1000

    def set_time(self, t, ms=0):
        """Sync to Unix seconds t (+ ms); a time before _TIME_MIN is refused (False)."""
        if t < _TIME_MIN:
            return False
        self._t0 = (t, self.uptime_ms - ms)
        return True

    # ------------------------------------------------------------------ main step
    def step(self):
        """One non-blocking step. Returns False when the app should stop (Ctrl-C on an idle line
        or after a REBOOT command when no reboot function was given)."""
        now = self.clock.ticks_ms()
        d = ticks_diff(now, self._at[_AT_TICKS])
        if d > 0:
            self.uptime_ms += d
            self._at[_AT_TICKS] = now
        self._rx(now)
        if self.link.exit_requested:
            self.running = False
            return False
        self._sample(now)
        tag = self.poll(now)
        self.update(now, tag)
        self.send(now)
        self._live(now)
        fb = self.feedback
        if fb is not None:
            bg = _P_IDLE if self.session and not self._inflight else _P_NOT_SYNCED
            if bg != self._bg:
                self._bg = bg
                fb.background(bg, now)
            fb.tick(now)
        if self._reboot_at is not None and ticks_diff(now, self._reboot_at) >= 0:
            self._reboot_at = None
            self.close()
            if self._reboot is not None:
                self._reboot()
            self.running = False
        return self.running

    def close(self):
        c = getattr(self.journal, "close", None)
        if c is not None:
            c()

    # ------------------------------------------------------------------ scale
    def _sample(self, now):
        # hx711.poll(): a new conversion (int) or None; DriverTimeout when DOUT stayed high past
        # its stall window (unplugged, no power). Either way the loop goes on.
        sc = self.scale
        stall = False
        try:
            raw = self.hx711.poll()
        except DriverError:
            raw = None
            stall = True
        if raw is not None:
            self.raw = raw
            sc.add_sample(raw)
            self._at[_AT_SAMPLE] = now
            self._sf &= ~_SF_SCALE_FAULT
        elif not self._sf & _SF_SCALE_FAULT and ticks_diff(now, self._at[_AT_SAMPLE]) > _SAMPLE_MS:
            stall = True
        if stall:  # counted each time; the fault flag and its EVENT once until a sample comes
            self.timeouts += 1
            if not self._sf & _SF_SCALE_FAULT:
                self._sf |= _SF_SCALE_FAULT
                self.event(_EV_HX711_NOT_READY, _SEV_ERROR, self.timeouts)
        if self._at[_AT_SAMPLE] == now:
            if not self._sf & _B_ZERO_CHECKED:
                # Once the empty scale is first stable after boot, compare it with the stored
                # zero. Never silently re-zero: an out-of-range zero is reported (EVENT, STATUS
                # flag) and left for the operator (ZERO command) or the technician (calibration).
                c = sc.boot_check()
                if c != 3:  # BOOT_PENDING: not settled yet
                    self._sf |= _B_ZERO_CHECKED
                    if c == 2:  # BOOT_OUT_OF_RANGE
                        self._sf |= _SF_ZERO_OUT_OF_RANGE
                        bz = sc.boot_zero
                        self.event(_EV_ZERO_OUT_OF_RANGE, _SEV_ERROR, bz[1] if bz else 0)
            elif self._sf & _SF_ZERO_OUT_OF_RANGE and sc.stable and sc.boot_check() == 0:
                # BOOT_OK: the empty platform is back at its stored zero, so what was out of
                # range at boot was a load lying on it (a bag left there through a power cut),
                # not drift. The event stays on record; the flag clears. Real drift never does.
                self._sf &= ~_SF_ZERO_OUT_OF_RANGE
        if sc.out_of_range:
            if not self._sf & _B_OVER:
                self._sf |= _B_OVER
                net = sc.net_g
                self.event(_EV_OVERLOAD if net > 0 else _EV_UNDERLOAD, _SEV_WARNING, net)
        else:
            self._sf &= ~_B_OVER

    def _loaded(self):
        # from the newest samples (Scale.load_g), not the stability average: a bag lifted and the
        # next one put down within ~0.5 s must still be seen as two bags
        return self.scale.load_g() >= self.config.empty_g

    def stable(self):
        """The scale is settled and its HX711 answers (commands refuse tare/zero otherwise)."""
        return bool(self.scale.stable) and not self._sf & _SF_SCALE_FAULT

    # ------------------------------------------------------------------ tags
    def poll(self, now):
        """Poll the tag readers: (kind, bytes) of a tag presented, or None. Collisions and
        garbage become events here."""
        got = None
        rf = self.rfid
        if rf is not None:
            # mfrc522.poll(): NONE 0, TAG 1 (uid, ndef_kind, value), MULTIPLE 2, ERROR 3, GONE 4
            res = rf.poll()
            if res == 1:
                self._sf &= ~_SF_READER_FAULT
                k = rf.ndef_kind
                if (k == _TAG_NDEF_TEXT or k == _TAG_NDEF_URI) and rf.value:
                    got = (k, bytes(rf.value[:_TAG_MAX]))  # the label's text/URI is the tag
                else:
                    got = (_TAG_RFID_UID, bytes(rf.uid))
            elif res == 2:  # a collision: nothing binds (the scanner waits for the next step)
                self._multi(now)
                return None
            elif res == 4:
                if self._last is not None and self._last[0] != _TAG_QR_TEXT:
                    self._last = None  # the tag left the field: it may be presented again
            elif res == 3 and rf.error == 4:  # ERR_CHIP: the reader itself failed (SPI, power)
                self._sf |= _SF_READER_FAULT
                self.event(_EV_READER_FAULT, _SEV_ERROR, rf.error)
        sc = self.scanner
        if sc is not None and got is None:
            line = sc.poll()
            if line is not None:
                if isinstance(line, str):
                    line = line.encode()
                n = len(line)
                ok = 0 < n <= _TAG_MAX
                if ok:
                    for b in line:
                        if b < 0x20 or b == 0x7F:  # control characters are never part of a tag
                            ok = False
                            break
                if ok:
                    got = (_TAG_QR_TEXT, bytes(line))
                else:
                    self.event(_EV_SCANNER_GARBAGE, _SEV_WARNING, n)
                    self.show(_P_ATTENTION, now)
            bad = getattr(sc, "garbage", 0) + getattr(sc, "overlong", 0)
            if bad != self.garbage:  # the driver dropped a line (noise, baud, too long)
                self.garbage = bad
                self.event(_EV_SCANNER_GARBAGE, _SEV_WARNING, bad)
                self.show(_P_ATTENTION, now)
        if got is None:
            if self._sf & _B_CONFLICT \
                    and ticks_diff(now, self._at[_AT_CONFLICT]) > self.config.bind_ms:
                self._sf &= ~_B_CONFLICT
            return None
        if self._sf & _B_CONFLICT:
            self._at[_AT_CONFLICT] = now
            return None
        return got

    def _multi(self, now):
        self._sf |= _B_CONFLICT
        self._at[_AT_CONFLICT] = now
        self._tag = None
        self.event(_EV_MULTIPLE_TAGS, _SEV_WARNING, 0)
        self.show(_P_ATTENTION, now)
        if self.state in (_TAG, _STABLE):
            self.state = _WEIGHING if self._loaded() else _IDLE

    # ------------------------------------------------------------------ state machine
    def update(self, now, tag):
        """Advance the reading state machine by one step (the states: this file's header)."""
        s = self.state
        cfg = self.config
        if tag is not None and self._last is not None and tag == self._last:
            # a re-read of the tag just weighed (seen continuously since) is no new tag
            fresh = ticks_diff(now, self._at[_AT_TAG_SEEN]) < _REPEAT_MS
            self._at[_AT_TAG_SEEN] = now
            if fresh:
                tag = None
        if (self.maintenance or not getattr(self.scale, "calibrated", True)) \
                and s in (_IDLE, _WEIGHING, _STABLE, _TAG):
            # No readings in maintenance mode or on an uncalibrated scale; tags are shown as
            # "attention" and dropped.
            if tag is not None:
                self.show(_P_ATTENTION, now)
            self._tag = None
            self.state = _WEIGHING if self._loaded() else _IDLE
            return
        if s == _IDLE:
            if tag is not None:
                self._hold(tag, now)
            elif self._loaded():
                self.state = _WEIGHING
        elif s == _WEIGHING:
            if tag is not None:
                self._hold(tag, now)
            elif not self._loaded():
                # bag removed before any tag was read: nothing to bind, nothing recorded; if it
                # had settled (it was weighed), tell the operator its tag was never read
                if self._sf & _B_WEIGHED:
                    self.show(_P_ATTENTION, now)
                self._sf &= ~_B_WEIGHED
                self.state = _IDLE
            elif self.stable():
                self._sf |= _B_WEIGHED
                self.net_g = self.scale.net_g
                self._at[_AT_DEADLINE] = ticks_add(now, cfg.bind_ms)
                self.state = _STABLE
        elif s == _STABLE:
            if tag is not None:
                self._tag = tag
                self._sf |= _B_STABLE_CAP
                self.state = _VALIDATE
            elif not self._loaded():
                self.show(_P_ATTENTION, now)  # bag removed before its tag was read
                self._sf &= ~_B_WEIGHED
                self.state = _IDLE
            elif not self.stable():
                self.state = _WEIGHING  # moved again: the captured weight no longer holds
            elif ticks_diff(now, self._at[_AT_DEADLINE]) >= 0:
                # no tag within the window: keep waiting for one with a fresh window
                self.net_g = self.scale.net_g
                self._at[_AT_DEADLINE] = ticks_add(now, cfg.bind_ms)
        elif s == _TAG:
            loaded = self._loaded()
            if tag is not None and tag != self._tag:
                self._multi(now)  # two different tags for one weighing: bind neither
            elif self._sf & _B_TAG_LOADED and not loaded:
                # the bag this tag was for left the platform before it settled: drop the tag
                # (never bind it to whatever bag comes next), tell the operator, record nothing
                self._tag = None
                self._sf &= ~_B_TAG_LOADED
                self.show(_P_ATTENTION, now)
                self.event(_EV_MOTION_TIMEOUT, _SEV_INFO, 1)
                self.state = _IDLE
            elif loaded and not self._sf & _B_TAG_LOADED:
                # tag first: its bag has arrived; the binding window runs from now, so a bag
                # that lands swinging gets the whole window to settle
                self._sf |= _B_TAG_LOADED
                self._at[_AT_DEADLINE] = ticks_add(now, cfg.bind_ms)
            elif loaded and self.stable():
                self.net_g = self.scale.net_g
                self._sf |= _B_STABLE_CAP
                self.state = _VALIDATE
            elif ticks_diff(now, self._at[_AT_DEADLINE]) >= 0:
                if loaded:
                    # load on but never settled: record it unstable (rejected NOT-STABLE)
                    self.net_g = self.scale.net_g
                    self._sf &= ~_B_STABLE_CAP
                    self.state = _VALIDATE
                else:
                    self._tag = None  # a tag with no bag: dropped
                    self.show(_P_ATTENTION, now)
                    self.event(_EV_MOTION_TIMEOUT, _SEV_INFO, 0)
                    self.state = _IDLE
        elif s == _VALIDATE:
            if self.journal.full:
                self.reject(now)
            else:
                self.validate()
                self.state = _SIGN
        elif s == _SIGN:
            # SIGN: pack the READING into the link's TX buffer and MAC it; JOURNAL: append it.
            # Both in ONE step: the signed frame is in the link's TX buffer, which every other
            # frame (LIVE, STATUS, EVENT, RESULT) reuses between two steps.
            lk = self.link
            r = self.reading
            n = lk.seal(_T_READING, M.pack_reading(lk.tx, _BODY, r))
            self.state = _JOURNAL
            try:
                self.journal.append(memoryview(lk.tx)[0:n])
            except StationError:
                # JournalFull, or a flash write the journal cut back: the reading is refused
                # (the journal keeps nothing half-written), the operator sees "rejected"
                self.reject(now)
                return
            self.seq = r.seq
            mac_off = _BODY + lk.tx[1]
            self.prev = _u32(lk.tx[mac_off : mac_off + 4])
            self.result = None
            if self.verdict is not None:
                self.rule_state.record(r, self.verdict)
            self._check_fill()
            self.state = _SEND
        elif s == _SEND:
            self.flush(now)
            self._at[_AT_DEADLINE] = ticks_add(now, _ACK_WAIT_MS)
            self.state = _AWAIT_ACK
        elif s == _AWAIT_ACK:
            bv = self.result
            if bv is not None or not self.session or ticks_diff(now, self._at[_AT_DEADLINE]) >= 0:
                # feedback: the station's verdict, or the bridge's when it is worse (the bridge
                # knows the full history)
                r = self.reading
                v = r.verdict
                if bv is not None and (bv & 3) > v:
                    v = bv & 3
                self.last_result = (r.seq, r.verdict | (r.reason << 2), bv)
                self._done(_P_ACCEPTED if v == _ACCEPT else
                           _P_ATTENTION if v == _WARN else _P_REJECTED, now)
        elif s == _FEEDBACK:
            if ticks_diff(now, self._at[_AT_DEADLINE]) >= 0:
                self.state = _REMOVE
        elif s == _REMOVE:
            if tag is not None:
                self.show(_P_ATTENTION, now)  # a new tag before the bag left: remove it first
            if not self._loaded():
                self._sf &= ~_B_WEIGHED
                self.state = _IDLE

    def _hold(self, tag, now):
        self._tag = tag
        if self._loaded():  # a bag is already there (weight first) or not yet
            self._sf |= _B_TAG_LOADED
        else:
            self._sf &= ~_B_TAG_LOADED
        self._at[_AT_DEADLINE] = ticks_add(now, self.config.bind_ms)
        self.state = _TAG

    def _done(self, pattern, now):
        """Show the outcome of a bound reading (recorded or refused) and go to FEEDBACK; the tag
        is remembered so that its repeats are ignored."""
        self.show(pattern, now)
        self._last = self._tag
        self._at[_AT_TAG_SEEN] = now
        self._tag = None
        self._at[_AT_DEADLINE] = ticks_add(now, self.config.feedback_ms)
        self.state = _FEEDBACK

    def reject(self, now):
        """Refuse the bound reading: the journal cannot take it (full, or a write failed)."""
        self.event(_EV_JOURNAL_FULL, _SEV_CRITICAL, self.journal.fill_pct())
        self.last_result = (None, _REJECT, None)
        self._done(_P_REJECTED, now)

    def validate(self):
        cfg = self.config
        r = self.reading
        sc = self.scale
        r.seq = self.seq + 1
        # status bits from the scale (out of range, centre of zero, preset tare); the stable bit
        # is the captured one (a reading bound on a deadline while moving carries no stable bit)
        flags = sc.reading_flags() & (_F_OUT_OF_RANGE | _F_ZERO_TRACKED | _F_PRESET_TARE)
        if self._sf & _B_STABLE_CAP:
            flags |= _F_STABLE
        r.flags = flags
        r.step = cfg.step
        held = self._tag
        if held is None:  # cannot happen: VALIDATE is only entered with a tag held
            raise StationError("validate: no tag bound")
        r.tag_kind = held[0]
        r.tag = held[1]
        t = self.utc()
        r.time = t
        r.boot = self.boot
        r.uptime_ms = self.uptime_ms & 0xFFFFFFFF
        net = self.net_g
        r.net_g = net if -0x800000 <= net <= 0x7FFFFF else (0x7FFFFF if net > 0 else -0x800000)
        tare = sc.tare_g
        r.tare_g = tare if 0 <= tare <= 0xFFFF else 0
        r.e_g = sc.e_g
        r.operator = self.operator
        r.cal_id = sc.cal.cal_id & 0xFFFF
        r.ruleset_id = self.ruleset.id if self.ruleset is not None else 0
        r.prev = self.prev
        v = None
        verdict, reason = _ACCEPT, 0
        if self.ruleset is not None:
            v = rules.evaluate(self.ruleset, r, self.rule_state, t)
            verdict, reason = v.verdict, v.reason
        # Station guards that hold whatever the rule set says: an unsettled or out-of-range
        # weight is never accepted.
        if not self._sf & _B_STABLE_CAP and verdict != _REJECT:
            verdict, reason = _REJECT, 5  # NOT-STABLE
        elif flags & _F_OUT_OF_RANGE and verdict != _REJECT:
            verdict, reason = _REJECT, 6  # OUT-OF-RANGE
        r.verdict = verdict
        r.reason = reason
        self.verdict = v

    def show(self, pattern, now):
        fb = self.feedback
        if fb is not None:
            fb.show(pattern, now)

    # ------------------------------------------------------------------ journal fill
    def _check_fill(self):
        j = self.journal
        if j.full:
            self.event(_EV_JOURNAL_FULL, _SEV_CRITICAL, j.fill_pct())
        elif j.nearly_full:
            if not self._sf & _B_FILL_WARNED:
                self._sf |= _B_FILL_WARNED
                self.event(_EV_JOURNAL_NEARLY_FULL, _SEV_WARNING, j.fill_pct())
        else:
            self._sf &= ~_B_FILL_WARNED

    # ------------------------------------------------------------------ events
    def event(self, code, severity, detail):
        """Send (or queue while there is no session) an EVENT; the same code at most once per
        _EVENT_GAP_MS so a stuck fault cannot flood the link. That check is made here, before
        any import: a fault can raise its event every few steps (a dead RFID reader: every
        ~40 ms). Events that pass it are rare (faults, refusals, operator mistakes; none on a
        good reading): the cold twstation.session sends them, dropped again right after (only
        it: an event raised at boot or by a command leaves their modules)."""
        ev = self._ev_last
        now = self.clock.ticks_ms()
        if code in ev and ticks_diff(now, ev[code]) < _EVENT_GAP_MS:
            return
        ev[code] = now
        from twstation import session

        session.event(self, code, severity, detail)
        forget(("twstation.session",))

    # ------------------------------------------------------------------ link: receive
    def _rx(self, now):
        """Receive: a few frames from the bridge per step (the link checked their MAC where the
        type has one). ACKs are handled here; the rare others in the cold twstation.session."""
        lk = self.link
        for _ in range(4):  # a few frames per step, bounded
            f = lk.poll()
            if f is None:
                nk = lk.nack_due
                if nk is not None:  # a frame failed its MAC: tell the bridge, never act on it
                    lk.nack_due = None
                    lk.send(_T_NACK, M.pack_fixed(lk.tx, _BODY, _T_NACK, nk))  # type ref reason
                return
            self._at[_AT_RX] = now
            t = f[2]
            body = memoryview(f)[_BODY : _BODY + f[1]]
            try:
                if t == _T_ACK:
                    # The link already checked the MAC over our session nonce: a forged ACK
                    # never gets here.
                    for seq, v in M.unpack_ack(body):
                        if seq > self.seq:
                            continue  # an ACK for a reading that does not exist yet: ignore
                        self.journal.ack(seq)
                        if seq in self._inflight:
                            self._inflight.remove(seq)
                        if seq == self.seq:
                            self.result = v
                    self._check_fill()
                    self._backoff = 0
                    self._at[_AT_RESEND] = ticks_add(now, self.config.ack_ms)
                else:
                    # WELCOME, COMMAND, NACK: rare (a session starts, a command, a refusal):
                    # the cold twstation.session, dropped again (with the command code) after
                    from twstation import session

                    try:
                        session.handler(self, t, body, now)
                    finally:
                        forget()
            except Exception as e:  # a well-MAC'd but malformed body: NACK it, keep running
                lk.send(_T_NACK, M.pack_fixed(lk.tx, _BODY, _T_NACK, (t, 0, _NACK_MALFORMED)))
                self.last_error = e

    # ------------------------------------------------------------------ link: send
    def send(self, now):
        """The session's sending side, once per step: HELLO while there is none, then the
        journaled backlog (flush), resends of unacknowledged readings, STATUS."""
        cfg = self.config
        if not self.session:
            if ticks_diff(now, self._at[_AT_HELLO]) < 0:
                return
            # HELLO (new session nonce) every hello_ms until a WELCOME: the cold
            # twstation.session builds it, dropped again right after
            from twstation import session

            session.hello(self, now)
            forget()
            return
        if ticks_diff(now, self._at[_AT_RX]) > _SESSION_IDLE_MS:
            self._lose_session(now)  # the bridge went quiet: start a new session
            return
        if not self._backoff:
            self.flush(now)
        if self._inflight and ticks_diff(now, self._at[_AT_RESEND]) >= 0:
            self._backoff = 0
            for seq in self._inflight:  # resend in order, oldest first
                fr = self.journal.frame(seq)
                if fr is not None:
                    self.link.send_frame(fr)
            self._at[_AT_RESEND] = ticks_add(now, cfg.ack_ms)
        if ticks_diff(now, self._at[_AT_STATUS]) >= 0:
            self._send_status(now)

    def _lose_session(self, now):
        self.session = False
        self._inflight = []
        self._at[_AT_HELLO] = now

    def flush(self, now):
        """Send journaled readings not yet sent, in order, while the window has room."""
        if not self.session:
            return
        win = self.window
        inflight = self._inflight
        if len(inflight) >= win:
            return
        for fr in self.journal.pending(inflight[-1] if inflight else 0):
            seq = _u32(fr[_BODY : _BODY + 4])
            if seq in inflight or seq in self.skip:
                continue
            if not inflight:
                self._at[_AT_RESEND] = ticks_add(now, self.config.ack_ms)
            self.link.send_frame(fr)
            inflight.append(seq)
            if len(inflight) >= win:
                break

    def _send_status(self, now):
        # STATUS (every status_ms, after a WELCOME, for the STATUS command): built by the cold
        # twstation.session, dropped again right after
        from twstation import session

        session.status(self, now)
        forget(("twstation.session",))  # only it: the STATUS command's module is still running

    def _live(self, now):
        """LIVE frames at most every live_ms, only when the weight changed by a division or a
        flag changed (a bag that settles without its weight moving must stop showing
        "moving" on the operator page)."""
        if not self.session or ticks_diff(now, self._at[_AT_LIVE]) < 0:
            return
        sc = self.scale
        net = sc.net_g
        flags = sc.reading_flags()
        at = self._at
        last = at[_AT_LIVE_NET]
        if last is not None and abs(net - last) < self.config.division_g \
                and flags == at[_AT_LIVE_FLAGS]:
            return
        at[_AT_LIVE_NET] = net
        at[_AT_LIVE_FLAGS] = flags
        self._at[_AT_LIVE] = ticks_add(now, self.config.live_ms)
        tare = sc.tare_g
        n = M.pack_live(self.link.tx, _BODY, net if -0x800000 <= net <= 0x7FFFFF else 0,
                        tare if 0 <= tare <= 0xFFFF else 0, flags,
                        _TS_READ if self._tag is not None else _TS_NONE)
        self.link.send(_T_LIVE, n)


def __getattr__(name):
    # STATE_NAMES (tools, tests): kept in twstation.assemble, out of the station's heap
    from twstation import assemble

    return getattr(assemble, name)
