"""Property tests: every message round-trips; random and mutated byte streams never crash, never
hang, keep the decoder's memory bounded, and the next good frame after garbage is recovered;
feeding whole, byte by byte or in random chunks gives the same frames and the same errors."""

import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twproto import frame as F
from twproto import messages as M
from twproto.errors import ProtocolError
from twproto.mac import DIR_BRIDGE, DIR_STATION, Mac

KEY = bytes(range(32))
NONCE = b"nonce-08"
MAC = Mac(KEY)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
i32 = st.integers(-(1 << 31), (1 << 31) - 1)
net = st.integers(-(1 << 23), (1 << 23) - 1)

readings = st.builds(
    M.Reading, seq=st.integers(1, 0xFFFFFFFF),
    flags=st.sampled_from([0, M.F_STABLE, M.F_OUT_OF_RANGE, M.F_ZERO_TRACKED, M.F_PRESET_TARE,
                           M.F_STATUS_MASK]),
    step=st.integers(0, 15), tag_kind=st.integers(0, M.TAG_BARCODE), verdict=st.integers(0, 2),
    reason=st.integers(0, 63), time=st.none() | u32, boot=u16, uptime_ms=u32, net_g=net,
    tare_g=u16, e_g=st.sampled_from(M.E_CODES), operator=u16, cal_id=u16, ruleset_id=u32,
    prev=u32, tag=st.binary(min_size=1, max_size=M.TAG_MAX),
)


def _fixed(cls, **over):
    spec = {"B": u8, "H": u16, "I": u32, "i": i32, "8s": st.binary(min_size=8, max_size=8)}
    kw = {name: spec[code] for name, code in cls.SPEC}
    if cls.TAIL:
        kw[cls.TAIL[0]] = st.binary(min_size=cls.TAIL[1], max_size=cls.TAIL[2])
    kw.update(over)
    return st.builds(cls, **kw)


hellos = st.tuples(st.integers(0, 0xFF), st.integers(0, 0xFF)).flatmap(
    lambda p: _fixed(M.Hello, proto_min=st.just(min(p)), proto_max=st.just(max(p)),
                     journal_pct=st.integers(0, 100)))


def _command(op):
    fmt, names, tail = M.CMD_ARGS[op]
    codes = {"B": u8, "H": u16, "I": u32, "32s": st.binary(min_size=32, max_size=32)}
    args = {}
    spec = fmt[1:].replace("32s", "S")
    for name, code in zip(names, spec):
        args[name] = codes["32s" if code == "S" else code]
    if op == M.OP_MAINTENANCE:
        args["on"] = st.integers(0, 1)
    if op == M.OP_SET_TIME:
        args["ms"] = st.integers(0, 999)
    if tail:
        args[tail[0]] = st.binary(min_size=tail[1], max_size=tail[2])
    return st.builds(M.Command, cmd_id=u16, op=st.just(op), args=st.fixed_dictionaries(args))


messages = st.one_of(
    readings, hellos,
    _fixed(M.Welcome, ms=st.integers(0, 999)),
    st.builds(M.Ack, st.lists(st.tuples(st.integers(1, 0xFFFFFFFF),
                                        st.integers(0, 63).flatmap(
                                            lambda r: st.integers(0, 2).map(lambda v: v | r << 2))),
                              max_size=M.ACK_MAX)),
    _fixed(M.Nack), _fixed(M.Status), _fixed(M.Event, severity=st.integers(0, 3)),
    _fixed(M.Result),
    st.builds(M.Live, net_g=net, tare_g=u16, flags=u8, tag_state=u8),
    st.sampled_from(sorted(M.CMD_ARGS)).flatmap(_command),
    st.builds(M.Command, cmd_id=u16, op=st.integers(18, 255),
              args=st.fixed_dictionaries({"data": st.binary(max_size=229)})),
)


def _direction(msg):
    return DIR_STATION if msg.TYPE in F.STATION_TYPES else DIR_BRIDGE


def encoded(msg):
    d = _direction(msg)
    buf = bytearray(F.MAX_FRAME)
    n = M.encode_message(buf, msg, MAC, d, NONCE if d == DIR_BRIDGE else None)
    return bytes(buf[:n])


def run(stream, chunks=None, dec=None):
    """Feed stream in the given chunk sizes (cycled); return (frames, errors). Bounded loop."""
    dec = dec or F.Decoder()
    frames, errors = [], []
    pos, i, steps = 0, 0, 0
    limit = 4 * len(stream) + 8  # every ERROR drops >= 1 byte, every FRAME takes >= 5
    while True:
        steps += 1
        assert steps <= limit + len(stream), "decoder does not progress"
        if pos < len(stream):
            size = len(stream) if not chunks else chunks[i % len(chunks)]
            i += 1
            pos += dec.feed(stream[pos : pos + size])
        r = dec.poll()
        assert len(dec._buf) == dec.capacity and 0 <= dec.pending() <= dec.capacity
        if r == F.FRAME:
            frames.append(bytes(dec.frame))
        elif r == F.ERROR:
            errors.append(dec.error)
        elif pos >= len(stream):
            return frames, errors


@FAST
@given(messages)
def test_every_message_roundtrips(msg):
    fr = encoded(msg)
    assert len(fr) <= F.MAX_FRAME
    d = _direction(msg)
    t, back = M.decode_frame(fr, MAC, d, NONCE if d == DIR_BRIDGE else None)
    assert t == msg.TYPE and back == msg
    assert run(fr) == ([fr], [])


@FAST
@given(st.binary(max_size=2000), st.lists(st.integers(1, 300), min_size=1, max_size=8))
def test_random_bytes_never_crash_and_chunking_does_not_matter(data, chunks):
    whole = run(data)
    assert run(data, chunks) == whole
    assert run(data, [1]) == whole
    for fr in whole[0]:  # anything that passed the CRC is parsed or refused cleanly
        try:
            M.decode_frame(fr, MAC, DIR_STATION)
        except ProtocolError:
            pass


@FAST
@given(st.lists(messages, min_size=1, max_size=4), st.data())
def test_mutated_streams_recover_the_next_good_frame(msgs, data):
    frames = [encoded(m) for m in msgs]
    stream = bytearray(b"".join(frames))
    for _ in range(data.draw(st.integers(1, 6))):  # flip, insert, delete
        op = data.draw(st.sampled_from("fid"))
        at = data.draw(st.integers(0, max(0, len(stream) - 1)))
        if op == "f" and stream:
            stream[at] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "i":
            stream[at:at] = data.draw(st.binary(min_size=1, max_size=20))
        elif op == "d" and stream:
            del stream[at : at + data.draw(st.integers(1, 5))]
    good = encoded(M.Live(net_g=42, flags=3, tag_state=1))
    # After garbage, a good frame is recovered once MAX_FRAME more bytes (line noise or idle
    # fill) have arrived: every false candidate is then long enough to be judged.
    tail = good + bytes(F.MAX_FRAME)
    chunks = data.draw(st.lists(st.integers(1, 64), min_size=1, max_size=4))
    got, errors = run(bytes(stream) + tail, chunks)
    assert got and got[-1] == good
    assert run(bytes(stream) + tail) == (got, errors)
    for fr in got:
        try:
            M.decode_frame(fr, MAC, _direction(M.CLASSES[fr[2]]()), NONCE)
        except ProtocolError:
            pass


@FAST
@given(st.sampled_from(sorted(M.CLASSES)), st.binary(max_size=F.MAX_BODY))
def test_random_bodies_raise_only_message_errors(t, body):
    try:
        M.unpack(t, memoryview(body))
    except ProtocolError as e:
        assert e.code in ("truncated", "bad_length", "bad_field", "bad_count", "tag_empty",
                          "tag_too_long")


def test_memory_stays_bounded_on_a_megabyte_of_noise():
    import random

    rnd = random.Random(7)
    noise = bytes(rnd.getrandbits(8) for _ in range(1 << 20))
    # Salt it with SOF bytes followed by plausible lengths, the worst case for waiting.
    noise = noise.replace(b"\x00", b"\xa1")
    dec = F.Decoder()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    framed = 0
    mv = memoryview(noise)
    for off in range(0, len(noise), 4096):
        chunk = mv[off : off + 4096]
        pos = 0
        while pos < len(chunk):
            pos += dec.feed(chunk[pos:])
            while (r := dec.poll()) != F.NEED_MORE:
                if r == F.FRAME:
                    framed += len(dec.frame)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    assert peak < 64 * 1024, peak
    assert dec.dropped + dec.pending() + framed == len(noise)  # every byte accounted for
