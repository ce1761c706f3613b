"""The firmware's and twproto.bodies' private const() copies of the protocol's numbers.

On the station the public numbers (twproto.messages) are never imported: each module keeps
`_NAME = const(n)` copies that the compiler inlines. This test reads every such copy from the
source and checks it equals the public number of the same name, so the copies cannot drift.
"""
import ast
import pathlib

import pytest

from twproto import bodies, frame, messages

ROOT = pathlib.Path(__file__).resolve().parents[2]
FILES = ["protocol/twproto/bodies.py", "firmware/twstation/station.py",
         "firmware/twstation/commands.py", "firmware/twstation/assemble.py"]
# A private constant whose name (without the underscore) starts like this MUST be a copy of a
# public protocol number: a misspelt copy fails instead of being skipped.
PREFIXES = ("T_", "F_", "TAG_", "SF_", "WF_", "TS_", "NACK_", "EV_", "SEV_", "OP_", "RS_",
            "R_FIXED_")
EXACT = ("BODY", "MAX_BODY", "MAX_FRAME", "ACCEPT", "WARN", "REJECT", "ACK_MAX")


def private_consts(path):
    """{name without the underscore: value} of the module-level `_X = const(<literal>)`."""
    out = {}
    for node in ast.parse((ROOT / path).read_text()).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target, value = node.targets[0], node.value
        if (isinstance(target, ast.Name) and target.id.startswith("_")
                and isinstance(value, ast.Call) and getattr(value.func, "id", "") == "const"):
            out[target.id[1:]] = ast.literal_eval(value.args[0])
    return out


def public(name):
    for module in (messages, frame):
        if name in vars(module):
            return vars(module)[name]
    raise AssertionError("no public protocol number " + name)


@pytest.mark.parametrize("path", FILES)
def test_private_copies_equal_the_protocol_numbers(path):
    copies = {n: v for n, v in private_consts(path).items()
              if n.startswith(PREFIXES) or n in EXACT}
    assert len(copies) >= 10, copies  # the parser found the copies
    wrong = {n: (v, public(n)) for n, v in copies.items() if public(n) != v}
    assert not wrong, wrong


def test_reading_unpacker_copies_equal_the_protocol_numbers():
    copies = private_consts("protocol/twproto/readingbody.py")
    numbers = {n: v for n, v in copies.items() if n.startswith(PREFIXES) or n in EXACT}
    assert len(numbers) == 8, copies  # REJECT, F_* x3, TAG_* x2, R_FIXED_* x2
    wrong = {n: (v, public(n)) for n, v in numbers.items() if public(n) != v}
    assert not wrong, wrong


def test_every_op_has_arguments_and_a_name():
    assert sorted(bodies.CMD_ARGS) == sorted(messages.OP_NAMES) == list(range(1, 18))


def test_host_names_still_reachable_through_bodies():
    # host code and older scripts may write bodies.EV_BOOT: forwarded to twproto.messages
    assert bodies.EV_BOOT == messages.EV_BOOT == 13
    assert bodies.chain_link is messages.chain_link
    assert bodies.Reading is not messages.Reading and issubclass(messages.Reading, bodies.Reading)
    with pytest.raises(AttributeError):
        bodies.NO_SUCH_NAME  # noqa: B018


def test_station_half_has_no_public_numbers():
    # the reason for the split: no public constant dict entries in the resident module
    upper = [n for n, v in vars(bodies).items()
             if n.isupper() and not n.startswith("_") and isinstance(v, int)]
    assert upper == [], upper
