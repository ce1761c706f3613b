# The link session's rare paths, kept out of the station's heap (firmware/MEMORY.md): the HELLO
# sent while there is no session, the STATUS heartbeat (every status_ms, 10 s by default), the
# HELLO/STATUS flags both carry, EVENTs (rare: faults, refusals, operator mistakes), and the
# bridge frames that are not ACKs: WELCOME (time sync, window, the events queued meanwhile),
# COMMAND (SPEC 9 retry / stale handling around twstation.commands) and NACK. twstation.station
# imports this module when one of these happens and forgets it right after (twstation.COLD);
# what runs per step or per reading (ACKs, the backlog, resends, LIVE) stays in
# twstation.station.
from twproto.port import const, ticks_add
from twproto import bodies as M
from twstation import FIRMWARE_VERSION
from twstation.station import _u32

# The protocol's numbers used here: private copies (inlined by the compiler), checked against
# twproto.messages / twproto.frame by tests/firmware/test_session.py.
_BODY = const(3)  # frame: offset of the body
_NONCE_LEN = const(8)
_T_HELLO = const(0x01)
_T_WELCOME = const(0x02)
_T_READING = const(0x10)
_T_NACK = const(0x12)
_T_STATUS = const(0x20)
_T_EVENT = const(0x22)
_T_COMMAND = const(0x30)
_T_RESULT = const(0x31)
_WF_TIME_VALID = const(0x01)  # WELCOME flags
_SF_TIME_SYNCED = const(0x01)  # HELLO/STATUS flags
_SF_MAINTENANCE = const(0x02)
_SF_UNCALIBRATED = const(0x08)
_SF_JOURNAL_FULL = const(0x10)
_SF_NO_RULESET = const(0x20)
_NACK_MALFORMED = const(1)
_NACK_BAD_MAC = const(2)
_NACK_STORAGE_UNAVAILABLE = const(5)
_NACK_CONFLICT = const(6)
_NACK_BUSY = const(8)
_NACK_NO_SESSION = const(10)
_EV_TAMPER = const(15)
_SEV_ERROR = const(2)
_RS_STALE_COMMAND = const(6)
# station.py's numbers (tests/firmware/test_session.py checks them against its copies)
_AT_HELLO = const(1)
_AT_RESEND = const(2)
_AT_STATUS = const(5)
_TIME_MIN = const(1700000000)
_BACKOFF_MS = const(5000)  # after NACK storage_unavailable / busy: 5 s doubling to 60 s (SPEC 10)
_BACKOFF_MAX_MS = const(60000)
_EVENT_QUEUE = const(8)  # events kept while no session (oldest dropped beyond)


def flags(st):
    """HELLO/STATUS flags of Station st."""
    f = st._sf & 0xFF  # the station's own faults (the bits above are private state, station.py)
    if st._t0 is not None:
        f |= _SF_TIME_SYNCED
    if st.maintenance:
        f |= _SF_MAINTENANCE
    if not getattr(st.scale, "calibrated", True):
        f |= _SF_UNCALIBRATED
    if st.journal.full:
        f |= _SF_JOURNAL_FULL
    if st.ruleset is None:
        f |= _SF_NO_RULESET
    return f


def hello(st, now):
    """HELLO, with a new session nonce; the station repeats it every hello_ms until a WELCOME."""
    lk = st.link
    # fresh random nonce: the bridge's frames of this session must carry a MAC over it
    lk.nonce[0:_NONCE_LEN] = lk.urandom(_NONCE_LEN)
    st.cmd_id = 0  # command ids count afresh per session (the nonce binds them)
    st._n = 0
    rs = st.ruleset
    try:
        rv = int(rs.version)
        rv = rv if 0 <= rv <= 0xFFFF else 0
    except (AttributeError, ValueError, TypeError):  # no rule set, or a non-numeric version
        rv = 0
    j = st.journal
    cfg = st.config
    v = (  # HELLO fields in layout order (twproto.bodies.LAYOUTS)
        cfg.device_id, FIRMWARE_VERSION[0], FIRMWARE_VERSION[1],
        FIRMWARE_VERSION[2], 1, 1,  # ..., proto_min, proto_max
        rs.id if rs is not None else 0, rv, _u32(cfg.hash),
        st.seq, min(j.backlog(), 0xFFFF), min(j.fill_pct(), 100), st.boot,
        st.boot_first_seq, st.uptime_ms & 0xFFFFFFFF, flags(st),
        bytes(lk.nonce), st.prev,
    )
    lk.send(_T_HELLO, M.pack_fixed(lk.tx, _BODY, _T_HELLO, v))
    st._at[_AT_HELLO] = ticks_add(now, cfg.hello_ms)


def handler(st, t, body, now):
    """A verified bridge frame other than ACK (t its type, body a memoryview of its body)."""
    lk = st.link
    if t == _T_WELCOME:
        # time ms proto ruleset_id flags window
        w_time, w_ms, _, _, w_flags, w_window = M.unpack_fixed(_T_WELCOME, body)
        if w_flags & _WF_TIME_VALID and w_time >= _TIME_MIN:
            st.set_time(w_time, w_ms)
        st.session = True
        st.window = min(st.config.send_window, w_window)  # 0: hold readings for now
        st.skip = []
        st._backoff = 0
        st._inflight = []
        st._at[_AT_RESEND] = now
        q = st._events  # the events queued while there was no session, oldest first
        st._events = []
        for code, sev, detail, up in q:
            lk.send(_T_EVENT, M.pack_event(lk.tx, _BODY, code, sev, detail, up))
        status(st, now)
    elif t == _T_COMMAND:
        # SPEC 9: a higher cmd_id runs; the same id gets the remembered RESULT again (a
        # bridge retry after a lost RESULT); a lower one is stale and does nothing.
        # st.cmd_id is the last command run, st._buf[0:st._n] its RESULT frame.
        cmd_id, op, args = M.unpack_command(body)
        if cmd_id == st.cmd_id and st._n:
            lk.send_frame(memoryview(st._buf)[0 : st._n])
            return
        if cmd_id <= st.cmd_id:
            lk.send(_T_RESULT, M.pack_fixed(lk.tx, _BODY, _T_RESULT,
                                            (cmd_id, _RS_STALE_COMMAND, 0)))
            return
        st.cmd_id = cmd_id
        from twstation import commands

        s, val, detail = commands.run(st, op, args, now)
        n = lk.send(_T_RESULT, M.pack_fixed(lk.tx, _BODY, _T_RESULT, (cmd_id, s, val), detail))
        st._buf[0:n] = memoryview(lk.tx)[0:n]
        st._n = n
    elif t == _T_NACK:
        # NACKs are unauthenticated: advisory only, they never delete or change a reading.
        ref_type, s, r = M.unpack_fixed(_T_NACK, body)
        if r == _NACK_NO_SESSION:
            st._lose_session(now)
        elif r == _NACK_STORAGE_UNAVAILABLE or r == _NACK_BUSY:
            b = st._backoff * 2 if st._backoff else _BACKOFF_MS
            st._backoff = b if b < _BACKOFF_MAX_MS else _BACKOFF_MAX_MS
            st._at[_AT_RESEND] = ticks_add(now, st._backoff)
        elif ref_type == _T_READING and r in (_NACK_BAD_MAC, _NACK_MALFORMED, _NACK_CONFLICT):
            # keep it in the journal, stop sending it in this session, say so
            if s in st._inflight:
                st._inflight.remove(s)
            if s not in st.skip and len(st.skip) < 32:
                st.skip.append(s)
                st.event(_EV_TAMPER, _SEV_ERROR, s & 0x7FFFFFFF)


def status(st, now):
    """STATUS: the scale's raw figures, faults, backlog and heap (Station._send_status)."""
    st._at[_AT_STATUS] = ticks_add(now, st.config.status_ms)
    sc = st.scale
    j = st.journal
    try:
        import gc

        heap = gc.mem_free()
    except (ImportError, AttributeError):
        heap = 0
    cal = sc.cal
    cpk = (1000 * cal.den) // cal.num if cal.num else 0
    v = [  # STATUS fields in layout order (twproto.bodies.LAYOUTS)
        st.raw, sc.zero_counts, abs(cpk), 0, sc.sps & 0xFF, flags(st),
        st.timeouts & 0xFFFF, 0, min(j.backlog(), 0xFFFF), min(j.capacity, 0xFFFF),
        heap & 0xFFFFFFFF, st.uptime_ms & 0xFFFFFFFF, st.boot, cal.cal_id & 0xFFFF,
    ]
    for i in range(3):  # raw, zero, counts per kg are i32: a value out of range is sent as 0
        if not -0x80000000 <= v[i] <= 0x7FFFFFFF:
            v[i] = 0
    st.link.send(_T_STATUS, M.pack_fixed(st.link.tx, _BODY, _T_STATUS, v))


def event(st, code, severity, detail):
    """Station.event, once its gap check let the event through: send it, or queue it while
    there is no session."""
    if not -0x80000000 <= detail <= 0x7FFFFFFF:
        detail = 0
    up = st.uptime_ms & 0xFFFFFFFF
    if st.session:
        st.link.send(_T_EVENT, M.pack_event(st.link.tx, _BODY, code, severity, detail, up))
    else:
        if len(st._events) >= _EVENT_QUEUE:
            st._events.pop(0)
        st._events.append((code, severity, detail, up))
