"""Crash: kill -9 the server at every step of a garbage collection.

The server ships to a remote (a directory) and collects with a step stop
(`BILLET_GC_PAUSE_AT`, which makes a collection stop for good at that
step and say so with a file): after the mark, halfway through copying,
once the copies are durable, once shipped segments are retired in the
index (before the old segments are removed), and after they are removed.
Clients keep writing while the collection is stopped. After each kill and
restart: every acknowledged write reads back and nothing deleted comes
back, fsck is clean, and after a full collection no block is held by two
segments (nothing copied twice) and every segment the node still notes
as shipped is whole on the remote (nothing deleted from it too early).
Seeded (`BILLET_CRASH_GC_SEED`), 20 cycles by default
(`BILLET_CRASH_GC_CYCLES`)."""

import hashlib
import json
import os
import random
import struct
import subprocess
import time
from collections import Counter
from pathlib import Path

from conftest import BILLET, Server

STEPS = ["marked", "copying", "copies-durable", "retired", "dropped"]
CYCLES = int(os.environ.get("BILLET_CRASH_GC_CYCLES", "20"))
SEED = int(os.environ.get("BILLET_CRASH_GC_SEED", "11"))


def billet(*args, config, data_dir, check=True, timeout=300):
    cmd = [BILLET, *args, "--config", str(config), "--data-dir", str(data_dir)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def sidecar_cids(path):
    """The CIDs a sidecar lists (docs/log.md)."""
    b = path.read_bytes()
    assert b[:8] == b"BLTSIDE1", path
    (count,) = struct.unpack_from("<Q", b, 32)
    at, out = 40, []
    for _ in range(count):
        n = b[at]
        out.append(b[at + 1 : at + 1 + n])
        at += 1 + n + 12
    return out


def status(config, data, srv):
    r = billet("status", "--json", "--listen", f"127.0.0.1:{srv.port}", config=config, data_dir=data)
    return json.loads(r.stdout)


def wait(what, cond, timeout=120, detail=lambda: ""):
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise AssertionError(f"{what}: {detail()}")
        time.sleep(0.2)


def shipped(st):
    return all(p["backlog"]["segments"] == 0 and p["sealed"]["segments"] == 0 for p in st["planes"])


class Workload:
    """Puts and deletes of a pool of keys; some bodies repeat, so writes
    deduplicate against blocks a collection may have found dead."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.model = {}

    def body(self):
        if self.rng.random() < 0.3:
            return random.Random(self.rng.randrange(4)).randbytes(150_000)
        return self.rng.randbytes(self.rng.choice([10, 4096, 90_000, 400_000]))

    def run(self, s3, n):
        for _ in range(n):
            key = f"k{self.rng.randrange(40)}"
            if self.rng.random() < 0.8:
                data = self.body()
                s3.put_object(Bucket="crash", Key=key, Body=data)
                self.model[key] = hashlib.sha256(data).hexdigest()
            else:
                s3.delete_object(Bucket="crash", Key=key)
                self.model.pop(key, None)


def check(s3, model):
    for key, digest in model.items():
        got = s3.get_object(Bucket="crash", Key=key)["Body"].read()
        assert hashlib.sha256(got).hexdigest() == digest, key
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket="crash").get("Contents", [])}
    assert listed == set(model), (sorted(listed ^ set(model)))


def test_kill_9_at_every_step_of_a_collection(tmp_path):
    data = tmp_path / "data"
    remote = tmp_path / "remote"
    remote.mkdir()
    config = tmp_path / "billet.toml"
    config.write_text(
        "[log]\n"
        "data_seal_bytes = 1048576\n"
        "data_seal_after_ms = 100\n"
        "catalog_seal_bytes = 65536\n"
        "catalog_seal_after_ms = 100\n"
        "[gc]\ninterval_secs = 0\nkeep_secs = 0\nthreshold = 0.9\nbatch_bytes = 524288\n"
        f'[remote]\nstore = "filesystem"\npath = "{remote}"\nnode = "crash-gc"\n'
    )
    work = Workload(SEED)
    reached = Counter()
    srv = Server(data, extra_args=["--config", str(config)]).start()
    srv.client().create_bucket(Bucket="crash")
    srv.stop()
    for cycle in range(CYCLES):
        step = STEPS[cycle % len(STEPS)]
        marker = data / f"gc-paused-{step}"
        srv = Server(data, extra_args=["--config", str(config)], env={"BILLET_GC_PAUSE_AT": step}).start()
        s3 = srv.client(read_timeout=30)
        work.run(s3, 40)
        wait("shipping", lambda: shipped(status(config, data, srv)), detail=srv.log_text)
        gc = subprocess.Popen(
            [BILLET, "gc", "--config", str(config), "--data-dir", str(data)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        wait("the collection to stop or finish", lambda: marker.exists() or gc.poll() is not None,
             detail=srv.log_text)
        if marker.exists():
            reached[step] += 1
            # The server still serves while the collection is stopped.
            work.run(s3, 10)
        srv.kill()
        gc.kill()
        gc.wait()
        marker.unlink(missing_ok=True)

        # What the crash left: every acknowledged write, fsck clean.
        srv = Server(data, extra_args=["--config", str(config)]).start()
        s3 = srv.client(read_timeout=30)
        check(s3, work.model)
        r = billet("fsck", "crash", config=config, data_dir=data, check=False)
        assert r.returncode == 0 and " 0 problems" in r.stdout, f"cycle {cycle} ({step}): {r.stdout}{r.stderr}"

        # A full collection: nothing copied twice, nothing taken from the
        # remote that a noted segment still needs.
        billet("gc", config=config, data_dir=data)
        check(s3, work.model)
        holders = {}
        for plane in ("data", "catalog"):
            for idx in (data / "log" / plane).glob("*.idx"):
                for cid in set(sidecar_cids(idx)):
                    holders.setdefault(cid, []).append(f"{plane}/{idx.name}")
        twice = {c.hex(): where for c, where in holders.items() if len(where) > 1}
        assert not twice, f"cycle {cycle} ({step}): blocks in two segments: {twice}"
        for plane in ("data", "catalog"):
            for note in (data / "log" / plane).glob("*.remote"):
                seg = note.name.split(".")[0]
                objects = list((remote / "billet" / "v1" / "crash-gc" / plane).glob(f"{seg}.car*"))
                assert objects, f"cycle {cycle} ({step}): {plane} segment {seg} is noted but gone from the remote"
        assert not list(data.glob("log/*/*.retired")), "a retired marker outlived its segment"
        srv.stop()
    print(f"steps reached: {dict(reached)}")
    for step in STEPS:
        assert reached[step] >= CYCLES // len(STEPS) - 1, f"step {step} reached {reached[step]} times: {reached}"
