# The one exception root of the station firmware. Every module raises a subclass of StationError;
# the station loop turns a DriverError into an EVENT (wiring fault, chip missing) instead of a hang.


class StationError(Exception):
    pass


class ConfigError(StationError):
    """A setting is missing or out of range (the message names the field)."""


class DriverError(StationError):
    """A device did not answer as its datasheet says (missing chip, wiring fault, bad reply)."""


class DriverTimeout(DriverError):
    """A device did not become ready before its deadline (e.g. HX711 DOUT never went low)."""
