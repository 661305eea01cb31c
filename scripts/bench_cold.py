"""The cold tier's figures, each beside the same work done directly on the
Garage server billet ships to, in the same run (run by scripts/bench-cold):

1. Cold reads. 4 KiB and 64 MiB objects are written to billet and, by the
   same client, to a bucket of their own on Garage. Once every billet
   segment has shipped and been evicted, billet restarts (warm cache
   empty) and each object is read once, in random order, by the same
   client (`read_bench`, over object_store) from billet and from Garage:
   4 KiB at concurrency 1 (p50/p99) with the warm cache at its 1 MiB
   floor, so that nearly every GET fetches from the remote (the count is
   printed), and again with the default cache (later reads may find their
   frame fetched by an earlier one); 64 MiB at concurrency 1 (MiB/s) with
   the default cache and read-ahead.
2. Shipping. A backlog of BACKLOG_MIB of data segments is written with no
   remote configured; billet restarts with Garage as its remote, and the
   time until the backlog is zero gives MiB/s. The same segment files are
   then uploaded with `aws s3 cp --recursive` to Garage.
3. PUT 4 KiB at concurrency 64 (s3bench) on a node without a remote, on
   one shipping to Garage and on one shipping to a local directory
   (segments seal every second, so shipping runs throughout), alternated
   three times; then the catalog plane's compression ratio of the node
   shipping to Garage (local segment bytes over their remote objects').
"""

import json
import os
import random
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from conftest import ACCESS_KEY, BILLET, SECRET_KEY, Garage, Server  # noqa: E402

OUT = Path(sys.argv[1])
READ_BENCH = os.environ["READ_BENCH"]
S3BENCH = os.environ["S3BENCH"]
SMALL = int(os.environ.get("SMALL", "2000"))
BACKLOG_MIB = int(os.environ.get("BACKLOG_MIB", "2048"))
DUR = os.environ.get("DUR", "10s")
BIG = 64 << 20
KEEP = os.environ.get("KEEP") == "1"  # leave Garage and the data for a closer look
results = {}


def say(*a):
    print(*a, flush=True)


def config(path, remote=None, cache_bytes=None, seal_ms=1000, keep_local=None, prefix="bench"):
    text = f"[log]\ndata_seal_after_ms = {seal_ms}\ncatalog_seal_after_ms = {seal_ms}\n"
    if remote == "filesystem":
        text += f'[remote]\nstore = "filesystem"\npath = "{OUT / "fs-remote"}"\nnode = "bench"\n'
    elif remote:
        text += remote.toml(prefix) + 'node = "bench"\n'
        if cache_bytes is not None:
            text += f"cache_bytes = {cache_bytes}\n"
        if keep_local is not None:
            text += f"[remote.data]\nkeep_local_secs = {keep_local}\n[remote.catalog]\nkeep_local_secs = {keep_local}\n"
    path.write_text(text)
    return path


def serve(data_dir, cfg):
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    return Server(data_dir, extra_args=["--config", str(cfg)]).start()


def status(server, cfg):
    r = subprocess.run(
        [BILLET, "status", "--json", "--config", str(cfg), "--data-dir", str(server.data_dir), "--listen", f"127.0.0.1:{server.port}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(r.stdout)


def wait_shipped(server, cfg, evicted, timeout=1800):
    deadline = time.time() + timeout
    while True:
        st = status(server, cfg)
        if all(
            p["backlog"]["segments"] == 0 and p["sealed"]["segments"] == 0 and (not evicted or p["shipped"]["segments"] == 0)
            for p in st["planes"]
        ) and all(b["shipped_seq"] == b["head_seq"] for b in st["buckets"]):
            return st
        if time.time() > deadline:
            raise SystemExit(f"shipping did not finish: {json.dumps(st, indent=1)}")
        time.sleep(0.2)


def metric(server, name):
    with urllib.request.urlopen(server.endpoint + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def read_bench(mode, endpoint, bucket, keys, size, conc, access, secret, region):
    kf = OUT / f"keys-{random.random()}"
    kf.write_text("\n".join(keys) + "\n")
    env = dict(os.environ, AWS_ACCESS_KEY_ID=access, AWS_SECRET_ACCESS_KEY=secret, AWS_REGION=region)
    r = subprocess.run(
        [READ_BENCH, mode, endpoint, bucket, str(kf), str(size), str(conc)], capture_output=True, text=True, env=env, timeout=1800
    )
    kf.unlink()
    if r.returncode != 0:
        raise SystemExit(f"read_bench {mode} {endpoint}: {r.stderr}")
    return json.loads(r.stdout)


def on_billet(mode, server, keys, size, conc):
    return read_bench(mode, server.endpoint, "cold", keys, size, conc, ACCESS_KEY, SECRET_KEY, "us-east-1")


def on_garage(mode, remote, keys, size, conc):
    return read_bench(mode, remote.endpoint, "direct", keys, size, conc, remote.access_key, remote.secret_key, remote.region)


def cold_reads(garage, remote):
    say("== 1. cold reads")
    data = OUT / "cold" / "data"
    small = [f"small/{i:05}" for i in range(SMALL)]
    big = [f"big/{i}" for i in range(8)]
    cfg = config(OUT / "cold.toml", remote, keep_local=0, prefix="reads")
    s = serve(data, cfg)
    s.client().create_bucket(Bucket="cold")
    on_billet("put", s, small, 4096, 16)
    on_billet("put", s, big, BIG, 1)
    on_garage("put", remote, small, 4096, 16)
    on_garage("put", remote, big, BIG, 1)
    st = wait_shipped(s, cfg, evicted=True)
    say("   shipped and evicted:", {p["plane"]: p["evicted"] for p in st["planes"]})
    s.stop()

    def fresh(cache_bytes=None):
        c = config(OUT / "cold-read.toml", remote, cache_bytes=cache_bytes, keep_local=0, prefix="reads")
        srv = serve(data, c)
        st = status(srv, c)
        local = [p for p in st["planes"] if p["sealed"]["segments"] or p["shipped"]["segments"]]
        assert not local, f"segments still local after restart: {local}"
        return srv

    # The warm cache at its floor (1 MiB) misses on nearly every read.
    for label, cache in [("4KiB warm cache 1 MiB", 0), ("4KiB default warm cache", None)]:
        order = small[:]
        random.shuffle(order)
        srv = fresh(cache)
        f0 = metric(srv, "billet_cold_remote_fetches_total")
        b = on_billet("get", srv, order, 4096, 1)
        b["remote_fetches"] = metric(srv, "billet_cold_remote_fetches_total") - f0
        srv.stop()
        g = on_garage("get", remote, order, 4096, 1)
        results[f"GET {label}"] = {"billet": b, "garage": g, "p50_ratio": b["p50_ms"] / g["p50_ms"], "p99_ratio": b["p99_ms"] / g["p99_ms"]}
        say(f"   GET {label}: billet p50 {b['p50_ms']:.2f} ms p99 {b['p99_ms']:.2f} ms ({b['remote_fetches']:.0f} remote fetches for {b['ops']} GETs); "
            f"garage p50 {g['p50_ms']:.2f} ms p99 {g['p99_ms']:.2f} ms; p50 ratio {b['p50_ms'] / g['p50_ms']:.2f}x")
    order = big[:]
    random.shuffle(order)
    srv = fresh()
    b = on_billet("get", srv, order, BIG, 1)
    srv.stop()
    g = on_garage("get", remote, order, BIG, 1)
    results["GET 64MiB"] = {"billet": b, "garage": g, "ratio": b["mib_s"] / g["mib_s"]}
    say(f"   GET 64 MiB: billet {b['mib_s']:.0f} MiB/s, garage {g['mib_s']:.0f} MiB/s, ratio {b['mib_s'] / g['mib_s']:.2f}x")


def shipping(garage, remote):
    say(f"== 2. shipping a {BACKLOG_MIB} MiB backlog")
    data = OUT / "backlog" / "data"
    plain = config(OUT / "backlog-plain.toml")
    s = serve(data, plain)
    s.client().create_bucket(Bucket="cold")
    on_billet("put", s, [f"backlog/{i}" for i in range(BACKLOG_MIB // 64)], BIG, 4)
    time.sleep(2.5)  # the open segment seals by age
    s.stop()
    segs = sorted((data / "log").rglob("*.car"))
    raw = sum(p.stat().st_size for p in segs)
    cfg = config(OUT / "backlog.toml", remote, prefix="backlog")
    t0 = time.time()
    s = serve(data, cfg)
    st = wait_shipped(s, cfg, evicted=False)
    secs = time.time() - t0
    s.stop()
    shipped = sum(p["shipped"]["bytes"] for p in st["planes"])
    stage = OUT / "backlog-copy"
    stage.mkdir()
    for p in segs:
        os.link(p, stage / f"{p.parent.name}-{p.name}")
    env = dict(
        os.environ,
        AWS_ACCESS_KEY_ID=remote.access_key,
        AWS_SECRET_ACCESS_KEY=remote.secret_key,
        AWS_DEFAULT_REGION=remote.region,
    )
    aws = str(Path(sys.executable).parent / "aws")
    t1 = time.time()
    subprocess.run(
        [aws, "--endpoint-url", remote.endpoint, "s3", "cp", "--recursive", "--only-show-errors", str(stage), "s3://direct/aws-cp/"],
        check=True,
        env=env,
        timeout=3600,
    )
    cp_secs = time.time() - t1
    shutil.rmtree(stage)
    mib = raw / (1 << 20)
    results["shipping"] = {
        "segment_bytes": raw,
        "shipped_bytes": shipped,
        "billet_secs": secs,
        "billet_mib_s": mib / secs,
        "aws_cp_secs": cp_secs,
        "aws_cp_mib_s": mib / cp_secs,
        "ratio": (mib / secs) / (mib / cp_secs),
    }
    say(f"   {mib:.0f} MiB in {len(segs)} segments: billet shipped in {secs:.1f} s ({mib / secs:.0f} MiB/s, including start-up); "
        f"aws s3 cp {cp_secs:.1f} s ({mib / cp_secs:.0f} MiB/s); ratio {(mib / secs) / (mib / cp_secs):.2f}x")


def s3bench(name, server, out):
    subprocess.run(
        [S3BENCH, "--target", f"{name},{server.endpoint},{ACCESS_KEY},{SECRET_KEY},{server.proc.pid}", "--create-bucket",
         "--op", "put", "--size", "4KiB", "--concurrency", "64", "--duration", DUR, "--json-out", str(out)],
        check=True,
        timeout=600,
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return rows[-1]


def puts(garage, remote):
    # Shipping to Garage puts Garage's work on the same two cores as billet
    # and the load generator; shipping to a directory measures billet's own
    # cost of shipping (compressing, hashing, uploading, recording).
    say("== 3. PUT 4 KiB c=64, shipping off, to Garage, to a directory")
    cfgs = {
        "off": config(OUT / "put-off.toml"),
        "garage": config(OUT / "put-garage.toml", remote, prefix="puts"),
        "directory": config(OUT / "put-directory.toml", "filesystem"),
    }
    runs = {m: [] for m in cfgs}
    on_server = None
    for round_ in range(3):
        for mode, cfg in cfgs.items():
            s = serve(OUT / f"put-{mode}" / "data", cfg)
            row = s3bench(f"billet-shipping-{mode}", s, OUT / f"put-{mode}-{round_}.jsonl")
            runs[mode].append(row)
            if mode != "off":
                wait_shipped(s, cfg, evicted=False)
            if mode == "garage":
                on_server = s
            s.stop()
            time.sleep(2)
    ops = {m: sum(r["ops_s"] for r in rs) / len(rs) for m, rs in runs.items()}
    cpu = {m: sum(r["server_cpu_us_per_op"] or 0 for r in rs) / len(rs) for m, rs in runs.items()}
    results["put"] = {
        "runs": runs,
        "ops_per_sec": ops,
        "server_cpu_us_per_op": cpu,
        "ratio_garage": ops["garage"] / ops["off"],
        "ratio_directory": ops["directory"] / ops["off"],
    }
    say(f"   ops/s (mean of 3) off {ops['off']:.0f}, shipping to Garage {ops['garage']:.0f} ({ops['garage'] / ops['off']:.3f}x), "
        f"to a directory {ops['directory']:.0f} ({ops['directory'] / ops['off']:.3f}x); billet CPU per op "
        f"{cpu['off']:.0f} / {cpu['garage']:.0f} / {cpu['directory']:.0f} us")

    # The catalog plane of the shipping node: local bytes over remote bytes.
    local = {p.name: p.stat().st_size for p in (on_server.data_dir / "log" / "catalog").glob("*.car")}
    client = remote.client()
    stored = 0
    raw = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=remote.bucket, Prefix="puts/billet/v1/bench/catalog/"):
        for o in page.get("Contents", []):
            name = o["Key"].rsplit("/", 1)[1]
            base = name.removesuffix(".zst")
            if base.endswith(".car") and base in local:
                stored += o["Size"]
                raw += local[base]
    results["catalog_compression"] = {"raw_bytes": raw, "stored_bytes": stored, "ratio": raw / stored if stored else None}
    say(f"   catalog plane: {raw} bytes in segments, {stored} on the remote: {raw / max(stored, 1):.2f}x")


def main():
    (OUT / "garage").mkdir(parents=True, exist_ok=True)
    with_garage = Garage(OUT / "garage")
    remote = with_garage.setup("billet-cold")
    with_garage.cli("bucket", "create", "direct")
    with_garage.cli("bucket", "allow", "--read", "--write", "--owner", "direct", "--key", "billet")
    with_garage.wait_ready("direct")
    try:
        phases = os.environ.get("PHASES", "reads,shipping,puts").split(",")
        for name, phase in [("reads", cold_reads), ("shipping", shipping), ("puts", puts)]:
            if name in phases:
                phase(with_garage, remote)
    finally:
        if KEEP:
            say(f"Garage left running: {with_garage.config}")
        else:
            with_garage.stop()
        (OUT / "results.json").write_text(json.dumps(results, indent=1))
        say(f"results in {OUT / 'results.json'}")


main()
