"""twstation.session (the link session's rare paths, a cold module): its private copies of the
protocol's and the station's numbers, and its place in twstation.COLD."""
import ast
import pathlib

from twproto import frame, mac, messages
from twstation import COLD
from twstation import station as S

ROOT = pathlib.Path(__file__).resolve().parents[2]


def private_consts(path):
    """{name: value} of the module-level `_X = const(<literal>)` of a source file."""
    out = {}
    for node in ast.parse((ROOT / path).read_text()).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "id", "") == "const"):
            out[node.targets[0].id] = ast.literal_eval(node.value.args[0])
    return out


OWN = ("BACKOFF_MS", "BACKOFF_MAX_MS", "EVENT_QUEUE")


def test_session_copies_equal_the_protocol_and_station_numbers():
    c = private_consts("firmware/twstation/session.py")
    station = private_consts("firmware/twstation/station.py")
    checked = 0
    for name, v in c.items():
        n = name[1:]
        if n in vars(messages):
            assert vars(messages)[n] == v, name
        elif n in vars(frame):
            assert vars(frame)[n] == v, name
        elif n == "NONCE_LEN":
            assert mac.NONCE_LEN == v
        elif n in OWN:
            continue  # the session's own numbers, checked below
        else:
            assert station[name] == v, name  # a copy of one of station.py's numbers
        checked += 1
    assert checked >= 20
    assert {"_" + n: c["_" + n] for n in OWN} == {
        "_BACKOFF_MS": 5000, "_BACKOFF_MAX_MS": 60000,  # SPEC 10
        "_EVENT_QUEUE": 8}
    assert station["_EVENT_GAP_MS"] == 5000  # checked by Station.event, before the import
    assert (c["_AT_HELLO"], c["_AT_RESEND"]) == (S._AT_HELLO, S._AT_RESEND)


def test_session_is_cold():
    assert "twstation.session" in COLD


def test_link_copies_equal_the_protocol_numbers():
    from twstation import link

    assert (link._MAX_FRAME, link._T_COMMAND) == (frame.MAX_FRAME, frame.T_COMMAND)
    assert link._NACK_BAD_MAC == messages.NACK_BAD_MAC
