"""`tagweigh export` (CSV/JSONL/EPCIS, totals, chain of custody), the [upload] config section and
`tagweigh upload --once` / `tagweigh receiver` as real processes."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest
from uploadkit import REPO_ROOT, free_port

from tagweigh.cli import main
from tagweigh.config import from_dict
from tagweigh.errors import ConfigError
from tagweigh.export import CUSTODY_FIELDS, TOTALS_FIELDS, export_text, parse_since
from tagweigh.ingest import Ingestor, Item
from tagweigh.queue import Queue
from tagweigh.upload.records import RECORD_FIELDS
from tagweigh.upload.settings import build_uploader, upload_settings
from tagweigh.upload.testbed import T0, StationSim


def custody_depot(depot):
    """Two bags weighed at tagging (site mine-A), depot receiving and dispatch (site depot-1)."""
    keys, q = depot.keys, depot.queue
    stations = [StationSim("11", keys.add("11"), step=1, site="mine-A"),
                StationSim("21", keys.add("21"), step=2, site="depot-1"),
                StationSim("31", keys.add("31"), step=3, site="depot-1")]
    with q.transaction() as db:
        for s in stations:
            Queue.record_hello(db, s.device_id, now=T0, boot=1, uptime_ms=1, port=None, hello={}, site=s.site, step=s.step)
    ing = Ingestor(q)
    t = T0
    for s, weights in zip(stations, ((25_000, 30_010), (24_950, 29_990), (24_900, 29_980))):
        for bag, w in zip(("ITSCI-0001", "ITSCI-0002"), weights):
            t += 3600
            raw, r = s.reading(tag=bag.encode(), net_g=w, t=t)
            ing.process([Item(None, s.device_id, raw, r, t + 1, None)])
    raw, r = stations[1].reading(tag=b"ITSCI-0001", net_g=24_000, t=t + 60, verdict=2, reason=7)  # a rejected re-weigh
    ing.process([Item(None, "21", raw, r, t + 61, None)])
    depot.keys.export_keys(depot.export)


def test_csv_readings_have_stable_columns_and_utf8(depot, tmp_path):
    custody_depot(depot)
    sim = StationSim("41", depot.keys.add("41"), step=2, site="dépôt-Nord")
    with depot.queue.transaction() as db:
        Queue.record_hello(db, "41", now=T0, boot=1, uptime_ms=1, port=None, hello={}, site=sim.site, step=2)
    raw, r = sim.reading(tag="SAC-ÉTÉ-7".encode(), t=T0 + 7 * 3600)
    Ingestor(depot.queue).process([Item(None, "41", raw, r, T0 + 7 * 3600, None)])
    out = tmp_path / "readings.csv"
    assert main(["export", "--queue", str(depot.queue.path), "-o", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_bytes().decode("utf-8"))))
    assert tuple(rows[0]) == RECORD_FIELDS and len(rows) == 8
    assert rows[0]["tag_text"] == "ITSCI-0001" and rows[0]["stable"] == "true" and rows[0]["findings"] == "[]"
    assert rows[-1]["tag_text"] == "SAC-ÉTÉ-7" and rows[-1]["site"] == "dépôt-Nord"
    assert rows[0]["boot"] == "" and rows[0]["chain_ok"] == "true"
    only = list(csv.DictReader(io.StringIO(export_text(depot.queue, "csv", site="mine-A"))))
    assert len(only) == 2
    late = export_text(depot.queue, "jsonl", since=T0 + 5 * 3600)
    assert [(json.loads(x)["device_id"], json.loads(x)["seq"]) for x in late.splitlines()] == [
        ("31", 1), ("31", 2), ("21", 3), ("41", 1)]


def test_totals_and_custody(depot):
    custody_depot(depot)
    tot = [json.loads(x) for x in export_text(depot.queue, "jsonl", "totals").splitlines()]
    assert tuple(tot[0]) == TOTALS_FIELDS
    rec = {(t["tag_key"], t["step"]): t for t in tot}
    assert rec[("ITSCI-0001", 2)]["readings"] == 2 and rec[("ITSCI-0001", 2)]["rejected"] == 1
    assert rec[("ITSCI-0001", 2)]["net_g_total"] == 24_950  # the rejected re-weigh does not count
    assert rec[("ITSCI-0002", 1)]["net_g_total"] == 30_010 and rec[("ITSCI-0002", 1)]["sites"] == "mine-A"
    chain = [json.loads(x) for x in export_text(depot.queue, "jsonl", "custody", tag="ITSCI-0001").splitlines()]
    assert tuple(chain[0]) == CUSTODY_FIELDS
    assert [(c["step_name"], c["net_g"], c["change_g"], c["verdict"]) for c in chain] == [
        ("mine_tagging", 25_000, None, "accept"), ("depot_receiving", 24_950, -50, "accept"),
        ("depot_receiving", 24_000, None, "reject"), ("depot_dispatch", 24_900, -50, "accept")]


def test_epcis_export_via_cli(depot, tmp_path, capsys):
    custody_depot(depot)
    out = tmp_path / "audit.jsonld"
    assert main(["export", "--queue", str(depot.queue.path), "--format", "epcis", "--site", "depot-1",
                 "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    steps = [e["bizStep"] for e in doc["epcisBody"]["eventList"]]
    assert steps == ["receiving", "receiving", "shipping", "shipping", "receiving"]
    assert main(["export", "--queue", str(depot.queue.path), "--format", "epcis", "--view", "totals"]) == 2
    assert "epcis exports readings" in capsys.readouterr().err


def test_parse_since():
    assert parse_since("2024-05-01") == 1714521600.0
    assert parse_since("2024-05-01T02:00:00+02:00") == 1714521600.0
    assert parse_since("1714521600") == 1714521600.0
    with pytest.raises(ConfigError):
        parse_since("last tuesday")


def test_upload_section_is_validated_when_read(tmp_path):
    base = {"queue": {"path": str(tmp_path / "q.sqlite3")}}
    assert build_uploader(from_dict(base, base_dir=tmp_path)) is None  # nothing configured: no uploader
    for bad, words in (({"sinks": ["ftp"]}, "sinks"), ({"sinks": ["http"]}, "url is required"),
                       ({"batch_size": 0}, "batch_size"), ({"http": {"url": "https://x", "tiemout_s": 3}}, "tiemout_s"),
                       ({"http": {"url": "https://x", "verify_tls": "no"}}, "verify_tls")):
        with pytest.raises(ConfigError, match=words):
            upload_settings(bad, tmp_path)
    (tmp_path / "tok").write_text("abc\n")
    s = upload_settings({"sinks": ["http", "mqtt"], "batch_size": 50, "http": {"url": "https://b/v1/batches",
                         "token_file": "tok"}, "mqtt": {"host": "broker"}}, tmp_path)
    assert s["http"]["token_file"] == str(tmp_path / "tok") and s["sinks"] == ["http", "mqtt"]
    up = build_uploader(from_dict(dict(base, upload={"sinks": ["http"], "batch_size": 50,
                                                     "http": {"url": "https://b/v1/batches", "token_file": "tok"}}),
                                  base_dir=tmp_path))
    try:
        assert up.states["http"].batch_size == 50
        assert up.sinks[0]._client.headers["authorization"] == "Bearer abc"
    finally:
        up.close()
        up.queue.close()


def test_cli_receiver_and_upload_once_as_processes(depot, tmp_path):
    depot.fill(devices=2, per_device=30)
    (tmp_path / "token").write_text("integrator-token\n")
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "host"), str(REPO_ROOT / "protocol")]))
    cli = [sys.executable, "-m", "tagweigh"]
    recv = subprocess.Popen(cli + ["receiver", "--keys", str(depot.export), "--db", str(tmp_path / "r.sqlite3"),
                                   "--listen", f"127.0.0.1:{port}", "--token-file", str(tmp_path / "token")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    try:
        assert "tagweigh receiver:" in recv.stdout.readline()
        conf = tmp_path / "tagweigh.toml"
        conf.write_text(f'[queue]\npath = "{depot.queue.path}"\n[upload]\nsinks = ["http"]\nbatch_size = 25\n'
                        f'[upload.http]\nurl = "http://127.0.0.1:{port}/v1/batches"\ntoken_file = "token"\n')
        done = subprocess.run(cli + ["upload", "--once", "--config", str(conf)], env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "http: 60 uploaded, 0 rejected by the backend, 0 left" in done.stdout
        (tmp_path / "token").write_text("stale\n")  # the backend's token changed: a clear failure
        depot.fill(devices=1, per_device=1, first_device=3001)
        bad = subprocess.run(cli + ["upload", "--once", "--config", str(conf)], env=env, capture_output=True,
                             text=True, timeout=60)
        assert bad.returncode == 4 and "credentials refused" in bad.stdout and "1 left" in bad.stdout
    finally:
        recv.terminate()
        recv.wait(10)
