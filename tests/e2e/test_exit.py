"""Credible exit: a bucket exported as one CAR (while the server runs),
checked by the JavaScript reference implementations, imported into a fresh
data directory under the same head, and served identically; and fsck
catching tampered index rows."""

import hashlib
import json
import random
import re
import shutil
import sqlite3
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import ROOT, Server, run_billet

MIB = 1 << 20
OBJECTS = 2000


def head_of(verify_stdout):
    m = re.search(r"head (\S+) \(seq (\d+)\)", verify_stdout)
    assert m, verify_stdout
    return m.group(1), int(m.group(2))


def fill(s3, rng):
    """2,000 keys: empty to 20 MiB, multipart ones, metadata, tags, null
    versions from before versioning, several versions, delete markers."""
    s3.create_bucket(Bucket="roundtrip")
    specs = []
    for i in range(OBJECTS):
        size = rng.choice([0, 1, 100, 4096, 65536, rng.randrange(1, 300_000)])
        if i % 500 == 7:
            size = 20 * MIB
        kw = {}
        if i % 3 == 0:
            kw["Metadata"] = {"n": str(i), "kind": "meta"}
        if i % 5 == 0:
            kw["Tagging"] = f"idx={i}&team=exit"
        if i % 7 == 0:
            kw["ContentType"] = "application/x-billet"
            kw["CacheControl"] = "max-age=7"
        specs.append((f"d{i % 13}/obj-{i:05}", size, rng.getrandbits(64), kw))

    def put(spec):
        key, size, seed, kw = spec
        s3.put_object(Bucket="roundtrip", Key=key, Body=random.Random(seed).randbytes(size), **kw)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, specs[:200]))
    s3.put_bucket_versioning(Bucket="roundtrip", VersioningConfiguration={"Status": "Enabled"})
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, specs[200:]))
    # Multipart objects, one of them a new version of an existing key.
    for n, key in enumerate(["mp/one", "mp/two", specs[10][0]]):
        uid = s3.create_multipart_upload(Bucket="roundtrip", Key=key, Metadata={"mp": "yes"}, Tagging="mp=1")["UploadId"]
        parts = [random.Random(n * 10 + p).randbytes(sz) for p, sz in enumerate([5 * MIB, 5 * MIB, 123_457])]
        etags = [
            s3.upload_part(Bucket="roundtrip", Key=key, UploadId=uid, PartNumber=p + 1, Body=d)["ETag"]
            for p, d in enumerate(parts)
        ]
        s3.complete_multipart_upload(
            Bucket="roundtrip", Key=key, UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": p + 1, "ETag": e} for p, e in enumerate(etags)]},
        )
    # More versions, markers, a retagged old version.
    for i in range(0, 600, 2):
        key = specs[i][0]
        s3.put_object(Bucket="roundtrip", Key=key, Body=f"version two of {key}".encode())
    for i in range(1, 100, 2):
        s3.delete_object(Bucket="roundtrip", Key=specs[i][0])
    first = s3.list_object_versions(Bucket="roundtrip", Prefix=specs[0][0])["Versions"][-1]
    s3.put_object_tagging(Bucket="roundtrip", Key=specs[0][0], VersionId=first["VersionId"],
                          Tagging={"TagSet": [{"Key": "old", "Value": "tagged"}]})


def listing(s3):
    objects = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="roundtrip"):
        objects += [(o["Key"], o["ETag"], o["Size"], o["LastModified"]) for o in page.get("Contents", [])]
    versions = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket="roundtrip"):
        versions += [("v", v["Key"], v["VersionId"], v["IsLatest"], v["ETag"], v["Size"], v["LastModified"]) for v in page.get("Versions", [])]
        versions += [("m", m["Key"], m["VersionId"], m["IsLatest"], m["LastModified"]) for m in page.get("DeleteMarkers", [])]
    return objects, sorted(versions, key=lambda v: (v[1], v[2]))


HEADERS = ["ETag", "ContentLength", "ContentType", "CacheControl", "Metadata", "LastModified", "VersionId", "TagCount", "PartsCount"]


def get(s3, key, vid):
    r = s3.get_object(Bucket="roundtrip", Key=key, VersionId=vid)
    body = r["Body"].read()
    return body, {h: r.get(h) for h in HEADERS}


def test_export_import_round_trip_and_js_interop(tmp_path):
    rng = random.Random(2000)
    a = Server(tmp_path / "a").start()
    car = tmp_path / "roundtrip.car"
    try:
        s3a = a.client(read_timeout=120)
        fill(s3a, rng)
        objects_a, versions_a = listing(s3a)
        assert len(objects_a) == OBJECTS + 2 - 50
        # Export while the server runs.
        out = run_billet("export", "roundtrip", "-o", str(car), data_dir=a.data_dir)
        assert "exported bucket roundtrip" in out.stderr, out.stderr
        bodies_dir = tmp_path / "bodies"
        bodies_dir.mkdir()
        files, reads_a = {}, {}
        for kind, key, vid, *_ in versions_a:
            if kind != "v":
                continue
            body, headers = get(s3a, key, vid)
            reads_a[(key, vid)] = (hashlib.sha256(body).hexdigest(), headers)
        for key, *_ in objects_a:
            p = bodies_dir / hashlib.sha256(key.encode()).hexdigest()
            r = s3a.get_object(Bucket="roundtrip", Key=key)
            p.write_bytes(r["Body"].read())
            files[key] = str(p)
    finally:
        assert a.stop() == 0, a.log_text()
    head_a = head_of(run_billet("verify", "roundtrip", data_dir=a.data_dir).stdout)

    # The JavaScript reference implementations read the export on their own.
    expect = tmp_path / "expect.json"
    expect.write_text(json.dumps({"objects": {"files": files}}))
    node = shutil.which("node")
    assert node, "node is required (the README's test command installs the interop packages)"
    js = subprocess.run([node, str(ROOT / "tests/interop/check-car.mjs"), str(car), str(expect), "--closed"],
                        capture_output=True, text=True, timeout=600)
    assert js.returncode == 0, js.stdout + js.stderr[-4000:]
    assert f"{len(objects_a)} objects checked; 0 problems" in js.stdout, js.stdout
    assert "closed: " in js.stdout, js.stdout

    # The file verifies offline, then imports into an empty node.
    v = run_billet("verify", str(car), data_dir=tmp_path / "unused")
    assert head_of(v.stdout) == head_a and " 0 problems" in v.stdout
    imp = run_billet("import", str(car), data_dir=tmp_path / "b")
    assert "imported as bucket roundtrip" in imp.stdout, imp.stdout + imp.stderr
    head_b = head_of(run_billet("verify", "roundtrip", data_dir=tmp_path / "b").stdout)
    assert head_b == head_a
    fsck = run_billet("fsck", "roundtrip", data_dir=tmp_path / "b")
    assert " 0 problems" in fsck.stdout

    b = Server(tmp_path / "b").start()
    try:
        s3b = b.client(read_timeout=120)
        objects_b, versions_b = listing(s3b)
        assert objects_b == objects_a
        assert versions_b == versions_a
        for (key, vid), (digest, headers) in reads_a.items():
            body, headers_b = get(s3b, key, vid)
            assert hashlib.sha256(body).hexdigest() == digest, (key, vid)
            assert headers_b == headers, (key, vid)
        # The imported bucket takes writes like any other.
        s3b.put_object(Bucket="roundtrip", Key="after-import", Body=b"ok")
        assert s3b.get_object(Bucket="roundtrip", Key="after-import")["Body"].read() == b"ok"
    finally:
        assert b.stop() == 0, b.log_text()
    # Importing the same bucket again is refused and changes nothing.
    again = run_billet("import", str(car), data_dir=tmp_path / "b", check=False)
    assert again.returncode != 0 and "already exists" in again.stderr, again.stderr


def test_history_export_holds_every_commit(tmp_path):
    srv = Server(tmp_path / "data").start()
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="hist")
        for i in range(5):
            s3.put_object(Bucket="hist", Key=f"k{i}", Body=f"body {i}".encode())
        s3.delete_object(Bucket="hist", Key="k0")
        plain, full = tmp_path / "plain.car", tmp_path / "full.car"
        run_billet("export", "hist", "-o", str(plain), data_dir=srv.data_dir)
        out = run_billet("export", "hist", "--history", "-o", str(full), data_dir=srv.data_dir)
    finally:
        assert srv.stop() == 0, srv.log_text()
    # Seven commits: creation, five PUTs, one DELETE (each alone in its batch).
    assert " 7 commits," in out.stderr, out.stderr
    assert full.stat().st_size > plain.stat().st_size
    # k0's manifest is only reachable from older commits.
    imp = run_billet("import", str(full), "--bucket", "hist-copy", data_dir=tmp_path / "b")
    assert "imported as bucket hist-copy" in imp.stdout
    fsck = run_billet("fsck", "hist-copy", data_dir=tmp_path / "b")
    assert ": 4 keys," in fsck.stdout and " 0 problems" in fsck.stdout, fsck.stdout


def test_fsck_finds_tampered_rows_and_repair_fixes_them(tmp_path):
    srv = Server(tmp_path / "data").start()
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="tamper")
        for i in range(10):
            s3.put_object(Bucket="tamper", Key=f"k{i}", Body=f"body {i}".encode() * (i + 1))
    finally:
        assert srv.stop() == 0, srv.log_text()
    db = sqlite3.connect(srv.data_dir / "index" / "buckets" / "tamper.db")
    with db:
        assert db.execute("DELETE FROM versions WHERE key = ?", (b"k3",)).rowcount == 1
        assert db.execute("UPDATE versions SET size = size + 1, etag = ? WHERE key = ?", ("0" * 32, b"k7")).rowcount == 1
    db.close()
    bad = run_billet("fsck", "tamper", data_dir=srv.data_dir, check=False)
    assert bad.returncode != 0
    assert '"k3" version null: in the MST, missing from the index' in bad.stdout, bad.stdout
    assert '"k7" version null: index has manifest' in bad.stdout, bad.stdout
    assert " 2 problems" in bad.stdout, bad.stdout
    fixed = run_billet("fsck", "tamper", "--repair", data_dir=srv.data_dir)
    assert "index rows rebuilt from the MST" in fixed.stdout, fixed.stdout
    good = run_billet("fsck", "tamper", data_dir=srv.data_dir)
    assert ": 10 keys, 10 versions," in good.stdout and " 0 problems" in good.stdout, good.stdout
    srv.start()
    try:
        s3 = srv.client()
        assert s3.get_object(Bucket="tamper", Key="k3")["Body"].read() == b"body 3" * 4
        listed = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket="tamper")["Contents"]}
        assert listed["k7"] == len(b"body 7") * 8
    finally:
        assert srv.stop() == 0, srv.log_text()


def test_import_refuses_a_data_dir_a_server_is_writing(tmp_path):
    src = Server(tmp_path / "src").start()
    try:
        src.client().create_bucket(Bucket="one")
        run_billet("export", "one", "-o", str(tmp_path / "one.car"), data_dir=src.data_dir)
    finally:
        assert src.stop() == 0, src.log_text()
    live = Server(tmp_path / "live").start()
    try:
        out = run_billet("import", str(tmp_path / "one.car"), data_dir=live.data_dir, check=False)
        assert out.returncode != 0
        assert "another process is writing this log" in out.stderr, out.stderr
        # The server is unharmed and the bucket was not created.
        s3 = live.client()
        assert "one" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        s3.create_bucket(Bucket="still-works")
    finally:
        assert live.stop() == 0, live.log_text()
    out = run_billet("import", str(tmp_path / "one.car"), data_dir=live.data_dir)
    assert "imported as bucket one" in out.stdout
