"""Crash during shipping: kill -9 the server while clients PUT and sealed
segments ship to Garage, ten times over. After every kill, `billet fsck` is
clean (the bucket verifies through the remote where segments were
evicted), and every segment the index records as shipped is on the remote
whole: its object has the recorded size and digest, and its sidecar is
there. In the end every acknowledged PUT reads back."""

import hashlib
import random
import sqlite3
import threading
import time
import uuid

from conftest import Server
from test_cold_tier import billet, write_config, wait_shipped

CYCLES = 10
CLIENTS = 4


def writer(s3, tid, cycle, seed, acked, stop):
    rng = random.Random(seed)
    n = 0
    while not stop.is_set():
        key = f"c{cycle:02}/t{tid}/{n:04}"
        body = rng.randbytes(rng.choice([100, 4096, 65536, 300_000]))
        n += 1
        try:
            r = s3.put_object(Bucket="crash", Key=key, Body=body)
        except Exception:
            return
        acked[key] = hashlib.sha256(body).hexdigest()


def shipped_rows(data_dir):
    db = sqlite3.connect(f"file:{data_dir}/index/registry.db?mode=ro", uri=True)
    try:
        return db.execute(
            "SELECT plane, id, state, stored_bytes, remote_key, sidecar_key, sha256 FROM segments"
        ).fetchall()
    finally:
        db.close()


def check_remote_holds(garage, prefix, rows, checked):
    """Every recorded segment's object has the recorded size and its
    sidecar is there; those not seen before are also downloaded and
    hashed. Keys in the index are relative to the configured prefix."""
    rc = garage.client()
    for plane, seg, state, stored, key, sidecar, sha in rows:
        if (plane, seg, sha) in checked:
            size = rc.head_object(Bucket=garage.bucket, Key=prefix + key)["ContentLength"]
            assert size == stored, f"{plane} {seg}: {size} bytes on the remote, {stored} recorded"
        else:
            body = rc.get_object(Bucket=garage.bucket, Key=prefix + key)["Body"].read()
            assert len(body) == stored, f"{plane} {seg}: {len(body)} bytes on the remote, {stored} recorded"
            if sha is not None:
                assert hashlib.sha256(body).digest() == sha, f"{plane} {seg}: the remote copy differs"
            checked.add((plane, seg, sha))
        rc.head_object(Bucket=garage.bucket, Key=prefix + sidecar)


def test_kill_9_while_shipping_claims_nothing_the_remote_lacks(garage, tmp_path):
    rng = random.Random(7)
    prefix = f"crash-{uuid.uuid4().hex[:8]}/"
    config = write_config(tmp_path / "billet.toml", garage, prefix, keep_local=1)
    text = config.read_text().replace("data_seal_bytes = 4194304", "data_seal_bytes = 1048576")
    config.write_text(text)
    srv = Server(tmp_path / "data", extra_args=["--config", str(config)]).start()
    srv.client().create_bucket(Bucket="crash")
    acked = {}
    checked = set()
    shipped_seen = 0
    try:
        for cycle in range(CYCLES):
            stop = threading.Event()
            got = {}
            threads = [
                threading.Thread(target=writer, args=(srv.client(read_timeout=20), t, cycle, rng.random(), got, stop))
                for t in range(CLIENTS)
            ]
            for t in threads:
                t.start()
            deadline = time.time() + 30
            while len(got) < 10 and time.time() < deadline:
                time.sleep(0.01)
            # Long enough for segments to seal and start shipping.
            time.sleep(rng.uniform(0.5, 2.0))
            srv.kill()
            stop.set()
            for t in threads:
                t.join(timeout=60)
                assert not t.is_alive()
            assert got, f"cycle {cycle}: nothing acknowledged before the kill"
            acked.update(got)

            fsck = billet("fsck", "crash", config=config, data_dir=srv.data_dir, check=False)
            assert fsck.returncode == 0 and " 0 problems" in fsck.stdout, fsck.stdout + fsck.stderr
            rows = shipped_rows(srv.data_dir)
            check_remote_holds(garage, prefix, rows, checked)
            shipped_seen = max(shipped_seen, len(rows))
            srv.start()
        wait_shipped(srv, config, evicted=False)
        s3 = srv.client()
        for key, digest in acked.items():
            body = s3.get_object(Bucket="crash", Key=key)["Body"].read()
            assert hashlib.sha256(body).hexdigest() == digest, key
    finally:
        if srv.proc and srv.proc.poll() is None:
            assert srv.stop() == 0, srv.log_text()
    assert shipped_seen > 0, "no segment ever shipped between the kills"
    print(f"{len(acked)} acknowledged PUTs, {shipped_seen} shipped segments, {CYCLES} kill -9 cycles")
