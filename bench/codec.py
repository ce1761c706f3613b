"""Host decode speed: READING frames decoded, CRC- and MAC-checked and parsed per second by
twproto on CPython (one core), against pymavlink parsing signed MAVLink 2 frames of similar size
(the same body in DATA64) in the same run. Medians over several runs. Last line: figures."""

import statistics
import time

from _wire import KEY, mavlink_frame, mavlink_sender, reading, reading_body, reading_frame

from twproto.frame import ERROR, FRAME, NEED_MORE, Decoder
from twproto.mac import DIR_STATION, Mac
from twproto.messages import decode_frame

N = 5000
RUNS = 7
CHUNK = 4096  # what a serial read returns at most, roughly


def tags(i):
    return b"ITSCI-%09d" % (123456 + i)


def ours_once(stream, mac):
    dec = Decoder(capacity=2 * CHUNK)  # a host can afford a larger (still fixed) window
    mv = memoryview(stream)
    got = 0
    t0 = time.perf_counter()
    for off in range(0, len(stream), CHUNK):
        chunk = mv[off : off + CHUNK]
        pos = 0
        while pos < len(chunk):
            pos += dec.feed(chunk[pos:])
            while True:
                r = dec.poll()
                if r == FRAME:
                    decode_frame(dec.frame, mac, DIR_STATION)  # direction, MAC, body -> Reading
                    got += 1
                elif r == NEED_MORE:
                    break
                elif r == ERROR:
                    raise AssertionError(dec.error)
    dt = time.perf_counter() - t0
    assert got == N
    return N / dt


def mavlink_once(stream):
    from pymavlink.dialects.v20 import ardupilotmega as mavlink

    rx = mavlink.MAVLink(None)
    rx.signing.secret_key = KEY  # verify every signature (unsigned frames are refused)
    rx.robust_parsing = True
    got = 0
    t0 = time.perf_counter()
    for off in range(0, len(stream), CHUNK):
        msgs = rx.parse_buffer(stream[off : off + CHUNK])
        if msgs:
            got += len(msgs)
    dt = time.perf_counter() - t0
    assert got == N and rx.signing.goodsig_count == N, (got, rx.signing.goodsig_count)
    return N / dt


def construct_once(frames):
    from tagweigh import wire

    t0 = time.perf_counter()
    for fr in frames:
        wire.parse_frame(fr, KEY, "S")
    return len(frames) / (time.perf_counter() - t0)


def main():
    mac = Mac(KEY)
    readings = [reading(seq=1000 + i, tag=tags(i)) for i in range(N)]
    ours_frames = [reading_frame(r, mac) for r in readings]
    mavlink, mav = mavlink_sender()
    mav_frames = [mavlink_frame(mavlink, mav, reading_body(r)) for r in readings]
    ours_stream = b"".join(ours_frames)
    mav_stream = b"".join(mav_frames)
    ours, theirs, cons = [], [], []
    for _ in range(RUNS):  # interleaved, so drift in machine speed hits both alike
        ours.append(ours_once(ours_stream, mac))
        theirs.append(mavlink_once(mav_stream))
        cons.append(construct_once(ours_frames[:1000]))
    o, t, c = statistics.median(ours), statistics.median(theirs), statistics.median(cons)
    print("%d frames/run, %d runs; twproto %d B/frame, MAVLink 2 signed %d B/frame"
          % (N, RUNS, len(ours_frames[0]), len(mav_frames[0])))
    print("host_decode_verify_per_s=%d pymavlink_parse_per_s=%d ratio_vs_pymavlink=%.1f "
          "construct_decode_verify_per_s=%d goal_ratio_ge_2=%s"
          % (o, t, o / t, c, "yes" if o >= 2 * t else "no"))


if __name__ == "__main__":
    main()
