"""The station simulator: the real firmware code against hardware models, behind a real pty.

Layers (each its own module):
- ``pty``: a pseudo-terminal pair; the station side is a non-blocking byte stream, the bridge
  side is a path that pyserial opens exactly as it opens ``/dev/ttyUSB0``.
- ``world``: the hardware of one station (load cell, HX711, MFRC522 with cards, QR scanner)
  wired to fake ``machine`` objects, with the actions a person performs (place a bag, scan).
- ``station_proc``: one station process: builds the world and the firmware ``Station``, runs it.
- ``supervisor``: owns the ptys, starts/kills/restarts station processes (power cuts), and
  forwards scenario actions to them.
- ``scenarios``: scripted depot shifts.
"""
