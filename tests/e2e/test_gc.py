"""Garbage collection against the real binary: `billet gc` reclaims what
overwrites, deletes and abandoned uploads left while every object stays
readable; collections run under load from real clients and lose nothing;
exports stay closed DAGs (checked with the reference JavaScript IPLD
stack) and import under the same head; with a remote, retired segments
leave the remote only once their copies have shipped, and a node rebuilt
from it reads everything back."""

import hashlib
import json
import os
import random
import shutil
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import BILLET, ROOT, Server

SMALL_SEGMENTS = (
    "[log]\n"
    "data_seal_bytes = 1048576\n"
    "data_seal_after_ms = 200\n"
    "catalog_seal_bytes = 65536\n"
    "catalog_seal_after_ms = 200\n"
)


def write_config(path, gc="", extra=""):
    path.write_text(SMALL_SEGMENTS + "[gc]\n" + gc + extra)
    return path


def billet(*args, config, data_dir, check=True, timeout=600):
    cmd = [BILLET, *args, "--config", str(config), "--data-dir", str(data_dir)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def gc(config, data_dir, *args):
    return json.loads(billet("gc", "--json", *args, config=config, data_dir=data_dir).stdout)


def log_bytes(data_dir):
    total = 0
    for plane in ("data", "catalog"):
        for f in (Path(data_dir) / "log" / plane).glob("*.car"):
            total += f.stat().st_size
    return total


def body(tag, size):
    return random.Random(tag).randbytes(size)


def metrics(server):
    with urllib.request.urlopen(server.endpoint + "/metrics", timeout=10) as r:
        return r.read().decode()


def fsck_clean(config, data_dir, bucket):
    r = billet("fsck", bucket, config=config, data_dir=data_dir, check=False)
    assert r.returncode == 0 and " 0 problems" in r.stdout, r.stdout + r.stderr


def test_gc_reclaims_what_overwrites_deletes_and_aborts_left(tmp_path):
    config = write_config(tmp_path / "billet.toml", "interval_secs = 0\nkeep_secs = 0\n")
    data = tmp_path / "data"
    server = Server(data, extra_args=["--config", str(config)]).start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="plain")
        s3.create_bucket(Bucket="versioned")
        s3.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
        expect = {}
        versions = {}
        for round_ in range(4):
            for i in range(30):
                data_ = body(f"{round_}-{i}", 100_000 + i)
                s3.put_object(Bucket="plain", Key=f"k{i}", Body=data_)
                expect[f"k{i}"] = data_
            v = s3.put_object(Bucket="versioned", Key="doc", Body=body(f"v{round_}", 50_000))
            versions[v["VersionId"]] = body(f"v{round_}", 50_000)
        for i in range(0, 30, 3):
            s3.delete_object(Bucket="plain", Key=f"k{i}")
            del expect[f"k{i}"]
        up = s3.create_multipart_upload(Bucket="plain", Key="abandoned")
        s3.upload_part(Bucket="plain", Key="abandoned", UploadId=up["UploadId"], PartNumber=1,
                       Body=body("part", 6 << 20))
        s3.abort_multipart_upload(Bucket="plain", Key="abandoned", UploadId=up["UploadId"])
        time.sleep(0.5)  # let the last segments seal by age
        before = log_bytes(data)

        report = gc(config, data)
        assert not report["dry_run"]
        assert report["data"]["rewritten_segments"] > 0, report
        assert report["data"]["reclaimed_bytes"] > 10 << 20, report
        after = log_bytes(data)
        assert after < before * 0.6, (before, after, report)
        for key, want in expect.items():
            assert s3.get_object(Bucket="plain", Key=key)["Body"].read() == want, key
        for vid, want in versions.items():
            got = s3.get_object(Bucket="versioned", Key="doc", VersionId=vid)["Body"].read()
            assert got == want, vid
        for b in ("plain", "versioned"):
            fsck_clean(config, data, b)
            v = billet("verify", b, config=config, data_dir=data)
            assert " 0 problems" in v.stdout, v.stdout

        # Nothing left to reclaim; one bucket's line on its own.
        dry = gc(config, data, "--dry-run", "plain")
        assert dry["dry_run"]
        assert dry["data"]["reclaimable_bytes"] == 0 and dry["catalog"]["reclaimable_bytes"] == 0, dry
        assert [b["bucket"] for b in dry["buckets"]] == ["plain"]
        r = billet("gc", "nope", config=config, data_dir=data, check=False)
        assert r.returncode != 0 and "does not exist" in r.stderr, r.stderr

        # What it did shows in /metrics and in `billet status`.
        text = metrics(server)
        assert 'billet_gc_live_bytes{plane="data"}' in text
        assert 'billet_gc_last_rewritten_segments{plane="data"}' in text
        st = billet("status", config=config, data_dir=data, check=True).stdout
        assert "garbage collection: last" in st, st
    finally:
        assert server.stop() == 0, server.log_text()
    # Offline (no server): the command runs the collection itself.
    report = gc(config, data)
    assert report["data"]["live_bytes"] > 0


def varint(b, at):
    n = shift = 0
    while True:
        x = b[at]
        at += 1
        n |= (x & 0x7F) << shift
        shift += 7
        if x < 0x80:
            return n, at


def without_last_block(car):
    """A CARv1 file less its last frame."""
    n, at = varint(car, 0)
    at += n
    last = at
    while at < len(car):
        last = at
        n, at = varint(car, at)
        at += n
    return car[:last]


def test_retention_keeps_a_window_of_history_and_exports_stay_closed(tmp_path):
    config = write_config(tmp_path / "billet.toml", "interval_secs = 0\nkeep_secs = 0\n")
    data = tmp_path / "data"
    server = Server(data, extra_args=["--config", str(config)]).start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="hist")
        s3.put_bucket_versioning(Bucket="hist", VersioningConfiguration={"Status": "Enabled"})
        out = billet("retention", "hist", "--keep-commits", "5", config=config, data_dir=data).stdout
        assert "keeps 0 s or 5 commits" in out, out
        for i in range(12):
            s3.put_object(Bucket="hist", Key=f"k{i % 4}", Body=body(f"h{i}", 20_000))
            s3.delete_object(Bucket="hist", Key="gone") if i % 5 == 0 else None
        s3.put_object(Bucket="hist", Key="tmp", Body=b"x")
        vs = s3.list_object_versions(Bucket="hist", Prefix="tmp")["Versions"]
        s3.delete_object(Bucket="hist", Key="tmp", VersionId=vs[0]["VersionId"])
        report = gc(config, data)
        hist = next(b for b in report["buckets"] if b["bucket"] == "hist")
        assert hist["keep_commits"] == 5
        assert hist["floor"] == hist["head_seq"] - 4, hist
    finally:
        assert server.stop() == 0, server.log_text()

    node = shutil.which("node")
    assert node, "node is needed for the interop check"
    for history, commits in ((False, 1), (True, 5)):
        car = tmp_path / f"hist-{history}.car"
        args = ["export", "hist", "-o", str(car)] + (["--history"] if history else [])
        r = billet(*args, config=config, data_dir=data)
        assert f" {commits} commits," in r.stderr, r.stderr
        js = subprocess.run([node, str(ROOT / "tests/interop/check-car.mjs"), str(car), "--closed"],
                            capture_output=True, text=True, timeout=300)
        assert js.returncode == 0, js.stdout + js.stderr
        assert "; 0 problems" in js.stdout and "closed: " in js.stdout, js.stdout
        assert "closed: 0 links" not in js.stdout, js.stdout
        # The check is not vacuous: the same file less its last block
        # (linked from an earlier one) is refused.
        cut = tmp_path / f"cut-{history}.car"
        cut.write_bytes(without_last_block(car.read_bytes()))
        bad = subprocess.run([node, str(ROOT / "tests/interop/check-car.mjs"), str(cut), "--closed"],
                             capture_output=True, text=True, timeout=300)
        assert bad.returncode == 1 and "which the CAR does not hold" in bad.stderr, bad.stdout + bad.stderr
        # A fresh node imports it under the same head.
        other = tmp_path / f"import-{history}"
        billet("import", str(car), config=config, data_dir=other)
        head = billet("verify", "hist", config=config, data_dir=other).stdout
        orig = billet("verify", "hist", config=config, data_dir=data).stdout
        assert head.split(" head ")[1].split()[0] == orig.split(" head ")[1].split()[0], (head, orig)
        assert " 0 problems" in head


def test_collections_under_load_lose_no_acknowledged_write(tmp_path):
    """Four clients PUT, GET and DELETE for 60 s (each its own keys, so
    the last acknowledged answer is known) while the server collects
    every second; no request fails, and everything reads back after."""
    config = write_config(tmp_path / "billet.toml", "interval_secs = 1\nkeep_secs = 0\nthreshold = 0.9\n")
    data = tmp_path / "data"
    server = Server(data, extra_args=["--config", str(config)]).start()
    duration = float(os.environ.get("BILLET_GC_LOAD_SECS", "60"))
    errors = []
    models = []
    counts = []
    try:
        s3 = server.client(max_pool_connections=8)
        s3.create_bucket(Bucket="load")
        shared = body("shared", 70_000)

        def worker(n):
            c = server.client()
            rng = random.Random(n)
            model = {}
            ops = 0
            end = time.time() + duration
            try:
                while time.time() < end:
                    key = f"w{n}/k{rng.randrange(20)}"
                    op = rng.random()
                    if op < 0.5:
                        # Some bodies repeat: writes deduplicate against
                        # blocks a collection may have found dead.
                        data_ = shared if rng.random() < 0.3 else rng.randbytes(rng.randrange(1, 300_000))
                        c.put_object(Bucket="load", Key=key, Body=data_)
                        model[key] = hashlib.sha256(data_).hexdigest()
                    elif op < 0.8:
                        if key in model:
                            got = c.get_object(Bucket="load", Key=key)["Body"].read()
                            assert hashlib.sha256(got).hexdigest() == model[key], key
                    else:
                        c.delete_object(Bucket="load", Key=key)
                        model.pop(key, None)
                    ops += 1
            except Exception as e:  # noqa: BLE001 - any failure fails the test
                errors.append(f"worker {n}: {e!r}")
            models.append(model)
            counts.append(ops)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        first = json.loads((data / "gc-last.json").read_text())["started_ms"] if (data / "gc-last.json").exists() else 0
        for t in threads:
            t.start()
        for t in threads:
            t.join(duration + 120)
        assert not errors, errors
        last = json.loads((data / "gc-last.json").read_text())
        assert last["started_ms"] > first
        assert "billet_gc_last_rewritten_segments" in metrics(server)
        time.sleep(2.5)  # one more collection after the load
        for model in models:
            for key, digest in model.items():
                got = s3.get_object(Bucket="load", Key=key)["Body"].read()
                assert hashlib.sha256(got).hexdigest() == digest, key
        listed = {o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket="load") for o in p.get("Contents", [])}
        assert listed == {k for m in models for k in m}
        fsck_clean(config, data, "load")
        assert sum(counts) > 200, counts
    finally:
        assert server.stop() == 0, server.log_text()
    runs = server.log_text().count("garbage collection failed")
    assert runs == 0, server.log_text()


def test_with_a_remote_retired_segments_go_once_their_copies_ship(garage, tmp_path):
    prefix = f"gc-{uuid.uuid4().hex[:8]}/"
    config = write_config(
        tmp_path / "billet.toml",
        "interval_secs = 0\nkeep_secs = 0\n",
        garage.toml(prefix) + 'node = "gc-node"\n',
    )
    data = tmp_path / "data"
    server = Server(data, extra_args=["--config", str(config)]).start()
    remote = garage.client()

    def remote_keys():
        out = set()
        for p in remote.get_paginator("list_objects_v2").paginate(Bucket=garage.bucket, Prefix=prefix):
            out.update(o["Key"] for o in p.get("Contents", []))
        return out

    def status():
        return json.loads(billet("status", "--json", config=config, data_dir=data).stdout)

    def settle(what, done, timeout=180):
        deadline = time.time() + timeout
        while True:
            st = status()
            if done(st):
                return st
            if time.time() > deadline:
                raise AssertionError(f"{what}: {json.dumps(st, indent=1)}\n{server.log_text()}")
            time.sleep(0.3)

    def shipped(st):
        return all(p["backlog"]["segments"] == 0 and p["sealed"]["segments"] == 0 for p in st["planes"]) and all(
            b["shipped_seq"] == b["head_seq"] for b in st["buckets"]
        )

    try:
        s3 = server.client()
        s3.create_bucket(Bucket="remote-gc")
        expect = {}
        for round_ in range(3):
            for i in range(12):
                d = body(f"r{round_}-{i}", 200_000)
                s3.put_object(Bucket="remote-gc", Key=f"k{i}", Body=d)
                expect[f"k{i}"] = d
        settle("shipping", shipped)
        before = remote_keys()
        report = gc(config, data)
        assert report["data"]["rewritten_segments"] > 0, report
        # The copies ship, heads.cbor is written again, then the retired
        # segments' objects are deleted through the queue.
        settle("retired segments deleted", lambda st: shipped(st) and st["pending_deletes"] == 0)
        deadline = time.time() + 60
        while True:
            after = remote_keys()
            gone = {k for k in before - after if "/data/" in k}
            if len(gone) >= 2 * report["data"]["rewritten_segments"]:
                break
            assert time.time() < deadline, (len(gone), sorted(before - after), report["data"], status())
            time.sleep(0.5)
        for key, want in expect.items():
            assert s3.get_object(Bucket="remote-gc", Key=key)["Body"].read() == want
    finally:
        server.kill()
    # The node is lost; rebuilt from the remote, everything reads back.
    shutil.rmtree(data)
    out = billet("recover", config=config, data_dir=data)
    assert "recovered 1 bucket(s)" in out.stdout, out.stdout + out.stderr
    server = Server(data, extra_args=["--config", str(config)]).start()
    try:
        s3 = server.client()
        for key, want in expect.items():
            assert s3.get_object(Bucket="remote-gc", Key=key)["Body"].read() == want, key
        fsck_clean(config, data, "remote-gc")
    finally:
        assert server.stop() == 0, server.log_text()
