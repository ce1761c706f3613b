# Station identity and settings (ESPHome style: everything is validated when the file is read, with
# a message naming the field; the running code trusts what it was given).
#
#   /station.json  settings, written by the technician tooling or the SET_CONFIG command
#   /key.bin       the 32-byte per-device key: read once, handed to twproto.mac.Mac, never printed,
#                  never sent, never part of the config hash
#   /boot.bin      u16 boot counter, incremented at every boot (unsynced readings carry it)
#
# Paths are joined to a `root` so the simulator and tests run the same code in a temp directory.
#
# Only the Config class stays in the station's heap. Reading and writing the files (load, save,
# load_key, key_present, next_boot), a changed copy (updated), the field table and its
# validation (FIELDS, DIVISIONS, READERS, check, canonical, and fill, which Config() calls) and
# the limits KEY_LEN / MAX_FILE live in twstation.settings, which is needed at boot and for
# SET_CONFIG only (the app forgets it afterwards, twstation.COLD); `config.load(...)` etc. still
# work: this module's __getattr__ imports settings on use.


def __getattr__(name):
    from twstation import settings

    return getattr(settings, name)


class Config:
    """Validated settings. Attributes are the FIELDS names; `hash` is the 4-byte config hash
    (first 4 bytes of SHA-256 of the canonical JSON) that HELLO and STATUS report."""

    # set by twstation.settings.fill (annotations only: no code on MicroPython)
    values: dict  # the validated settings, defaults filled in
    division_code: int  # index of division_g in DIVISIONS (READING flags bits 0-2)
    hash: bytes

    def __init__(self, d):
        from twstation import settings  # validation and hashing: twstation.settings.fill

        settings.fill(self, d)
