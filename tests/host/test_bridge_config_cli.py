"""Config validation, `tagweigh init`, `tagweigh status`, `tagweigh keys`, and the metrics
endpoint on loopback."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from bridge_fakestation import RS, FakeStation, StationEnd

from tagweigh import config as C
from tagweigh.bridge import Bridge
from tagweigh.cli import main
from tagweigh.errors import ConfigError
from tagweigh.keys import KeyRegistry
from tagweigh.link import MemoryLink


def test_defaults_work_and_paths_sit_next_to_the_config(tmp_path):
    cfg_path = tmp_path / "site" / "tagweigh.toml"
    cfg_path.parent.mkdir()
    cfg_path.write_text('[queue]\npath = "data/q.sqlite3"\n')
    cfg = C.load(cfg_path)
    assert cfg.queue_path == cfg_path.parent.resolve() / "data" / "q.sqlite3"
    assert cfg.keys_path == cfg_path.parent.resolve() / "tagweigh-keys.json"
    assert cfg.ports == () and cfg.window == 32 and cfg.metrics_listen.startswith("127.0.0.1:")
    assert cfg.ruleset_path is None and cfg.section("upload") == {}


@pytest.mark.parametrize("text, message", [
    ("[bridge]\nportz = []\n", "unknown key(s) in [bridge]: portz"),
    ("[bridge]\nports = \"/dev/ttyUSB0\"\n", "bridge.ports must be list"),
    ("[bridge]\nwindow = 0\n", "bridge.window must be 1..255"),
    ("[bridge]\nbaudrate = true\n", "bridge.baudrate must be int"),
    ("[bridge]\nmetrics_listen = \"9477\"\n", "HOST:PORT"),
    ("[bridge.discovery]\nenabled = true\n", "needs vid"),
    ("[bridge.discovery]\nenabled = true\nvid = \"xyz\"\n", "must be hex"),
    ("[log]\nlevel = \"loud\"\n", "log.level"),
    ("ports = []\n", "outside any [section]"),
    ("[bridge\n", "not valid TOML"),
])
def test_bad_values_are_refused_with_the_key_named(tmp_path, text, message):
    p = tmp_path / "tagweigh.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as exc:
        C.load(p)
    assert message in str(exc.value)


def test_sections_of_other_parts_are_kept_for_them(tmp_path):
    p = tmp_path / "tagweigh.toml"
    p.write_text('[upload]\nurl = "https://example.org/api"\n[web]\nlisten = "127.0.0.1:8080"\n')
    cfg = C.load(p)
    assert cfg.section("upload") == {"url": "https://example.org/api"}
    assert cfg.section("web")["listen"] == "127.0.0.1:8080"


def test_explicit_missing_config_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as exc:
        C.load(tmp_path / "nope.toml")
    assert "tagweigh init" in exc.value.hint


def test_init_writes_a_config_that_loads_and_refuses_to_overwrite(tmp_path, capsys):
    p = tmp_path / "tagweigh.toml"
    assert main(["init", str(p)]) == 0
    cfg = C.load(p)
    assert cfg.queue_path.parent == tmp_path and cfg.discovery.enabled is False
    assert main(["init", str(p)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["init", str(p), "--force"]) == 0


def test_keys_command_never_lists_keys(tmp_path, capsys):
    p = tmp_path / "tagweigh.toml"
    main(["init", str(p)])
    capsys.readouterr()
    assert main(["keys", "--config", str(p), "add", "17", "--site", "CD-SK-012"]) == 0
    key_hex = capsys.readouterr().out.strip()
    assert len(bytes.fromhex(key_hex)) == 32
    assert main(["keys", "--config", str(p), "list"]) == 0
    listing = capsys.readouterr().out
    assert "17" in listing and "CD-SK-012" in listing and key_hex not in listing


def test_status_and_metrics_of_a_running_bridge(tmp_path, capsys):
    p = tmp_path / "tagweigh.toml"
    p.write_text('[bridge]\nmetrics_listen = "127.0.0.1:0"\nstatus_interval_s = 0.1\n')
    cfg = C.load(p)
    keys = KeyRegistry(cfg.keys_path)
    key = keys.add(17, provisioned_at=1767225600)
    bridge = Bridge(cfg, keys=keys, ruleset=RS).start()
    try:
        bl, sl = MemoryLink.pair("s")
        bridge.attach(bl)
        end = StationEnd(sl, FakeStation(17, key))
        end.welcome()
        end.send(end.st.reading())
        end.send(end.st.reading(net_g=999_999))
        end.collect(lambda fr: len(end.acked()) == 2)
        host, port = bridge.metrics_address
        text = urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5).read().decode()
        assert 'tagweigh_readings_stored_total{verdict="reject"} 1' in text
        assert "# TYPE tagweigh_bad_mac_total counter" in text
        snap = json.loads(urllib.request.urlopen(f"http://{host}:{port}/status", timeout=5).read())
        assert snap["sessions"][0]["device_id"] == "17" and snap["storage_ok"] is True
        end.collect(lambda fr: Path(f"{cfg.queue_path}.status.json").exists())
        capsys.readouterr()
        assert main(["status", "--config", str(p), "--json"]) == 0
        st = json.loads(capsys.readouterr().out)
        assert st["bridge_running"] is True
        assert (st["readings_total"], st["rejected_today"], st["depth"]) == (2, 1, 2)
        assert st["stations"][0]["device_id"] == "17" and st["last_reading"]["seq"] == 2
        assert main(["status", "--config", str(p)]) == 0
        out = capsys.readouterr().out
        assert "1 rejected" in out and "bridge: running" in out
    finally:
        bridge.stop()
    assert main(["status", "--config", str(p), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bridge_running"] is False


def test_a_second_bridge_on_the_same_queue_is_refused(tmp_path):
    cfg = C.from_dict({"bridge": {"metrics_listen": ""}}, None, tmp_path)
    first = Bridge(cfg, ruleset=RS)
    try:
        with pytest.raises(Exception) as exc:
            Bridge(cfg, ruleset=RS)
        assert "another bridge" in str(exc.value)
    finally:
        first.start().stop()
