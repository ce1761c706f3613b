"""Pure parts of the station drivers, run under CPython AND inside the MicroPython VM.

No pytest, no host imports: CRC_A, the GM65 command CRC, NDEF parsing, scanner line assembly
over a minimal in-memory UART.
"""

from twstation import gm65, ndef

# twstation.ndef's numbers (private constants in the driver: inlined, so not module attributes
# on MicroPython): find_message statuses and record kinds.
FOUND, ABSENT, NEED = 0, 1, 2
KIND_TEXT, KIND_URI, KIND_BAD = 1, 2, 4
from twstation.mfrc522 import crc_a
from twstation.scanner import Scanner, crc_gm65


class _Uart:
    def __init__(self):
        self.rx = bytearray()
        self.tx = bytearray()

    def readinto(self, buf):
        n = min(len(buf), len(self.rx))
        if not n:
            return None
        buf[:n] = self.rx[:n]
        self.rx = self.rx[n:]
        return n

    def write(self, b):
        self.tx.extend(b)
        return len(b)


def _text_record(text, lang=b"en"):
    payload = bytes([len(lang)]) + lang + text
    return bytes([0xD1, 1, len(payload)]) + b"T" + payload


def _tlv(msg):
    return bytes([0x03, len(msg)]) + msg + b"\xfe"


def test_crc_a():
    assert crc_a(b"123456789", 9) == 0xBF05
    assert crc_a(bytes([0x50, 0x00]), 2) == 0xCD57
    assert crc_a(bytes([0x50, 0x00, 0x57, 0xCD]), 4) == 0


def test_crc_gm65():
    assert crc_gm65(bytes([0x08, 0x01, 0x00, 0x0A, 0x3E]), 0, 5) == 0x4CCF
    assert crc_gm65(bytes([0x00, 0x01, 0x00]), 0, 3) == 0x3331


def test_ndef_text():
    mem = bytearray(_tlv(_text_record(b"BAG-000123")) + bytes(16))
    status, off, n = ndef.find_message(mem, 0, len(mem))
    assert status == FOUND
    kind, voff, vn, pre = ndef.parse_record(mem, off, n)
    assert kind == KIND_TEXT
    assert ndef.value(mem, kind, voff, vn, pre) == b"BAG-000123"


def test_ndef_uri_and_skipped_tlvs():
    rec = bytes([0xD1, 1, 11, 0x55, 0x04]) + b"ex.org/t/7"
    mem = bytearray(b"\x00\x01\x03\xa0\x0c\x44" + _tlv(rec))
    status, off, n = ndef.find_message(mem, 0, len(mem))
    assert status == FOUND
    kind, voff, vn, pre = ndef.parse_record(mem, off, n)
    assert kind == KIND_URI
    assert ndef.value(mem, kind, voff, vn, pre) == b"https://ex.org/t/7"


def test_ndef_need_absent_bad():
    msg = _text_record(b"X" * 40)
    mem = bytearray(_tlv(msg))
    assert ndef.find_message(mem, 0, 16)[0] == NEED
    assert ndef.find_message(bytearray(b"\x00\xfe"), 0, 2)[0] == ABSENT
    bad = bytearray(msg)
    bad[2] = 200  # payload length past the message
    assert ndef.parse_record(bad, 0, len(bad))[0] == KIND_BAD
    ctrl = bytearray(_text_record(b"A\x01B"))
    assert ndef.parse_record(ctrl, 0, len(ctrl))[0] == KIND_BAD


def test_scanner_lines_overlong_garbage():
    u = _Uart()
    sc = Scanner(u, terminator=b"\r", max_line=8)
    u.rx.extend(b"ABC\rTOO-LONG-LINE\rA\x01B\rOK\r")
    got = []
    for _ in range(10):
        line = sc.poll()
        if line is not None:
            got.append(line)
    assert got == [b"ABC", b"OK"]
    assert sc.overlong == 1 and sc.garbage == 1 and sc.lines == 2


def test_scanner_reply_frame_is_not_a_line():
    u = _Uart()
    sc = Scanner(u)
    u.rx.extend(bytes([0x02, 0x00, 0x00, 0x01, 0x00, 0x33, 0x31]) + b"Q1\r")
    assert sc.poll() == b"Q1"
    assert sc.replies == 1 and sc.reply_data == 0
    gm65.trigger(sc)
    assert bytes(u.tx) == bytes([0x7E, 0x00, 0x08, 0x01, 0x00, 0x02, 0x01]) + bytes(
        [crc_gm65(bytes([0x08, 0x01, 0x00, 0x02, 0x01]), 0, 5) >> 8,
         crc_gm65(bytes([0x08, 0x01, 0x00, 0x02, 0x01]), 0, 5) & 0xFF])  # fmt: skip



def test_scanner_runs_after_its_cold_setup_module_is_forgotten():
    # Scanner's construction lives in twstation.drvwork (twstation.COLD); once it is forgotten
    # (MicroPython only) the scanner keeps working
    import sys

    from twstation import COLD, forget

    assert "twstation.drvwork" in COLD
    u = _Uart()
    sc = Scanner(u, terminator=b"\r\n")
    forget(("twstation.drvwork",))
    if sys.implementation.name == "micropython":
        assert "twstation.drvwork" not in sys.modules
    u.rx.extend("Zé\r\n".encode())
    assert sc.poll() == "Zé".encode()
