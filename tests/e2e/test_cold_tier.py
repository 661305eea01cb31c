"""The cold tier against real S3 servers on 127.0.0.1 — Garage, and a
second billet — driven by the real binary: segments ship, evict, and every
object reads back through the remote after a restart; a node whose data
directory is gone is rebuilt from the remote up to its shipped heads."""

import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import BILLET, Server

SIZES = [0, 1, 4096, (1 << 20) + 1, 8 << 20, 64 << 20]


def write_config(path, remote, prefix, keep_local=0, node="node-a"):
    path.write_text(
        "[log]\n"
        "data_seal_bytes = 4194304\n"
        "data_seal_after_ms = 300\n"
        "catalog_seal_bytes = 65536\n"
        "catalog_seal_after_ms = 300\n"
        + remote.toml(prefix)
        + f'node = "{node}"\n'
        + f"[remote.data]\nkeep_local_secs = {keep_local}\n"
        + f"[remote.catalog]\nkeep_local_secs = {keep_local}\n"
    )
    return path


def billet(*args, config, data_dir, listen=None, check=True, timeout=600):
    cmd = [BILLET, *args, "--config", str(config), "--data-dir", str(data_dir)]
    if listen:
        cmd += ["--listen", listen]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def status(server, config):
    r = billet("status", "--json", config=config, data_dir=server.data_dir, listen=f"127.0.0.1:{server.port}")
    return json.loads(r.stdout)


def wait_shipped(server, config, evicted=True, timeout=180):
    """Until nothing sealed waits to ship, every bucket's shipped head is
    its head, and (with `evicted`) no shipped segment is still local."""
    deadline = time.time() + timeout
    while True:
        st = status(server, config)
        planes_done = all(
            p["backlog"]["segments"] == 0 and p["sealed"]["segments"] == 0 and (not evicted or p["shipped"]["segments"] == 0)
            for p in st["planes"]
        )
        heads_done = all(b["shipped_seq"] == b["head_seq"] for b in st["buckets"])
        if planes_done and heads_done:
            return st
        if time.time() > deadline:
            raise AssertionError(f"shipping did not finish: {json.dumps(st, indent=1)}\n{server.log_text()}")
        time.sleep(0.3)


def body(i, size):
    # Incompressible (so it ships as is and every byte comes back through
    # the remote), distinct per object.
    return random.Random(f"{i}-{size}").randbytes(size)


def write_objects(s3, bucket, tmp):
    """Every size class; the large ones through the CLI-style multipart
    path of boto3's transfer manager; a versioned overwrite."""
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    expect = {}
    for i, size in enumerate(SIZES):
        key = f"obj/{i}-{size}"
        data = body(i, size)
        if size >= 8 << 20:
            f = tmp / f"upload-{i}"
            f.write_bytes(data)
            s3.upload_file(str(f), bucket, key)  # multipart at 8 MiB
            f.unlink()
        else:
            s3.put_object(Bucket=bucket, Key=key, Body=data)
        expect[key] = hashlib.sha256(data).hexdigest()
    old = s3.put_object(Bucket=bucket, Key="versioned", Body=b"first version")
    s3.put_object(Bucket=bucket, Key="versioned", Body=b"second version")
    expect["versioned"] = hashlib.sha256(b"second version").hexdigest()
    return expect, old["VersionId"]


def read_all(s3, bucket, expect):
    for key, digest in expect.items():
        got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(got).hexdigest() == digest, key


def metric(server, name):
    import urllib.request

    with urllib.request.urlopen(server.endpoint + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


def test_every_size_class_reads_back_through_the_remote_after_eviction_and_restart(remote, tmp_path):
    prefix = f"t-{uuid.uuid4().hex[:8]}/"
    config = write_config(tmp_path / "billet.toml", remote, prefix)
    server = Server(tmp_path / "data", extra_args=["--config", str(config)]).start()
    try:
        s3 = server.client()
        expect, old_version = write_objects(s3, "cold", tmp_path)
        wait_shipped(server, config)
    finally:
        assert server.stop() == 0, server.log_text()
    # A restart: what the shutdown sealed ships and goes too.
    server.start()
    try:
        st = wait_shipped(server, config)
        for p in st["planes"]:
            assert p["evicted"]["segments"] > 0, p
            assert p["local_bytes"] == p["open"]["bytes"], p
        s3 = server.client()
        read_all(s3, "cold", expect)
        old = s3.get_object(Bucket="cold", Key="versioned", VersionId=old_version)["Body"].read()
        assert old == b"first version"
        listed = s3.list_objects_v2(Bucket="cold")["Contents"]
        assert sorted(o["Key"] for o in listed) == sorted(expect)
        assert metric(server, "billet_cold_remote_fetched_bytes_total") >= sum(SIZES)
        assert metric(server, "billet_cold_warm_cache_bytes") > 0
    finally:
        assert server.stop() == 0, server.log_text()
    # What the remote holds: names that say node, plane and sequence; CAR
    # objects, the catalog compressed.
    rc = remote.client()
    keys = [o["Key"] for o in rc.list_objects_v2(Bucket=remote.bucket, Prefix=prefix + "billet/v1/node-a/")["Contents"]]
    cars = [k for k in keys if ".car" in k]
    assert any(k.endswith(".car.zst") and "/catalog/" in k for k in cars), keys
    assert any("/data/" in k for k in cars), keys
    assert prefix + "billet/v1/node-a/heads.cbor" in keys
    if remote.name == "garage":
        zst = next(k for k in cars if k.endswith(".car.zst"))
        head = rc.head_object(Bucket=remote.bucket, Key=zst)
        assert head["ContentType"] == "application/vnd.ipld.car"
        assert head["ContentEncoding"] == "zstd"


PG_URL = os.environ.get("BILLET_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_schemas():
    """Makes PostgreSQL schema names for a test and drops them after it."""
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
    except OSError:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432 and CI=true")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    made = []

    def make():
        made.append("e2e_" + uuid.uuid4().hex[:12])
        return made[-1]

    yield make
    for schema in made:
        subprocess.run(["psql", PG_URL, "-qc", f"DROP SCHEMA IF EXISTS {schema} CASCADE"], capture_output=True, timeout=60)


def with_index(config, schema):
    """The configuration `config` with its index on PostgreSQL `schema`."""
    if schema is not None:
        text = config.read_text()
        text = f'[index]\nbackend = "postgres"\nurl = "{PG_URL}"\nschema = "{schema}"\n' + text
        config.write_text(text)
    return config


@pytest.mark.parametrize("index", ["sqlite", "postgres-same-database", "postgres-empty-database"])
def test_a_lost_node_is_rebuilt_from_the_remote_up_to_its_shipped_heads(garage, tmp_path, index, request):
    prefix = f"t-{uuid.uuid4().hex[:8]}/"
    schema = request.getfixturevalue("pg_schemas")() if index != "sqlite" else None
    config = with_index(write_config(tmp_path / "billet.toml", garage, prefix, keep_local=3600), schema)
    data = tmp_path / "data"
    server = Server(data, extra_args=["--config", str(config)]).start()
    s3 = server.client()
    expect, _ = write_objects(s3, "first", tmp_path)
    s3.create_bucket(Bucket="second")
    s3.put_object(Bucket="second", Key="k", Body=b"second bucket")
    wait_shipped(server, config, evicted=False)
    shipped = {b["bucket"]: b for b in status(server, config)["buckets"]}
    # The remote goes away: a write is acknowledged but never ships.
    garage.garage.stop()
    try:
        s3.put_object(Bucket="first", Key="late", Body=b"after the shipped head")
        server.kill()
    finally:
        garage.garage.start()
        garage.garage.wait_ready(garage.bucket)
    shutil.rmtree(data)
    if index == "postgres-empty-database":
        # The index is lost with the disk: recover into a fresh schema.
        schema = request.getfixturevalue("pg_schemas")()
        config = with_index(write_config(tmp_path / "billet.toml", garage, prefix, keep_local=3600), schema)

    out = billet("recover", config=config, data_dir=data)
    assert "recovered 2 bucket(s)" in out.stdout, out.stdout + out.stderr
    assert "bucket 1/2 first" in out.stderr, out.stderr
    for name in ["first", "second"]:
        v = billet("verify", name, config=config, data_dir=data)
        assert " 0 problems" in v.stdout, v.stdout
    server = Server(data, extra_args=["--config", str(config)]).start()
    try:
        st = status(server, config)
        got = {b["bucket"]: b for b in st["buckets"]}
        for name in ["first", "second"]:
            assert got[name]["head_seq"] == shipped[name]["head_seq"]
            assert got[name]["shipped_head"] == shipped[name]["shipped_head"]
        s3 = server.client()
        read_all(s3, "first", expect)
        assert s3.get_object(Bucket="second", Key="k")["Body"].read() == b"second bucket"
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="first")["Contents"]}
        assert "late" not in keys and keys == set(expect)
        # The rebuilt node goes on writing and shipping.
        s3.put_object(Bucket="first", Key="after-recovery", Body=b"new")
        wait_shipped(server, config, evicted=False)
    finally:
        assert server.stop() == 0, server.log_text()
    # A second recovery into a used directory is refused.
    r = billet("recover", config=config, data_dir=data, check=False)
    assert r.returncode != 0 and "not empty" in r.stderr, r.stderr
