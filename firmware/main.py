# tagweigh station entry point (copied to the ESP32 as /main.py; boot.py runs first).
#
# Runs the station on the USB console: the console carries binary frames to the bridge, so
# Ctrl-C is disabled as an interrupt while the app runs. A Ctrl-C byte that arrives while no
# frame is in progress stops the app cleanly (journal closed, kbd_intr(3) restored) and leaves
# the REPL to the technician's tools (mpremote). From the REPL:
#   import main; main.run()        start the station again
#   import main; main.selftest()   one JSON line: hx, rdr, scn, jnl, key, clk, ok

ROOT = "/"


def run(root=ROOT):
    import machine
    import micropython
    from twstation import app
    from twstation.errors import StationError

    try:
        st = app.build(root, reboot=machine.reset)
    except StationError as e:  # bad or missing provisioning: say what, stay at the REPL
        print("tagweigh: " + str(e))
        return None
    micropython.kbd_intr(-1)  # 0x03 is data now; the link watches for it on an idle line
    try:
        app.loop(st)
    finally:
        micropython.kbd_intr(3)
        st.close()
    print("tagweigh: stopped, REPL ready")
    return st


def selftest(root=ROOT):
    import json
    from twstation import app

    r = app.selftest(root)
    print(json.dumps(r))
    return r


if __name__ == "__main__":
    run()
