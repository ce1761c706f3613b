"""The station's table-driven CRC (twproto.crc.crc16_table, a nibble table) equals CPython's C
CRC-16/CCITT-FALSE (binascii.crc_hqx) on any data, range and starting value."""
from binascii import crc_hqx

from hypothesis import given, settings
from hypothesis import strategies as st

from twproto import crc


def test_table_is_the_polynomial_nibble_table():
    assert len(crc.TABLE) == 16
    # entry i: the CRC of the 4 bits i (a byte < 16 shifts 4 zero bits first)
    assert list(crc.TABLE) == [crc_hqx(bytes([i]), 0) for i in range(16)]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 0xFFFF), st.data())
def test_table_crc_equals_crc_hqx(data, start_crc, draw):
    a = draw.draw(st.integers(0, len(data)))
    b = draw.draw(st.integers(a, len(data)))
    assert crc.crc16_table(data, a, b, start_crc) == crc_hqx(data[a:b], start_crc)
    assert crc.crc16_table(memoryview(bytearray(data))) == crc_hqx(data, 0xFFFF)
    assert crc.crc16_table(data, a) == crc.crc16_table(data, a, -1) == crc_hqx(data[a:], 0xFFFF)
