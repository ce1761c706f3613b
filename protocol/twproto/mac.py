# HMAC-SHA256 truncated to 16 bytes, over DIR || NONCE? || frame[0:3+N] (SPEC.md "MAC").
# ESP32 MicroPython has hashlib.sha256 but no hmac module and no sha256().copy(), so HMAC is built
# here from the precomputed 64-byte key^ipad / key^opad blocks. Where copy() exists (CPython) the
# two hash states after those blocks are kept and copied: measured ~0.9 us per MAC against ~2 us
# for hmac.digest(), which would also need the input joined into one buffer first.
import hashlib

from twproto.errors import MacError
from twproto.frame import __getattr__  # noqa: F401  (the host names, see below)
from twproto.port import MICROPYTHON, const

# Private copies (inlined: no interned names on the station). The public DIR_STATION,
# DIR_BRIDGE, MAC_LEN, KEY_LEN and NONCE_LEN live in twproto.framehost and are reached as
# mac.X through frame's module __getattr__ (one function for both modules: each costs heap);
# tests/protocol/test_frame_split.py checks they agree.
_DIR_STATION = const(0x53)  # 'S': frame sent by the station
_DIR_BRIDGE = const(0x42)  # 'B': frame sent by the bridge (its MAC input also carries the nonce)
_MAC_LEN = const(16)
_KEY_LEN = const(32)
_NONCE_LEN = const(8)


if MICROPYTHON:

    def _compare(a, b):  # constant time
        if len(a) != len(b):
            return False
        r = 0
        for i in range(len(a)):
            r |= a[i] ^ b[i]
        return r == 0

else:  # CPython: hmac.compare_digest (C), imported there so its names stay off the station
    from twproto.cpython import _compare  # type: ignore[assignment,no-redef]


class Mac:
    """Signer/verifier for one device key (32 bytes)."""

    def __init__(self, key):
        if len(key) != _KEY_LEN:
            raise MacError("bad_key", "key must be 32 bytes")
        ipad = bytearray(64)
        opad = bytearray(64)
        for i in range(64):
            k = key[i] if i < _KEY_LEN else 0
            ipad[i] = k ^ 0x36
            opad[i] = k ^ 0x5C
        # MicroPython: the key^ipad / key^opad blocks; CPython: the hash states after them (one
        # pair of names for both: each distinct name costs station RAM, firmware/MEMORY.md)
        self._inner = bytes(ipad)
        self._outer = bytes(opad)
        if not MICROPYTHON:
            self._inner = hashlib.sha256(self._inner)  # type: ignore[assignment]
            self._outer = hashlib.sha256(self._outer)  # type: ignore[assignment]

    def sign_into(self, buf, direction, nonce, data):
        """Write the 16-byte MAC into buf[0:16] (a memoryview/bytearray); no slice copies.
        (Hosts wanting it as bytes: twproto.framehost.sign.)"""
        if direction == _DIR_STATION:
            d = b"S"
        elif direction == _DIR_BRIDGE:
            d = b"B"
            if nonce is None or len(nonce) != _NONCE_LEN:
                raise MacError("bad_nonce", "bridge frames need the 8-byte session nonce")
        else:
            raise MacError("bad_direction")
        if MICROPYTHON:  # no sha256().copy()
            h = hashlib.sha256(self._inner)
        else:
            h = self._inner.copy()  # type: ignore[attr-defined]
        h.update(d)
        if direction == _DIR_BRIDGE:
            h.update(nonce)
        h.update(data)
        inner = h.digest()
        if MICROPYTHON:
            h = hashlib.sha256(self._outer)
        else:
            h = self._outer.copy()  # type: ignore[attr-defined]
        h.update(inner)
        full = h.digest()
        for i in range(_MAC_LEN):
            buf[i] = full[i]

    def verify(self, direction, nonce, data, mac):
        """True if mac (16 bytes) is the MAC of data; constant-time compare."""
        if len(mac) != _MAC_LEN:
            return False
        if direction == _DIR_BRIDGE and (nonce is None or len(nonce) != _NONCE_LEN):
            return False
        want = bytearray(_MAC_LEN)
        self.sign_into(want, direction, nonce, data)
        return _compare(want, mac)
