# Driver work that does not run per sample or per line: the HX711's construction (argument
# checks, counters) and its rare methods (power down/up, gain change, readiness, the blocking
# read of the self-test and calibration), reached through HX711.__getattr__ as hx_<name>; the
# scanner's construction; the MFRC522's set-up (MFRC522.init: buffers, reset, chip check,
# registers, at boot and in the self-test). Imported on use and forgotten (twstation.COLD): none
# of it stays in the station's heap while it runs.
#
# HX711 clock: through the driver's module (H.ticks_ms...): tests and the simulator bind a
# virtual clock to the ticks/sleep names of twstation.hx711. The MFRC522 reset waits on the
# real clock (twproto.port), as it always did.
from micropython import const

from twproto.port import sleep_ms, ticks_diff, ticks_ms
from twstation.errors import ConfigError, DriverError, DriverTimeout

_CHUNK = const(64)  # Scanner.poll() reads at most this much per call
_SETTLE_PERIODS = const(4)  # settling time = 4 output periods (400 ms @ 10 SPS, 50 ms @ 80 SPS)
# MFRC522 (copies of twstation.mfrc522's numbers where it has them; a test checks them)
_CommandReg = const(0x01)
_VersionReg = const(0x37)
_SOFT_RESET = const(0x0F)
_MEM_MAX = const(144)  # mfrc522._MEM_MAX: CC + up to 140 bytes of data area


# -- HX711 ------------------------------------------------------------------------------------
def _pulses(gain):
    # gain -> PD_SCK pulses per read (25: A/128, 26: B/32, 27: A/64)
    if gain == 128:
        return 25
    if gain == 32:
        return 26
    if gain == 64:
        return 27
    raise ConfigError("hx711 gain must be 128, 64 (channel A) or 32 (channel B)")


def hx711(hx, dout, pd_sck, gain, rate_sps, stall_ms):
    """HX711.__init__: check the arguments, bind the pin methods, power-cycle the chip."""
    hx._pulses = _pulses(gain)
    if rate_sps not in (10, 80):
        raise ConfigError("hx711 rate_sps must be 10 or 80 (RATE pin)")
    hx._dout = dout.value
    hx._sck = pd_sck.value
    hx.gain = gain
    period = (1000 + rate_sps - 1) // rate_sps
    # No sample for this long = DOUT stuck high (unplugged, no power): report, don't hang.
    # Settling takes _SETTLE_PERIODS output periods, then a few periods of margin.
    hx.stall_ms = stall_ms or (_SETTLE_PERIODS + 3) * period
    hx.samples = 0
    hx.timeouts = 0
    hx.spikes = 0
    hx.glitches = 0
    hx.last_high_us = 0  # longest clock-high phase of the last read
    hx.reset()


def hx_power_down(hx):
    """PD_SCK high: the chip sleeps 60 us later (~1 uA). Call power_up() to wake it."""
    hx._sck(0)
    hx._sck(1)
    hx._discard = -1  # powered down (no separate flag: one attribute name less)


def hx_power_up(hx):
    hx.reset(0)  # PD_SCK low: the chip wakes (gain 128, settling); the stall window restarts


def hx_set_gain(hx, gain):
    pulses = _pulses(gain)
    if gain != hx.gain:
        hx.gain = gain
        hx._pulses = pulses
        if hx._discard >= 0:  # powered
            hx._discard = 1  # the next read still carries the old gain's conversion


def hx_ready(hx):
    return hx._discard >= 0 and not hx._dout()


def hx_read_raw(hx, timeout_ms=0):
    """Blocking read of one valid sample, within timeout_ms (default: stall_ms)."""
    from twstation import hx711 as H  # its clock (see above)

    if hx._discard < 0:  # powered down
        hx.reset(0)
    start = H.ticks_ms()
    limit = timeout_ms or hx.stall_ms
    while True:
        if not hx._dout():
            v = hx._sample()
            if v is not None:
                return v
        if H.ticks_diff(H.ticks_ms(), start) > limit:
            hx.timeouts += 1
            raise DriverTimeout("hx711: no valid sample before the deadline")
        H.sleep_us(500)


# -- Scanner ----------------------------------------------------------------------------------
def scanner(sc, terminator, max_line):
    """Scanner.__init__: check the arguments, allocate the buffers, zero the counters."""
    if len(terminator) not in (1, 2):
        raise ConfigError("scanner terminator must be 1 or 2 bytes (e.g. CR or CR LF)")
    if not 1 <= max_line <= 256:
        raise ConfigError("scanner max_line must be 1..256")
    sc._term = terminator[-1]
    sc._pre = terminator[0] if len(terminator) == 2 else -1
    sc.max_line = max_line
    # Private attribute names reuse names the app already interns (firmware/MEMORY.md):
    # _buf the line being assembled, _rx the chunk read from the UART, _i/_end the read
    # position and end in _rx, _len bytes of a module reply frame collected.
    sc._buf = bytearray(max_line)
    sc._rx = bytearray(_CHUNK)
    sc._i = 0
    sc._end = 0
    sc._reply = bytearray(7)
    sc.lines = 0
    sc.overlong = 0
    sc.garbage = 0
    sc.replies = 0
    sc.reply_errors = 0
    sc.reply_data = 0
    sc.reset()


# -- MFRC522 ----------------------------------------------------------------------------------
# VersionReg values accepted: FM17522 clone, v0.0, v1.0, v2.0, clones
_VERSIONS = const((0x88, 0x90, 0x91, 0x92, 0x12, 0xB2))

# MFRC522.init's register set-up, (register, value) pairs:
#   TModeReg 0x2A := 0x80       TAuto: the timer starts at the end of each transmission
#   TPrescalerReg 0x2B := 0xA9  (2*169+1)/13.56 MHz = 25 us per tick
#   TReloadRegH/L 0x2C/0x2D := 0x00C8: 200 ticks = 5 ms reply timeout
#   TxASKReg 0x15 := 0x40       force 100 % ASK (ISO 14443A)
#   ModeReg 0x11 := 0x3D        CRC preset 0x6363
#   RFCfgReg 0x26 := 0x70       receiver gain 48 dB
_SETUP = b"\x2a\x80\x2b\xa9\x2c\x00\x2d\xc8\x15\x40\x11\x3d\x26\x70"


def mfrc522(rf, n):
    """MFRC522.init's work: (n=1, from the constructor: allocate the buffers and zero the
    counters, see MFRC522's comments), reset, check the chip is there, set the timer, antenna on,
    scan state idle."""
    if n:
        rf._w = bytearray(2)
        rf._io = bytearray(66)
        rf._rx = bytearray(64)
        rf._mem = bytearray(_MEM_MAX)
        rf._n = 0
        rf._buf = bytearray(10)
        rf._end = 0
        rf._present = b""
        rf.uid = b""
        rf.sak = 0
        rf.atqa = 0
        rf.ndef_kind = 0  # _KIND_NONE
        rf.value = None
        rf.error = 0
        rf.scans = 0
        rf.tags = 0
        rf.multiples = 0
        rf.errors = 0
        rf._cs.value(1)
    rst = rf._rst
    if rst is not None:
        rst.value(0)
        sleep_ms(1)
        rst.value(1)
        sleep_ms(1)
    rf._wreg(_CommandReg, _SOFT_RESET)
    start = ticks_ms()
    while rf._rreg(_CommandReg) & 0x10:  # PowerDown bit: oscillator still starting
        if ticks_diff(ticks_ms(), start) > 50:
            raise DriverError("mfrc522: soft reset did not finish")
        sleep_ms(1)
    v = rf._rreg(_VersionReg)
    if v not in _VERSIONS:
        raise DriverError("mfrc522: not found (VersionReg=0x%02x)" % v)
    rf.version = v
    for i in range(0, len(_SETUP), 2):
        rf._wreg(_SETUP[i], _SETUP[i + 1])
    rf.antenna(1)
    rf._s = 0  # _ST_IDLE
    rf._i = 0
    rf._hold = 0  # _NONE
