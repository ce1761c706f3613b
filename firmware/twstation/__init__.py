# tagweigh station firmware (MicroPython, ESP32).
FIRMWARE_VERSION = (0, 1, 0)

# Modules a station needs only at boot or for a command: validation of the rule set, the settings
# and the board, the station's assembly at boot, and command execution. Forgotten after use
# (forget) so their code does not stay in the ESP32's ~100 KB heap; the next boot or command
# imports them again (firmware/MEMORY.md).
COLD = ("twproto.rsload", "twproto.canon", "twstation.settings", "twstation.board",
        "twstation.commands", "twstation.selftest", "twstation.jrecover", "twstation.assemble",
        "twproto.rsbin", "twproto.tagshost", "twstation.session",
        "twstation.drvwork")


def forget(names=COLD):
    """Drop modules from sys.modules (and from their package) so the collector can free them.
    MicroPython only: on CPython (simulator, tests) memory is not short, and a second copy of a
    module imported afterwards would only confuse."""
    from twproto.port import MICROPYTHON

    if not MICROPYTHON:
        return
    import sys

    for name in names:
        if sys.modules.pop(name, None) is not None:
            pkg, _, attr = name.rpartition(".")
            p = sys.modules.get(pkg)
            if p is not None and attr in p.__dict__:
                delattr(p, attr)
