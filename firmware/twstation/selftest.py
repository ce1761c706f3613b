# Station self-test for technicians: each check has a deadline and a short answer. Run from the
# REPL (mpremote exec "import main; main.selftest()") it prints one JSON line; over the link the
# SELF_TEST command returns the same dict as RESULT detail.
#
#   hx    HX711 answers: DOUT goes low (data ready) within HX_MS
#   rdr   MFRC522 answers a reset and its VersionReg reads 0x91 or 0x92 (v1.0/v2.0) ("none" when the station has no RFID reader)
#   scn   scanner UART present and readable without error ("none" without a scanner)
#   jnl   journal writable: a probe file is written, read back and removed next to it
#   key   /key.bin present with 32 bytes (the key itself is never read here)
#   clk   ticks advance
# "ok" is true when every present part passed.
import os

from twproto.port import sleep_ms, ticks_diff

HX_MS = 600  # HX711 at 10 SPS is ready every 100 ms; 600 ms covers a slow first conversion
_VERSIONS = (0x91, 0x92)


def _hx(hx):
    if hx is None:
        return "none"
    try:
        hx.read_raw(HX_MS)  # waits for DOUT low with its own deadline
        return "ok"
    except Exception as e:  # DriverTimeout: no conversion in time
        return "timeout" if type(e).__name__ == "DriverTimeout" else "error " + type(e).__name__


def _rdr(rfid):
    if rfid is None:
        return "none"
    try:
        rfid.init()  # soft reset; reads VersionReg again (DriverError if the chip is silent)
        v = rfid.version
    except Exception as e:  # a driver error is the answer, not a crash
        return "error " + type(e).__name__
    if v in _VERSIONS:
        return "ok"
    return "version 0x%02x" % (v & 0xFF)  # a clone chip: works, but say so


def _scn(scanner):
    if scanner is None:
        return "none"
    probe = getattr(scanner, "probe", None)
    try:
        if probe is not None:
            return "ok" if probe() else "no_answer"
        scanner.poll()  # the UART can be read (a scanner only talks when it scans)
        return "ok"
    except Exception as e:
        return "error " + type(e).__name__


def _jnl(root):
    path = (root.rstrip("/") if root and root != "/" else "") + "/selftest.tmp"
    try:
        with open(path, "wb") as f:
            f.write(b"tagweigh")
        with open(path, "rb") as f:
            ok = f.read() == b"tagweigh"
        os.remove(path)
        return "ok" if ok else "readback"
    except OSError as e:
        return "error " + str(e.args[0] if e.args else "")


def _key(root):
    from twstation.config import key_present

    return "ok" if key_present(root) else "missing"


def _clk(clock):
    t0 = clock.ticks_ms()
    sleep_ms(2)
    return "ok" if ticks_diff(clock.ticks_ms(), t0) > 0 else "stopped"


CHECKS = ("hx", "rdr", "scn", "jnl", "key", "clk")  # bit i of the SELF_TEST RESULT value


def failed_mask(r):
    """Bit mask of failed checks (bit i = CHECKS[i]); 0 = pass."""
    m = 0
    for i in range(len(CHECKS)):
        if r.get(CHECKS[i]) not in ("ok", "none"):
            m |= 1 << i
    return m


def run(devices, journal, root="/", clock=None):
    """Return {'ok': bool, 'hx': ..., 'rdr': ..., 'scn': ..., 'jnl': ..., 'key': ..., 'clk': ...}."""
    if clock is None:
        from twproto import port as clock  # its ticks_ms(): the default clock
    r = {
        "hx": _hx(getattr(devices, "hx711", None)),
        "rdr": "not_found" if "rfid" in getattr(devices, "faults", ()) else _rdr(
            getattr(devices, "rfid", None)),
        "scn": _scn(getattr(devices, "scanner", None)),
        "jnl": _jnl(root),
        "key": _key(root),
        "clk": _clk(clock),
    }
    if journal is not None and getattr(journal, "full", False):
        r["jnl"] = "full"
    ok = True
    for k in r:
        if r[k] not in ("ok", "none"):
            ok = False
    r["ok"] = ok
    return r
