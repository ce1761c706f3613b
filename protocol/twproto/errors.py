# Exceptions of the shared protocol core. ProtocolError is the one root; every error carries a
# short, stable `code` string (the golden vectors and NACK mapping key on it, never on the text).


class ProtocolError(Exception):
    """Root of every error raised by twproto. `code` is a short stable identifier."""

    def __init__(self, code, detail=None, path=None):
        super().__init__(code if detail is None else code + ": " + detail)
        self.code = code
        # where in a document (RuleSetError); here rather than in RuleSetError's own __init__,
        # which would cost the station's heap another function (firmware/MEMORY.md)
        self.path = path


class FrameError(ProtocolError):
    """Framing layer: bad_sof, bad_version, too_long, bad_type, bad_crc, buffer."""


class MacError(ProtocolError):
    """Authentication: bad_mac, no_key, bad_key, bad_nonce."""


class MessageError(ProtocolError):
    """Message bodies: truncated, bad_length, bad_field, tag_empty, tag_too_long, wrong_direction,
    bad_count, bad_op, bad_type."""


# RuleSetError: rule sets (twproto.rsload, twproto.canon): bad_json, too_large, too_deep,
# bad_ruleset. The detail names the bad entry, e.g. "rules[3].params.max_g: must be an integer
# >= min_g"; `path` (third argument) the entry alone.
# TagError: tag values and check characters (the check-character functions of twproto.tags):
# tag_too_long, bad_char, bad_scheme.
# Both are raised only while a rule set is validated or by host-side tag functions, and no
# station code catches them apart from ProtocolError: each is made on first use (a class costs
# the station's heap ~122 B, firmware/MEMORY.md) and then kept here, so every `errors.X` and
# `from twproto.errors import X` gives the same class.
def __getattr__(name):
    if name == "RuleSetError" or name == "TagError":
        c = type(name, (ProtocolError,), {})
        globals()[name] = c
        return c
    raise AttributeError(name)
