# tagweigh station firmware (MicroPython, ESP32).
FIRMWARE_VERSION = (0, 1, 0)
