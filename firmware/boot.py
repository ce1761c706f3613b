# tagweigh station: runs first at every boot (copied to the ESP32 as /boot.py), then main.py.
# The USB console carries the binary link once the app runs: keep the ESP-IDF log (which would
# print into it) quiet. Nothing here waits or touches the scale (no tare or zero at boot).
try:
    import esp

    esp.osdebug(None)
except ImportError:  # not an ESP32 port (simulator, VM)
    pass
import gc

gc.collect()
