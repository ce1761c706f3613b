# tagweigh shared protocol core. Runs unchanged on MicroPython (ESP32) and CPython (bridge).
PROTOCOL_VERSION = 1
