# Builds a Station from what is on the flash and runs its loop. main.py calls it on the ESP32;
# the simulator calls the same build() with fake machine objects (tagweigh.hw), a pty-backed
# stream and its clock, so the code under test is the code that ships. The building itself is in
# twstation.assemble, imported for build()/selftest() and forgotten afterwards (it runs once per
# boot); only loop() stays resident. build is assemble.build itself, reached through the module
# __getattr__ at the end (no wrapper function in the heap).
#
#   st = build(root="/", board=None, stream=None, clock=None, reboot=None, urandom=None)
#   loop(st)        # until Ctrl-C on an idle line, or a REBOOT command without reboot function
from twproto.port import const, sleep_ms

_LOOP_MS = const(2)  # pause between steps: the HX711 gives a sample every 100 ms, tags take ~10 ms
_MAX_FAILS = const(20)  # consecutive failing steps before the loop gives up (to the REPL)


def loop(st):
    """Step the station until it stops. A step that raises is counted and skipped (the fault
    shows in STATUS); _MAX_FAILS in a row re-raise, so a broken station does not spin silently."""
    fails = 0
    while True:
        try:
            if not st.step():
                return
            fails = 0
        except Exception as e:  # keep weighing through one bad step; give up on a stuck one
            fails += 1
            st.last_error = e
            if fails >= _MAX_FAILS:
                raise
        sleep_ms(_LOOP_MS)


def selftest(*args):
    """Self-test without the station loop (REPL tooling): twstation.assemble.selftest(root="/",
    board=None, clock=None) builds the parts and returns the dict."""
    from twstation import assemble, forget

    r = assemble.selftest(*args)
    forget()
    return r


def __getattr__(name):
    # build (main.py, the simulator, tests): twstation.assemble.build(root="/", board=None,
    # stream=None, clock=None, reboot=None, urandom=None), a ready Station; it raises
    # StationError (ConfigError, CalibrationError, JournalCorrupt...) with a one-line message
    # when the flash holds something the station cannot trust, and forgets itself once built.
    # Also JOURNAL_SEGMENTS, RECORD, journal_bytes, STATE_NAMES (host tools, tests).
    from twstation import assemble

    return getattr(assemble, name)
