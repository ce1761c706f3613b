# The one gate between MicroPython and CPython for the shared core and the firmware.
# Everything else imports time, hashing and const from here, never probes the platform itself.
# The CPython implementations live in twproto.cpython, so none of their code is loaded on the
# station (firmware/MEMORY.md).
try:
    from micropython import const  # type: ignore[import-not-found]
except ImportError:  # CPython
    from twproto.cpython import const  # type: ignore[assignment,no-redef]

try:
    from time import (  # type: ignore[attr-defined]
        sleep_ms, sleep_us, ticks_add, ticks_diff, ticks_ms, ticks_us,
    )

    MICROPYTHON = True
    crc_hqx = None  # no binascii.crc_hqx: twproto.crc uses its table
except ImportError:  # CPython (the simulator's fake `micropython` module gives const only)
    from twproto.cpython import (  # type: ignore[assignment,no-redef]
        crc_hqx, sleep_ms, sleep_us, ticks_add, ticks_diff, ticks_ms, ticks_us,
    )

    MICROPYTHON = False
