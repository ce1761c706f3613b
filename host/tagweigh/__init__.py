"""tagweigh: host toolkit for signed bag weighing stations (bridge, simulator, flashing, upload)."""

__version__ = "0.1.0"
