"""PIN hashing, the [web] config section and the PIN attempt limiter."""

from __future__ import annotations

import pytest

from tagweigh.config import from_dict
from tagweigh.errors import ConfigError
from tagweigh.web.auth import Operator, PinGate, csrf_token, hash_pin, is_loopback, verify_pin, web_config

HASH_1234 = hash_pin("1234")


def test_pin_hash_roundtrip_and_salt():
    assert verify_pin("1234", HASH_1234)
    assert not verify_pin("1235", HASH_1234)
    assert not verify_pin("12345", HASH_1234)
    other = hash_pin("1234")
    assert other != HASH_1234  # a fresh salt each time
    assert verify_pin("1234", other)
    assert HASH_1234.startswith("scrypt$16384$8$1$")
    assert "1234" not in HASH_1234.split("$", 4)[4]


@pytest.mark.parametrize("pin", ["", "123", "12a4", "1234567890123", " 1234", "١٢٣٤"])
def test_pin_format_is_checked(pin):
    with pytest.raises(ConfigError):
        hash_pin(pin)
    assert not verify_pin(pin, HASH_1234)


@pytest.mark.parametrize("bad", ["", "1234", "scrypt$16384$8$1$abc", "scrypt$3$8$1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAA",
                                 "bcrypt$16384$8$1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAA"])
def test_malformed_hash_never_verifies(bad):
    assert not verify_pin("1234", bad)


def _cfg(web: dict):
    return from_dict({"web": web}, base_dir=None)


def test_web_config_defaults_to_loopback_8080():
    wc = web_config(_cfg({}))
    assert wc.enabled and wc.listen == "127.0.0.1:8080" and wc.loopback_only
    assert wc.operators == ()


def test_web_config_beyond_loopback_needs_a_token():
    with pytest.raises(ConfigError, match="access_token"):
        web_config(_cfg({"listen": "0.0.0.0:8080"}))
    wc = web_config(_cfg({"listen": "0.0.0.0:8080", "access_token": "x" * 24}))
    assert not wc.loopback_only
    assert "x" * 24 not in repr(wc)  # the token is never logged with the config
    with pytest.raises(ConfigError, match="16 characters"):
        web_config(_cfg({"listen": "0.0.0.0:8080", "access_token": "short"}))
    # disabled: nothing is served, so nothing is required
    assert not web_config(_cfg({"listen": "0.0.0.0:8080"}), enabled=False).enabled


def test_web_config_refuses_plain_pins_and_typos():
    with pytest.raises(ConfigError, match="not a PIN hash"):
        web_config(_cfg({"operators": [{"name": "Amani", "pin": "1234"}]}))
    with pytest.raises(ConfigError, match="unknown key"):
        web_config(_cfg({"lisen": "127.0.0.1:1"}))
    with pytest.raises(ConfigError, match="same name"):
        web_config(_cfg({"operators": [{"name": "A", "pin": HASH_1234}, {"name": "A", "pin": HASH_1234}]}))
    with pytest.raises(ConfigError, match="HOST:PORT"):
        web_config(_cfg({"listen": "8080"}))
    wc = web_config(_cfg({"operators": [{"name": " Amani ", "pin": HASH_1234}]}), listen="127.0.0.1:0")
    assert wc.operators == (Operator("Amani", HASH_1234),) and wc.port == 0


def test_loopback_names():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.1.2.3")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("depot.local")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_pin_gate_finds_the_operator_and_locks_out_guessing():
    clock = Clock()
    ops = (Operator("Amani", HASH_1234), Operator("Bea", hash_pin("9876")))
    gate = PinGate(ops, max_failures=3, lockout_s=60, clock=clock)
    assert gate.check("a", "9876").name == "Bea"
    assert gate.check("a", "0000") is None
    assert gate.check("a", "1111") is None
    assert gate.locked_for("a") == 0
    assert gate.check("a", "2222") is None  # third wrong PIN: locked
    assert gate.locked_for("a") == pytest.approx(60)
    with pytest.raises(PermissionError):
        gate.check("a", "1234")  # even the right PIN is not checked while locked
    assert gate.check("b", "1234").name == "Amani"  # another client is not affected
    clock.t += 61
    assert gate.check("a", "1234").name == "Amani"  # a right PIN clears the count
    for pin in ("0", "00000", "0001"):
        gate.check("a", pin)
    assert gate.locked_for("a") == pytest.approx(60)  # counts restarted after the success
    clock.t += 61
    for pin in ("0004", "0005", "0006"):
        gate.check("a", pin)
    assert gate.locked_for("a") == pytest.approx(120)  # second lockout doubles


def test_pin_gate_global_limit_stops_address_cycling():
    clock = Clock()
    gate = PinGate((Operator("Amani", HASH_1234),), max_failures=2, lockout_s=30, clock=clock)
    for i in range(9):  # 9 > 4 * 2 wrong PINs from 9 different addresses
        gate.check(f"10.0.0.{i}", "0000")
    assert gate.locked_for("10.0.0.200") == pytest.approx(30)
    with pytest.raises(PermissionError):
        gate.check("10.0.0.200", "1234")


def test_csrf_token_is_bound_to_browser_and_server():
    a = csrf_token(b"k" * 32, "sid-one-1234567890")
    assert a == csrf_token(b"k" * 32, "sid-one-1234567890")
    assert a != csrf_token(b"k" * 32, "sid-two-1234567890")
    assert a != csrf_token(b"j" * 32, "sid-one-1234567890")
