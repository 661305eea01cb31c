"""Crash: kill -9 the server while 16 clients PUT, again and again.

After each restart every PUT that was answered 200 must read back with its
ETag, and `billet fsck` must find the bucket's MST at its head equal to its
index rows with every body verified."""

import hashlib
import os
import random
import re
import threading
import time

from conftest import Server, run_billet

CYCLES = 10
CLIENTS = 16
SEED = int(os.environ.get("BILLET_CRASH_SEED", "5"))


def body_for(rng):
    # Mostly small objects, some spanning several 1 MiB chunks.
    size = rng.choice([0, 1, 100, 4096, 65536, 300_000, 1_500_000])
    return rng.randbytes(size)


def writer(endpoint_client, tid, cycle, seed, acked, stop):
    rng = random.Random(seed)
    s3 = endpoint_client
    n = 0
    while not stop.is_set():
        key = f"c{cycle:02}/t{tid:02}/{n:05}"
        body = body_for(rng)
        n += 1
        try:
            r = s3.put_object(Bucket="crash", Key=key, Body=body)
        except Exception:
            # The server died under us: nothing was promised for this PUT.
            return
        if r["ResponseMetadata"]["HTTPStatusCode"] == 200:
            etag = r["ETag"].strip('"')
            assert etag == hashlib.md5(body).hexdigest()
            acked[key] = etag


def test_kill_9_during_concurrent_puts(tmp_path):
    rng = random.Random(SEED)
    srv = Server(tmp_path / "data").start()
    srv.client().create_bucket(Bucket="crash")
    acked = {}
    try:
        for cycle in range(CYCLES):
            stop = threading.Event()
            cycle_acked = {}
            clients = [srv.client(read_timeout=20) for _ in range(CLIENTS)]
            threads = [
                threading.Thread(target=writer, args=(clients[t], t, cycle, rng.random(), cycle_acked, stop))
                for t in range(CLIENTS)
            ]
            for t in threads:
                t.start()
            # Let the clients get going, then kill at a seeded moment.
            deadline = time.time() + 30
            while len(cycle_acked) < 20 and time.time() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 1.0))
            srv.kill()
            stop.set()
            for t in threads:
                t.join(timeout=60)
                assert not t.is_alive()
            assert cycle_acked, f"cycle {cycle}: no PUT was acknowledged before the kill"
            acked.update(cycle_acked)

            # Offline check of the bucket as the crash left it.
            fsck = run_billet("fsck", "crash", data_dir=srv.data_dir, check=False)
            assert fsck.returncode == 0, fsck.stdout + fsck.stderr
            assert " 0 problems" in fsck.stdout, fsck.stdout

            srv.start()
            s3 = srv.client()
            # This cycle's acknowledged PUTs read back whole; earlier ones are still there.
            for key, etag in cycle_acked.items():
                got = s3.get_object(Bucket="crash", Key=key)
                assert got["ETag"].strip('"') == etag, key
                assert hashlib.md5(got["Body"].read()).hexdigest() == etag, key
            for key, etag in acked.items():
                if key not in cycle_acked:
                    assert s3.head_object(Bucket="crash", Key=key)["ETag"].strip('"') == etag, key
        # Writes work after the last restart.
        s3 = srv.client()
        s3.put_object(Bucket="crash", Key="after", Body=b"still writable")
        assert s3.get_object(Bucket="crash", Key="after")["Body"].read() == b"still writable"
    finally:
        if srv.proc and srv.proc.poll() is None:
            assert srv.stop() == 0, srv.log_text()
    fsck = run_billet("fsck", "crash", data_dir=srv.data_dir, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert " 0 problems" in fsck.stdout, fsck.stdout
    keys = int(re.search(r"(\d+) keys", fsck.stdout).group(1))
    # Unacknowledged PUTs may have landed too; acknowledged ones must have.
    assert keys >= len(acked) + 1, fsck.stdout
    print(f"{len(acked)} acknowledged PUTs survived {CYCLES} kill -9 cycles")
