"""Key registry: 0600 at rest, refuses wider modes, never shows a key except by explicit export."""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest

from tagweigh.keys import KeyFileError, KeyRegistry, key_id


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_created_owner_only_and_keys_round_trip(tmp_path):
    path = tmp_path / "keys.json"
    reg = KeyRegistry(path)
    assert _mode(path) == 0o600
    key = reg.add(17, site="CD-SK-012")
    assert len(key) == 32 and _mode(path) == 0o600
    assert reg.get(17) == reg.get("17") == key
    assert reg.get(18) is None and 17 in reg and len(reg) == 1
    assert KeyRegistry(path).get("17") == key  # persisted


def test_group_or_other_readable_file_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "keys.json"
    KeyRegistry(path).add(1)
    os.chmod(path, 0o640)
    with pytest.raises(KeyFileError) as exc:
        KeyRegistry(path)
    assert "readable by group or others" in str(exc.value)
    assert exc.value.hint == f"chmod 600 {path}"


def test_keys_never_in_repr_info_or_public_export(tmp_path, caplog):
    reg = KeyRegistry(tmp_path / "keys.json")
    key = reg.add(17)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("tagweigh.test").info("registry %r info %s", reg, reg.info(17))
    text = repr(reg) + json.dumps(reg.export_public_info()) + json.dumps(reg.info(17)) + caplog.text
    assert key.hex() not in text and key.hex().upper() not in text
    assert reg.info(17)["key_id"] == key_id(key)


def test_explicit_export_for_a_receiver(tmp_path):
    reg = KeyRegistry(tmp_path / "keys.json")
    k1, k2 = reg.add(1), reg.add(2)
    out = tmp_path / "receiver" / "keys.json"
    assert reg.export_keys(out, devices=["2"]) == 1
    assert _mode(out) == 0o600
    other = KeyRegistry(out)
    assert other.get(2) == k2 and other.get(1) is None and k1 != k2


def test_rotate_keeps_a_fingerprint_history_and_add_refuses_overwrite(tmp_path):
    reg = KeyRegistry(tmp_path / "keys.json")
    old = reg.add(5)
    with pytest.raises(KeyFileError) as exc:
        reg.add(5)
    assert "rotate" in exc.value.hint
    new = reg.rotate(5)
    assert new != old and reg.get(5) == new
    assert [r["key_id"] for r in reg.info(5)["retired"]] == [key_id(old)]
    reg.remove(5)
    assert reg.get(5) is None
    with pytest.raises(KeyFileError):
        reg.rotate(5)


def test_changes_by_another_process_are_seen(tmp_path):
    path = tmp_path / "keys.json"
    running = KeyRegistry(path)
    assert running.get(9) is None
    key = KeyRegistry(path).add(9)  # e.g. `tagweigh keys add 9` while the bridge runs
    assert running.get(9) == key


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"format": "other", "version": 1, "devices": {}}', "not a tagweigh key registry"),
    ('{"format": "tagweigh-keys", "version": 1, "devices": {"1": {"key": "abcd"}}}', "32 bytes"),
    ('{"format": "tagweigh-keys", "version": 1, "devices": {"1": {"key": "zz"}}}', "must be hex"),
])
def test_malformed_files_are_refused_clearly(tmp_path, content, message):
    path = tmp_path / "keys.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content.encode())
    os.close(fd)
    with pytest.raises(KeyFileError) as exc:
        KeyRegistry(path)
    assert message in str(exc.value)


def test_bad_key_lengths_and_ids(tmp_path):
    reg = KeyRegistry(tmp_path / "keys.json")
    with pytest.raises(KeyFileError):
        reg.add(1, b"short")
    with pytest.raises(KeyFileError):
        reg.add("")
    with pytest.raises(KeyFileError):
        reg.add(2**32)
