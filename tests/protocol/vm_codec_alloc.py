# Heap allocation of the station's hot paths, measured inside MicroPython with gc.mem_alloc()
# (the harness in tests/conftest.py runs each test_* under CPython too, where tracemalloc shows
# that nothing is retained). Plain asserts, no pytest imports.
import gc
import sys

from twproto.frame import FRAME, MAX_FRAME, T_READING, Decoder, encode
from twproto.mac import DIR_STATION, Mac
from twproto.messages import TAG_QR_TEXT, Reading, pack_reading

MICROPYTHON = sys.implementation.name == "micropython"
# The MAC needs two sha256 objects and two digests (MicroPython's sha256 has no copy()): that is
# the unavoidable part; framing itself may add a few memoryview headers.
ENCODE_MAX = 448
ROUNDS = 50
RETAINED_MAX = 1024  # CPython: e.g. the decoder's last frame view; a per-frame leak exceeds it


def _reading():
    return Reading(seq=7, flags=8, step=2, tag_kind=TAG_QR_TEXT, time=1767229325,
                   net_g=25340, tare_g=150, e_g=10, operator=17, cal_id=3,
                   ruleset_id=0x1C3E51A7, prev=0x2B7F0D44, tag=b"ITSCI-000123456")


def _per_call(fn):
    """MicroPython: heap bytes allocated per call (gc.mem_alloc). CPython: bytes still retained
    after all calls (tracemalloc), which stays a small constant unless something leaks."""
    fn()  # warm up: first-call caches are not per-frame costs
    if MICROPYTHON:
        gc.collect()
        gc.disable()
        before = gc.mem_alloc()
        for _ in range(ROUNDS):
            fn()
        used = gc.mem_alloc() - before
        gc.enable()
        return used // ROUNDS
    import tracemalloc

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(ROUNDS):
        fn()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used


def test_pack_reading_allocates_nothing():
    buf = bytearray(MAX_FRAME)
    r = _reading()
    n = pack_reading(buf, 3, r)
    assert n == 43
    assert _per_call(lambda: pack_reading(buf, 3, r)) == 0


def test_encode_allocates_only_the_mac_digest():
    buf = bytearray(MAX_FRAME)
    r = _reading()
    mac = Mac(bytes(range(32)))
    n = pack_reading(buf, 3, r)

    def step():
        pack_reading(buf, 3, r)
        encode(buf, T_READING, n, mac, DIR_STATION)

    used = _per_call(step)
    print("pack_reading+encode bytes/frame:", used)
    assert used <= (ENCODE_MAX if MICROPYTHON else RETAINED_MAX)


def test_decoder_per_frame_allocation_is_small():
    buf = bytearray(MAX_FRAME)
    mac = Mac(bytes(range(32)))
    n = encode(buf, T_READING, pack_reading(buf, 3, _reading()), mac, DIR_STATION)
    frame = bytes(buf[:n])
    dec = Decoder()

    def step():
        dec.feed(frame)
        assert dec.poll() == FRAME

    used = _per_call(step)
    print("decoder feed+poll bytes/frame:", used)
    assert used <= (64 if MICROPYTHON else RETAINED_MAX)
