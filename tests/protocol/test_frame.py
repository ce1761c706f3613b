"""Frame codec: layout, CRC, MAC, and one test per malformed-input rule of the decoder."""

import hashlib
import hmac
import os

import pytest

from twproto import frame as F
from twproto.crc import crc16, crc16_table
from twproto.errors import FrameError, MacError, MessageError, ProtocolError
from twproto.framehost import sign
from twproto.mac import DIR_BRIDGE, DIR_STATION, KEY_LEN, MAC_LEN, NONCE_LEN, Mac

KEY = bytes(range(32))
NONCE = b"\x01\x02\x03\x04\x05\x06\x07\x08"


def make(t=F.T_LIVE, body=b"\x01\x02\x03\x04\x05\x06\x07", direction=DIR_STATION, key=KEY,
         nonce=None):
    buf = bytearray(F.MAX_FRAME)
    buf[3 : 3 + len(body)] = body
    n = F.encode(buf, t, len(body), Mac(key), direction, nonce)
    return bytes(buf[:n])


def outcomes(data, dec=None):
    dec = dec or F.Decoder()
    return [(k, bytes(v) if k == F.FRAME else v) for k, v in dec.decode(data)]


def test_error_hierarchy_and_codes():
    for cls in (FrameError, MacError, MessageError):
        assert issubclass(cls, ProtocolError)
    e = FrameError("bad_crc", "detail")
    assert e.code == "bad_crc" and "detail" in str(e)


def test_crc_check_value_and_table_agree():
    assert crc16(b"123456789") == 0x29B1
    data = os.urandom(300)
    assert crc16_table(data) == crc16(data)
    assert crc16_table(data, 10, 200) == crc16(data, 10, 200) == crc16(data[10:200])
    assert crc16(data, 5, -1) == crc16(data[5:])
    assert crc16(data[100:], 0, None, crc16(data[:100])) == crc16(data)


def test_mac_is_truncated_hmac_sha256_with_direction_and_nonce():
    m = Mac(KEY)
    data = b"\xa1\x00\x01"
    assert sign(m, DIR_STATION, None, data) == hmac.digest(KEY, b"S" + data, hashlib.sha256)[:16]
    assert sign(m, DIR_BRIDGE, NONCE, data) == hmac.digest(KEY, b"B" + NONCE + data,
                                                          hashlib.sha256)[:16]
    out = bytearray(20)
    m.sign_into(memoryview(out)[2:18], DIR_STATION, None, memoryview(data))
    assert out[2:18] == sign(m, DIR_STATION, None, data) and out[:2] == b"\0\0"
    assert m.verify(DIR_STATION, None, data, sign(m, DIR_STATION, None, data))
    assert not m.verify(DIR_STATION, None, data + b"x", sign(m, DIR_STATION, None, data))
    assert not m.verify(DIR_STATION, None, data, b"short")
    assert not m.verify(DIR_BRIDGE, None, data, bytes(16))
    assert (MAC_LEN, KEY_LEN, NONCE_LEN) == (16, 32, 8)


def test_mac_rejects_bad_key_nonce_direction():
    with pytest.raises(MacError) as e:
        Mac(b"short")
    assert e.value.code == "bad_key"
    with pytest.raises(MacError) as e:
        sign(Mac(KEY), DIR_BRIDGE, None, b"x")
    assert e.value.code == "bad_nonce"
    with pytest.raises(MacError) as e:
        sign(Mac(KEY), 0x00, None, b"x")
    assert e.value.code == "bad_direction"


def test_encode_layout():
    fr = make()
    assert fr[0] == F.SOF == 0xA1 and fr[1] == 7 and fr[2] == F.T_LIVE
    assert len(fr) == 3 + 7 + 16 + 2 == F.frame_len(F.T_LIVE, 7)
    assert fr[10:26] == sign(Mac(KEY), DIR_STATION, None, fr[:10])
    assert int.from_bytes(fr[-2:], "little") == crc16(fr[:-2])


def test_nack_has_no_mac():
    buf = bytearray(F.MAX_FRAME)
    buf[3:9] = b"\x10\x01\0\0\0\x02"
    n = F.encode(buf, F.T_NACK, 6)  # no key needed
    assert n == 3 + 6 + 2
    assert not F.is_authenticated(F.T_NACK) and F.is_authenticated(F.T_READING)


@pytest.mark.parametrize(
    "args,code",
    [
        ((F.T_LIVE, F.MAX_BODY + 1), "too_long"),
        ((0x7F, 1), "bad_type"),
    ],
)
def test_encode_rejects(args, code):
    with pytest.raises(FrameError) as e:
        F.encode(bytearray(400), *args, mac=Mac(KEY))
    assert e.value.code == code


def test_encode_needs_key_and_room():
    with pytest.raises(MacError) as e:
        F.encode(bytearray(64), F.T_LIVE, 7)
    assert e.value.code == "no_key"
    with pytest.raises(FrameError) as e:
        F.encode(bytearray(20), F.T_LIVE, 7, Mac(KEY))
    assert e.value.code == "buffer"


def test_max_frame_is_253():
    assert F.MAX_FRAME == 253 == F.frame_len(F.T_READING, F.MAX_BODY)
    fr = make(F.T_RESULT, bytes(F.MAX_BODY))
    assert outcomes(fr) == [(F.FRAME, fr)]


def test_incomplete_is_need_more_not_error():
    fr = make()
    dec = F.Decoder()
    for b in fr[:-1]:
        dec.feed(bytes([b]))
        assert dec.poll() == F.NEED_MORE
        assert dec.error is None
    dec.feed(fr[-1:])
    assert dec.poll() == F.FRAME and bytes(dec.frame) == fr
    assert dec.poll() == F.NEED_MORE and dec.pending() == 0


def test_bad_sof_run_is_one_error():
    fr = make()
    assert outcomes(b"\x00\x11\x22" + fr) == [(F.ERROR, "bad_sof"), (F.FRAME, fr)]
    dec = F.Decoder()
    got = []
    for b in b"\x00\x11\x22" + fr:
        dec.feed(bytes([b]))
        r = dec.poll()
        if r != F.NEED_MORE:
            got.append((r, dec.error if r == F.ERROR else bytes(dec.frame)))
    assert got == [(F.ERROR, "bad_sof"), (F.FRAME, fr)]
    assert dec.dropped == 3


def test_other_version_sof_is_bad_version():
    fr = make()
    assert outcomes(b"\xa7" + fr[1:] + fr)[0] == (F.ERROR, "bad_version")


def test_len_over_max_body_is_too_long_without_waiting():
    dec = F.Decoder()
    dec.feed(bytes([F.SOF, F.MAX_BODY + 1]))
    assert dec.poll() == F.ERROR and dec.error == "too_long" and dec.dropped == 1


def test_decoder_max_frame_cap():
    fr = make(F.T_RESULT, bytes(100))
    dec = F.Decoder(max_frame=64)
    assert dec.capacity == 128
    assert outcomes(fr, dec)[0] == (F.ERROR, "too_long")
    with pytest.raises(FrameError):
        F.Decoder(max_frame=F.MAX_FRAME + 1)


def test_unknown_type_is_bad_type():
    fr = bytearray(make())
    fr[2] = 0x7F
    assert outcomes(bytes(fr))[0] == (F.ERROR, "bad_type")


def test_bad_crc_drops_one_byte_and_resyncs():
    fr = make()
    bad = bytearray(fr)
    bad[5] ^= 0x10
    out = outcomes(bytes(bad) + fr)
    assert out[0] == (F.ERROR, "bad_crc")
    assert out[-1] == (F.FRAME, fr)
    assert all(k == F.ERROR for k, _ in out[:-1])


def test_abandon_gives_up_a_stalled_candidate():
    fr = make()
    dec = F.Decoder()
    # A false SOF announcing a long body, then a real frame: without more bytes it waits...
    dec.feed(b"\xa1\xe0\x10" + fr)
    assert dec.poll() == F.NEED_MORE
    # ...until the line is idle and the receiver abandons the candidate.
    assert dec.abandon() and dec.error == "timeout"
    got = []
    while (r := dec.poll()) != F.NEED_MORE:
        got.append((r, bytes(dec.frame) if r == F.FRAME else dec.error))
    assert got == [(F.ERROR, "bad_sof"), (F.FRAME, fr)]
    assert not dec.abandon()


def test_feed_is_bounded_and_reports_what_it_took():
    dec = F.Decoder()
    taken = dec.feed(b"\xa1" * 10_000)
    assert taken == dec.capacity == 2 * F.MAX_FRAME
    assert dec.feed(b"x") == 0
    assert dec.poll() == F.ERROR  # the window is full, so the decoder can always progress
    assert len(dec._buf) == dec.capacity


def test_space_commit_for_readinto():
    fr = make()
    dec = F.Decoder()
    view = dec.space()
    view[: len(fr)] = fr
    dec.commit(len(fr))
    assert dec.poll() == F.FRAME and bytes(dec.frame) == fr


def test_frame_accessors_and_verify():
    fr = make(nonce=None)
    assert F.frame_type(fr) == F.T_LIVE
    assert bytes(F.frame_body(fr)) == fr[3:10]
    assert bytes(F.frame_mac(fr)) == fr[10:26]
    F.verify(fr, Mac(KEY), DIR_STATION)
    with pytest.raises(MacError) as e:
        F.verify(fr, Mac(bytes(32)), DIR_STATION)
    assert e.value.code == "bad_mac"
    with pytest.raises(FrameError) as e:
        F.verify(fr, Mac(KEY), DIR_BRIDGE, NONCE)  # LIVE reflected to the station
    assert e.value.code == "wrong_direction"


def test_bridge_frame_bound_to_nonce():
    fr = make(F.T_ACK, b"\x00", DIR_BRIDGE, nonce=NONCE)
    F.verify(fr, Mac(KEY), DIR_BRIDGE, NONCE)
    with pytest.raises(MacError):
        F.verify(fr, Mac(KEY), DIR_BRIDGE, bytes(8))


def test_type_tables():
    assert set(F.STATION_TYPES) | set(F.BRIDGE_TYPES) == set(F.TYPE_NAMES)
    assert set(F.STATION_TYPES) & set(F.BRIDGE_TYPES) == {F.T_NACK}
    assert all(F.is_known(t) for t in F.TYPE_NAMES) and not F.is_known(0)


def test_public_api_names_others_code_against():
    import twproto.crc
    import twproto.errors
    import twproto.mac
    import twproto.messages

    required = {
        twproto.errors: "ProtocolError FrameError MacError MessageError",
        twproto.crc: "crc16",
        twproto.mac: "Mac DIR_STATION DIR_BRIDGE MAC_LEN KEY_LEN NONCE_LEN",
        F: "SOF MAX_BODY MAX_FRAME T_HELLO T_WELCOME T_READING T_ACK T_NACK T_STATUS T_LIVE "
           "T_EVENT T_COMMAND T_RESULT is_authenticated encode Decoder NEED_MORE FRAME ERROR "
           "verify frame_body frame_mac",
        twproto.messages: "Reading Hello Welcome Ack Nack Status Live Event Command Result "
                          "pack_reading unpack_reading encode_message decode_frame ACCEPT WARN "
                          "REJECT E_CODES chain_link CLASSES",
    }
    for module, names in required.items():
        missing = [n for n in names.split() if not hasattr(module, n)]
        assert not missing, (module.__name__, missing)
