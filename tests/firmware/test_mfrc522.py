"""MFRC522 driver against the register/FIFO-level reader model and ISO 14443A cards."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tagweigh import hw

hw.install_fakes()

import twstation.mfrc522 as rfm  # noqa: E402
from tagweigh.hw.mfrc522 import Card, MFRC522Model, crc_a, ndef_text, ndef_uri, ntag_memory  # noqa: E402
from twstation import ndef  # noqa: E402
from twstation.errors import DriverError  # noqa: E402

# poll() results and error codes: the numbers station.py compares with (the driver keeps them as
# private constants, inlined by MicroPython's compiler).
NONE, TAG, MULTIPLE, ERROR, GONE = 0, 1, 2, 3, 4
ERR_TIMEOUT, ERR_CRC, ERR_PROTOCOL, ERR_CHIP = 1, 2, 3, 4
KIND_NONE, KIND_TEXT, KIND_URI = 0, 1, 2  # rf.ndef_kind (twstation.ndef's record kinds)

UID7 = bytes.fromhex("04a1b2c3d4e5f6")
UID7B = bytes.fromhex("04a1b2112233f6")  # same first 3 bytes: collides only at cascade level 2
UID4 = bytes.fromhex("deadbeef")


@pytest.fixture
def clock():
    hw.reset_bench()
    c = hw.VirtualClock(step_us=1)
    undo = c.bind(rfm)
    yield c
    undo()


@pytest.fixture
def rig(clock):
    model = MFRC522Model(clock=clock)
    drv = rfm.MFRC522(model.spi, model.cs, scan_ms=50)
    return model, drv


def run(drv, clock, ms=300, step_us=500):
    """Poll like the station loop; return the non-NONE results with their data."""
    out = []
    for _ in range(ms * 1000 // step_us):
        r = drv.poll()
        if r:
            out.append((r, drv.uid, drv.ndef_kind, drv.value, drv.error))
        clock.advance_us(step_us)
    return out


def test_crc_a_known_values():
    assert crc_a(b"123456789") == 0xBF05  # CRC-16/ISO-IEC-14443-3-A check value
    assert rfm.crc_a(b"123456789", 9) == 0xBF05
    hlta = bytes((0x50, 0x00))
    assert rfm.crc_a(hlta, 2) == 0xCD57  # on air: 50 00 57 CD
    assert rfm.crc_a(hlta + b"\x57\xcd", 4) == 0


@settings(max_examples=50)
@given(st.binary(max_size=40))
def test_crc_a_firmware_matches_model(data):
    assert rfm.crc_a(data, len(data)) == crc_a(data)


def test_init_bytes_on_the_wire(clock):
    model = MFRC522Model(clock=clock)
    model.spi.bus.trace = []
    drv = rfm.MFRC522(model.spi, model.cs)
    trace = model.spi.bus.trace
    # SoftReset: write CommandReg (address 0x01 -> 0x02) = 0x0F.
    assert trace[0][1] == bytes((0x02, 0x0F))
    # Read CommandReg: MOSI 0x82 0x00, MISO returns the value in the second byte.
    assert trace[1][1] == bytes((0x82, 0x00)) and trace[1][2][1] & 0x10 == 0
    # VersionReg 0x37 -> read address byte 0x80 | 0x37 << 1 = 0xEE.
    assert trace[2] == (model.cs.id, bytes((0xEE, 0x00)), bytes((0x00, 0x92)))
    writes = [t[1] for t in trace[3:10]]
    assert writes == [bytes((0x54, 0x80)), bytes((0x56, 0xA9)), bytes((0x58, 0x00)),
                      bytes((0x5A, 0xC8)), bytes((0x2A, 0x40)), bytes((0x22, 0x3D)),
                      bytes((0x4C, 0x70))]  # fmt: skip
    assert model.field_on and drv.version == 0x92


def test_missing_chip_raises(clock):
    spi = hw.fake_machine.SPI("nothing")
    cs = hw.fake_machine.Pin("nothing.cs")
    with pytest.raises(DriverError):
        rfm.MFRC522(spi, cs)  # MISO floats high: VersionReg reads 0xFF


def test_self_test_uses_the_crc_coprocessor(rig, clock):
    from twstation import rfdiag

    undo = clock.bind(rfdiag)
    model, drv = rig
    try:
        assert rfdiag.crc_self_test(drv) is True
        model.regs[0x11] = 0x3C  # CRC preset 0x0000: the coprocessor now disagrees with crc_a
        with pytest.raises(DriverError):
            rfdiag.crc_self_test(drv)
    finally:
        undo()


def test_private_numbers_match_the_protocol_and_ndef():
    from twproto import bodies as M

    assert (rfm._NONE, rfm._TAG, rfm._MULTIPLE, rfm._ERROR, rfm._GONE) == (NONE, TAG, MULTIPLE,
                                                                           ERROR, GONE)
    assert (rfm._ERR_TIMEOUT, rfm._ERR_CRC, rfm._ERR_PROTOCOL, rfm._ERR_CHIP) == (
        ERR_TIMEOUT, ERR_CRC, ERR_PROTOCOL, ERR_CHIP)
    assert (rfm._KIND_NONE, rfm._KIND_TEXT, rfm._KIND_URI, rfm._KIND_BAD) == (
        ndef._KIND_NONE, ndef._KIND_TEXT, ndef._KIND_URI, ndef._KIND_BAD)
    assert (rfm._KIND_TEXT, rfm._KIND_URI) == (M.TAG_NDEF_TEXT, M.TAG_NDEF_URI)


def test_no_card_nothing_and_poll_returns_quickly(rig, clock):
    model, drv = rig
    import time

    t0 = time.perf_counter()
    assert run(drv, clock, ms=500) == []
    polls = 1000
    assert (time.perf_counter() - t0) / polls < 0.002  # each poll is a few register accesses
    assert drv.scans >= 8 and drv.tags == 0
    # Nobody answered: each scan ended by the chip's 5 ms timer, not by a driver wait.
    assert all(f[0] == b"\x52" and f[1] == 7 for f in model.frames)


def test_ntag_with_ndef_text(rig, clock):
    model, drv = rig
    model.add_card(Card.ntag(UID7, ndef_text("BAG-000123")))
    model.frames.clear()
    res = run(drv, clock)
    assert res == [(TAG, UID7, KIND_TEXT, b"BAG-000123", 0)]
    assert drv.sak == 0x00 and drv.atqa == 0x0044
    frames = [f[0] for f in model.frames]
    assert frames[0] == b"\x52"
    assert frames[1] == b"\x93\x20"
    cl1 = bytes((0x88,)) + UID7[:3]
    bcc = cl1[0] ^ cl1[1] ^ cl1[2] ^ cl1[3]
    sel = b"\x93\x70" + cl1 + bytes((bcc,))
    c = crc_a(sel)
    assert frames[2] == sel + bytes((c & 0xFF, c >> 8))
    assert frames[3] == b"\x95\x20"
    assert frames[5][:2] == b"\x30\x03"  # READ from page 3 (CC + NDEF TLV)
    assert b"\x50\x00\x57\xcd" in frames  # HLTA after the read


def test_tag_reported_once_per_presentation_then_gone(rig, clock):
    model, drv = rig
    card = model.add_card(Card.ntag(UID7, ndef_uri("https://trace.example/t/42")))
    res = run(drv, clock, ms=1000)
    assert [r[0] for r in res] == [TAG]
    assert res[0][2] == KIND_URI and res[0][3] == b"https://trace.example/t/42"
    model.remove_card(card)
    res = run(drv, clock, ms=500)
    assert [r[0] for r in res] == [GONE]
    model.add_card(card)
    assert [r[0] for r in run(drv, clock)] == [TAG]


def test_classic_4_byte_uid_without_ndef(rig, clock):
    model, drv = rig
    model.add_card(Card.classic(UID4))
    res = run(drv, clock)
    assert res == [(TAG, UID4, KIND_NONE, None, 0)]
    assert drv.sak == 0x08


def test_10_byte_uid(rig, clock):
    model, drv = rig
    uid = bytes(range(1, 11))
    model.add_card(Card(uid, sak=0x20))
    res = run(drv, clock)
    assert res[0][0] == TAG and res[0][1] == uid


def test_unformatted_ntag_gives_uid_only(rig, clock):
    model, drv = rig
    model.add_card(Card.ntag(UID7, None))
    assert run(drv, clock) == [(TAG, UID7, KIND_NONE, None, 0)]


def test_long_ndef_spans_several_reads(rig, clock):
    model, drv = rig
    text = "LOT-2024-" + "X" * 50
    model.add_card(Card.ntag(UID7, ndef_text(text), kind="ntag215"))
    model.frames.clear()
    res = run(drv, clock)
    assert res[0][2] == KIND_TEXT and res[0][3] == text.encode()
    reads = [f[0][1] for f in model.frames if f[0][:1] == b"\x30"]
    assert reads == [3, 7, 11, 15, 19]


@pytest.mark.parametrize("uids", [(UID7, UID7B), (UID4, bytes.fromhex("deadbe00")), (UID7, UID4)])
def test_two_cards_give_multiple_never_one_uid(rig, clock, uids):
    model, drv = rig
    for u in uids:
        model.add_card(Card.ntag(u, ndef_text("A")) if len(u) == 7 else Card.classic(u))
    res = run(drv, clock, ms=1000)
    assert [r[0] for r in res] == [MULTIPLE]  # once per episode, not every scan
    assert drv.multiples >= 5 and drv.tags == 0
    # One card leaves: the other is read normally.
    model.remove_card(model.cards[0])
    res = run(drv, clock, ms=500)
    assert [r[0] for r in res] == [TAG] and res[0][1] == uids[1]


def test_bcc_and_crc_errors_are_reported_then_recover(rig, clock):
    model, drv = rig
    card = model.add_card(Card.ntag(UID7, ndef_text("BAG-9")))
    card.corrupt_next(2)  # ATQA (no check possible), then the UID CL1 + BCC answer
    res = run(drv, clock, ms=300)
    assert [(r[0], r[4]) for r in res][0] == (ERROR, ERR_PROTOCOL)  # BCC mismatch
    assert res[-1][:4] == (TAG, UID7, KIND_TEXT, b"BAG-9")
    model.remove_card(card)
    run(drv, clock, ms=300)  # GONE
    model.add_card(card)
    # Corrupt the SAK: the answer to the SELECT, which is computed when the SELECT goes out.
    res = []
    armed = False
    for _ in range(2000):
        r = drv.poll()
        if r:
            res.append((r, drv.error))
        if not armed and model.frames and model.frames[-1][0] == b"\x93\x20":
            card.corrupt_next(1)
            armed = True
        clock.advance_us(500)
    assert res[0] == (ERROR, ERR_CRC)
    assert res[-1][0] == TAG and drv.errors == 2


def test_card_leaving_mid_scan_is_a_timeout(rig, clock):
    model, drv = rig
    card = model.add_card(Card.ntag(UID7, ndef_text("X")))
    # Poll until the driver has sent the SELECT of level 1, then pull the card away.
    for _ in range(10000):
        drv.poll()
        clock.advance_us(200)
        if any(f[0][:2] == b"\x93\x70" for f in model.frames):
            break
    card.in_field = False
    res = run(drv, clock, ms=100, step_us=200)
    assert (ERROR, ERR_TIMEOUT) in [(r[0], r[4]) for r in res]


def test_antenna_off_means_no_answer(rig, clock):
    model, drv = rig
    model.add_card(Card.ntag(UID7, ndef_text("X")))
    drv.antenna(0)
    drv._s = rfm._ST_IDLE  # keep scanning with the field off
    res = []
    for _ in range(200):
        r = drv.poll()
        if r:
            res.append(r)
        clock.advance_us(500)
    assert TAG not in res


def test_dead_chip_is_an_error_not_a_hang(rig, clock):
    model, drv = rig
    model.regs[0x2A] = 0  # timer without TAuto: a command nobody answers never ends by itself
    drv._wreg(0x2A, 0)
    res = run(drv, clock, ms=200)
    assert (ERROR, ERR_CHIP) in [(r[0], r[4]) for r in res]


def test_model_read_rollover_and_nak():
    uid = UID7
    card = Card.ntag(uid, ndef_text("hi"))
    card.state = "ACTIVE"
    frame = bytes((0x30, 44))
    c = crc_a(frame)
    data, bits = card.receive(frame + bytes((c & 0xFF, c >> 8)), 32)
    assert len(data) == 18 and crc_a(data) == 0
    assert data[4:8] == bytes(ntag_memory(uid)[0:4])  # rolled over to page 0
    frame = bytes((0x30, 45))
    c = crc_a(frame)
    assert card.receive(frame + bytes((c & 0xFF, c >> 8)), 32) == (b"\x00", 4)


# NFC Forum URI RTD, table 3 (prefix codes), written out independently of the driver's string.
URI_RTD = (
    "", "http://www.", "https://www.", "http://", "https://", "tel:", "mailto:",
    "ftp://anonymous:anonymous@", "ftp://ftp.", "ftps://", "sftp://", "smb://", "nfs://",
    "ftp://", "dav://", "news:", "telnet://", "imap:", "rtsp://", "urn:", "pop:", "sip:", "sips:",
    "tftp:", "btspp://", "btl2cap://", "btgoep://", "tcpobex://", "irdaobex://", "file://",
    "urn:epc:id:", "urn:epc:tag:", "urn:epc:pat:", "urn:epc:raw:", "urn:epc:", "urn:nfc:",
)  # fmt: skip


def test_every_uri_prefix_code_expands():
    for code, prefix in enumerate(URI_RTD):
        rec = bytearray((0xD1, 1, 4, 0x55, code)) + b"a/b"
        kind, off, n, pre = ndef.parse_record(rec, 0, len(rec))
        assert (kind, pre) == (KIND_URI, code)
        assert ndef.value(rec, kind, off, n, pre) == prefix.encode() + b"a/b"
    rec = bytearray((0xD1, 1, 4, 0x55, len(URI_RTD))) + b"a/b"  # no such code
    assert ndef.parse_record(rec, 0, len(rec))[0] == ndef._KIND_BAD


def test_drvwork_copies_of_the_driver_numbers():
    # drvwork.mfrc522 allocates the driver's buffers and sets its idle state with literal copies
    from twstation import drvwork

    assert (drvwork._MEM_MAX, drvwork._CommandReg) == (rfm._MEM_MAX, rfm._CommandReg)
    assert rfm._ST_IDLE == rfm._NONE == rfm._KIND_NONE == 0  # written as 0 by drvwork.mfrc522
