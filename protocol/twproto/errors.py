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


class RuleSetError(ProtocolError):
    """Rule sets (twproto.ruleset, twproto.canon): bad_json, too_large, too_deep, bad_ruleset.
    The detail names the bad entry, e.g. "rules[3].params.max_g: must be an integer >= min_g";
    `path` (third argument) the entry alone."""


class TagError(ProtocolError):
    """Tag values and check characters (twproto.tags): tag_too_long, bad_char, bad_scheme."""
