"""Garbage collection and block-location figures (run by scripts/bench-gc):

1. Churn. A 1 GiB working set (1,024 objects of 1 MiB, s3bench PUT c=8)
   is overwritten 10 times on a node that collects every 5 s (history
   kept: the head only) and on one that never collects. Printed: disk used
   at the end (log segments and index) over the live bytes (1 GiB), for
   both; and the collections' throughput: bytes of segments rewritten
   (copied out of or removed) over the time the collections took, summed
   over every collection of the run.
2. PUT 4 KiB c=64 while a collection runs. A node is filled with
   HALF_MIB of 1 MiB objects and every other one is deleted, so every
   data segment is half live; s3bench PUT 4 KiB c=64 runs for DUR with no
   collection, then again while `billet gc` copies the live half; three
   rounds, alternated. Printed: the mean ratio (during / without), and how
   much of each measurement the collection overlapped.
3. Ten million blocks. The node as it was before location runs
   (BASELINE_BIN, built from the commit before them) and this build are
   filled side by side with FILL 4 KiB PUTs at c=64 (about 6.6 blocks
   each); printed: each one's blocks and RSS after the fill and after a
   restart, then GET 4 KiB c=1 p50/p99 over 100,000 objects on both,
   interleaved, and the ratio.

Phases: PHASES=churn,puts,blocks (default all).
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from conftest import ACCESS_KEY, BILLET, SECRET_KEY, Server  # noqa: E402

OUT = Path(sys.argv[1])
S3BENCH = os.environ["S3BENCH"]
BASELINE_BIN = os.environ.get("BASELINE_BIN")
DUR = os.environ.get("DUR", "10s")
HALF_MIB = int(os.environ.get("HALF_MIB", "4096"))
FILL = int(os.environ.get("FILL", "1500000"))
PHASES = os.environ.get("PHASES", "churn,puts,blocks").split(",")
MIB = 1 << 20


def say(*a):
    print(*a, flush=True)


def config(path, gc_interval, keep_secs=0, copy_mib=None):
    text = f"[gc]\ninterval_secs = {gc_interval}\nkeep_secs = {keep_secs}\n"
    if copy_mib is not None:
        text += f"copy_mib_per_sec = {copy_mib}\n"
    path.write_text(text)
    return path


def serve(name, cfg, binary=BILLET):
    data = OUT / name / "data"
    data.parent.mkdir(parents=True, exist_ok=True)
    s = Server(data, extra_args=["--config", str(cfg)])
    if binary != BILLET:
        import conftest

        old = conftest.BILLET
        conftest.BILLET = binary
        try:
            s.start(timeout=600)
        finally:
            conftest.BILLET = old
    else:
        s.start(timeout=600)
    s.binary = binary
    return s


def s3bench(targets, *args, out):
    spec = []
    for name, s in targets:
        spec += ["--target", f"{name},{s.endpoint},{ACCESS_KEY},{SECRET_KEY},{s.proc.pid}"]
    subprocess.run([S3BENCH, *spec, *args, "--json-out", str(out)], check=True, timeout=7200,
                   stdout=subprocess.DEVNULL)
    return [json.loads(line) for line in out.read_text().splitlines()]


def du(path):
    total = 0
    for p in Path(path).rglob("*"):
        if p.is_file() and not p.name.endswith(".sock"):
            total += p.stat().st_size
    return total


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def metric(server, name):
    with urllib.request.urlopen(server.endpoint + "/metrics", timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


def gc_now(server, cfg):
    r = subprocess.run([BILLET, "gc", "--json", "--config", str(cfg), "--data-dir", str(server.data_dir)],
                       capture_output=True, text=True, timeout=7200, check=True)
    return json.loads(r.stdout)


def churn():
    say("== 1. churn: a 1 GiB working set overwritten 10 times")
    results = {}
    for mode, interval in (("collecting", 5), ("not-collecting", 0)):
        cfg = config(OUT / f"churn-{mode}.toml", interval)
        s = serve(f"churn-{mode}", cfg)
        reports = {}
        stop = threading.Event()

        def watch():
            last = s.data_dir / "gc-last.json"
            while not stop.is_set():
                try:
                    r = json.loads(last.read_text())
                    reports[r["started_ms"]] = r
                except (OSError, ValueError):
                    pass
                time.sleep(0.2)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            for n in range(10):
                rows = s3bench([(f"churn-{mode}", s)], "--op", "put", "--size", "1MiB", "--ops", "1024",
                               "--concurrency", "8", "--prefix", "churn/", "--create-bucket",
                               out=OUT / f"churn-{mode}-{n}.jsonl")
                say(f"  {mode} pass {n + 1}: {rows[-1]['mib_s']:.0f} MiB/s, {du(s.data_dir) / MIB:.0f} MiB on disk")
            if interval:
                # The collector's next round finds the last pass's garbage.
                time.sleep(interval + 1)
                while json.loads((s.data_dir / "gc-last.json").read_text())["started_ms"] < time.time() * 1000 - interval * 1000 - 2000:
                    time.sleep(0.5)
                time.sleep(1)
        finally:
            stop.set()
            watcher.join()
        used = du(s.data_dir)
        s.stop()
        live = 1024 * MIB
        rewritten = sum(r["data"]["copied_bytes"] + r["data"]["reclaimed_bytes"]
                        + r["catalog"]["copied_bytes"] + r["catalog"]["reclaimed_bytes"] for r in reports.values())
        copied = sum(r["data"]["copied_bytes"] + r["catalog"]["copied_bytes"] for r in reports.values())
        secs = sum(r["duration_ms"] for r in reports.values()) / 1000
        results[mode] = {"disk_bytes": used, "ratio": used / live, "collections": len(reports),
                         "rewritten_bytes": rewritten, "copied_bytes": copied, "collect_secs": secs}
        say(f"  {mode}: {used / MIB:.0f} MiB on disk for {live / MIB:.0f} MiB live = {used / live:.2f}x")
        if reports:
            say(f"  {len(reports)} collections took {secs:.1f} s to rewrite {rewritten / MIB:.0f} MiB of segments "
                f"({copied / MIB:.0f} MiB copied): {rewritten / MIB / max(secs, 1e-3):.0f} MiB/s")
    return results


def puts():
    say("== 2. PUT 4 KiB c=64 with no collection, and while one copies half of every data segment")
    out = {}
    for pace, copy_mib in (("default pace (64 MiB/s)", None), ("unthrottled", 0)):
        say(f"  -- {pace}")
        out[pace] = puts_at(config(OUT / f"puts-{copy_mib}.toml", 0, copy_mib=copy_mib))
    return out


def puts_at(cfg):
    ratios = []
    copy_rates = []
    for round_ in range(3):
        name = f"puts-{round_}"
        s = serve(name, cfg)
        try:
            s3bench([(name, s)], "--op", "put", "--size", "1MiB", "--ops", str(HALF_MIB), "--concurrency", "8",
                    "--prefix", "half/", "--create-bucket", out=OUT / f"{name}-fill.jsonl")
            c = s.client()
            keys = [f"half/s{MIB}/{i:010}" for i in range(0, HALF_MIB, 2)]
            for i in range(0, len(keys), 1000):
                c.delete_objects(Bucket="s3bench", Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})
            time.sleep(6)  # the open segments seal by age
            base = s3bench([(name, s)], "--op", "put", "--size", "4KiB", "--concurrency", "64", "--duration", DUR,
                           "--prefix", "small-a/", out=OUT / f"{name}-base.jsonl")[-1]
            started = time.time()
            gc = subprocess.Popen([BILLET, "gc", "--json", "--config", str(cfg), "--data-dir", str(s.data_dir)],
                                  stdout=subprocess.PIPE, text=True)
            during = s3bench([(name, s)], "--op", "put", "--size", "4KiB", "--concurrency", "64", "--duration", DUR,
                             "--prefix", "small-b/", out=OUT / f"{name}-gc.jsonl")[-1]
            measured = time.time() - started
            report = json.loads(gc.communicate(timeout=3600)[0])
            overlap = min(1.0, report["duration_ms"] / 1000 / max(measured, 1e-3))
            ratio = during["ops_s"] / base["ops_s"]
            ratios.append(ratio)
            copy_rates.append(report["data"]["copied_bytes"] / MIB / (report["duration_ms"] / 1000))
            say(f"  round {round_ + 1}: {base['ops_s']:.0f} ops/s without, {during['ops_s']:.0f} during "
                f"= {ratio:.2f}x; the collection copied {report['data']['copied_bytes'] / MIB:.0f} MiB in "
                f"{report['duration_ms'] / 1000:.1f} s ({overlap:.0%} of the measurement)")
        finally:
            s.stop()
            shutil.rmtree(OUT / name, ignore_errors=True)
    mean = sum(ratios) / len(ratios)
    rate = sum(copy_rates) / len(copy_rates)
    say(f"  mean ratio {mean:.2f}x; the collections copied {rate:.0f} MiB/s")
    return {"ratios": ratios, "mean": mean, "copy_mib_s": rate}


def blocks():
    say(f"== 3. {FILL} PUTs of 4 KiB (about {FILL * 6.6 / 1e6:.0f} M blocks): today's build and this one")
    if not BASELINE_BIN:
        say("  BASELINE_BIN is not set: skipped")
        return None
    # The build before knows no [gc]; this one never collects here.
    before = OUT / "blocks-before.toml"
    before.write_text("")
    cfg = config(OUT / "blocks.toml", 0, keep_secs=604800)
    nodes = [("before", serve("blocks-before", before, BASELINE_BIN)), ("runs", serve("blocks-runs", cfg))]
    out = {}
    try:
        s3bench(nodes, "--op", "put", "--size", "4KiB", "--ops", str(FILL), "--concurrency", "64",
                "--prefix", "fill/", "--create-bucket", "--duration", "1800s", out=OUT / "blocks-fill.jsonl")
        time.sleep(10)
        for name, s in nodes:
            out[name] = {"blocks": metric(s, "billet_log_blocks"), "rss_mib_filled": rss_mib(s.proc.pid)}
        for i, (name, s) in enumerate(nodes):
            s.stop(timeout=120)
            started = time.time()
            s.start(timeout=1800) if s.binary == BILLET else restart_with(s, BASELINE_BIN)
            out[name]["restart_secs"] = time.time() - started
            time.sleep(5)
            out[name]["rss_mib_restarted"] = rss_mib(s.proc.pid)
        rows = s3bench(nodes, "--op", "get", "--size", "4KiB", "--concurrency", "1", "--objects", "100000",
                       "--duration", "20s", "--prefix", "get/", out=OUT / "blocks-get.jsonl")
        for r in rows:
            out[r["target"]]["get_p50_ms"] = r["p50_ms"]
            out[r["target"]]["get_p99_ms"] = r["p99_ms"]
            out[r["target"]]["rss_mib_after_gets"] = rss_mib(dict(nodes)[r["target"]].proc.pid)
        for name, v in out.items():
            say(f"  {name}: {v['blocks']:.0f} blocks, RSS {v['rss_mib_filled']:.0f} MiB filled, "
                f"{v['rss_mib_restarted']:.0f} MiB after a restart ({v['restart_secs']:.1f} s), "
                f"{v['rss_mib_after_gets']:.0f} MiB after GETs; GET 4 KiB c=1 p50 {v['get_p50_ms']:.3f} ms, "
                f"p99 {v['get_p99_ms']:.3f} ms")
        say(f"  GET p50 ratio (runs / before): {out['runs']['get_p50_ms'] / out['before']['get_p50_ms']:.2f}x")
    finally:
        for _, s in nodes:
            if s.proc.poll() is None:
                s.stop(timeout=120)
    return out


def restart_with(s, binary):
    import conftest

    old = conftest.BILLET
    conftest.BILLET = binary
    try:
        s.start(timeout=1800)
    finally:
        conftest.BILLET = old


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    results = {}
    if "churn" in PHASES:
        results["churn"] = churn()
    if "puts" in PHASES:
        results["puts"] = puts()
    if "blocks" in PHASES:
        results["blocks"] = blocks()
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    say(f"results in {OUT / 'results.json'}")


if __name__ == "__main__":
    main()
