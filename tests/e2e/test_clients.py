"""The aws CLI and rclone against billet, as users run them."""

import filecmp
import json
import hashlib
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ACCESS_KEY, ROOT, SECRET_KEY

AWS = str(ROOT / ".venv" / "bin" / "aws")


def aws(server, *args, check=True, timeout=300):
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
    )
    out = subprocess.run([AWS, "--endpoint-url", server.endpoint, *args], capture_output=True, text=True, env=env, timeout=timeout)
    if check:
        assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out


def make_tree(root: Path, count, seed, big=0):
    rng = random.Random(seed)
    files = {}
    for i in range(count):
        size = rng.choice([0, 1, 100, 4096, rng.randrange(10, 70_000)])
        if i < big:
            size = rng.randrange(1 << 20, 3 << 20)
        rel = f"d{i % 7}/sub{i % 3}/file-{i:04d}.bin" if i % 5 else f"top-{i:04d} name.txt"
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        data = rng.randbytes(size)
        p.write_bytes(data)
        files[rel] = hashlib.md5(data).hexdigest()
    return files


def same_trees(a: Path, b: Path):
    names = lambda r: sorted(str(p.relative_to(r)) for p in r.rglob("*") if p.is_file())
    assert names(a) == names(b)
    for n in names(a):
        assert filecmp.cmp(a / n, b / n, shallow=False), n


def test_aws_cli_cp_sync_ls_rm(server, tmp_path):
    aws(server, "s3", "mb", "s3://cli-bucket")
    src = tmp_path / "src"
    make_tree(src, 60, seed=1, big=2)
    aws(server, "s3", "cp", str(src / "top-0000 name.txt"), "s3://cli-bucket/single.txt")
    aws(server, "s3", "cp", "s3://cli-bucket/single.txt", str(tmp_path / "single.txt"))
    assert (tmp_path / "single.txt").read_bytes() == (src / "top-0000 name.txt").read_bytes()
    aws(server, "s3", "sync", str(src), "s3://cli-bucket/tree")
    # A second sync uploads nothing; a changed file goes up again.
    out = aws(server, "s3", "sync", str(src), "s3://cli-bucket/tree")
    assert "upload:" not in out.stdout
    (src / "d1" / "sub1" / "file-0001.bin").write_bytes(b"changed contents")
    out = aws(server, "s3", "sync", str(src), "s3://cli-bucket/tree")
    assert out.stdout.count("upload:") == 1
    back = tmp_path / "back"
    aws(server, "s3", "sync", "s3://cli-bucket/tree", str(back))
    same_trees(src, back)
    listing = aws(server, "s3", "ls", "s3://cli-bucket/tree/").stdout
    assert "PRE d0/" in listing and "top-0000 name.txt" in listing
    recursive = aws(server, "s3", "ls", "--recursive", "s3://cli-bucket/tree/").stdout
    assert len(recursive.strip().splitlines()) == 60
    aws(server, "s3", "rm", "--recursive", "s3://cli-bucket/tree/d0")
    recursive = aws(server, "s3", "ls", "--recursive", "s3://cli-bucket/tree/").stdout
    assert "tree/d0/" not in recursive and len(recursive.strip().splitlines()) < 60


def test_aws_cli_s3api_ranged_and_conditional(server, tmp_path):
    aws(server, "s3", "mb", "s3://api-bucket")
    f = tmp_path / "f"
    f.write_bytes(bytes(range(256)) * 100)
    out = aws(server, "s3api", "put-object", "--bucket", "api-bucket", "--key", "k", "--body", str(f))
    etag = json.loads(out.stdout)["ETag"]
    part = tmp_path / "part"
    aws(server, "s3api", "get-object", "--bucket", "api-bucket", "--key", "k", "--range", "bytes=100-199", str(part))
    assert part.read_bytes() == f.read_bytes()[100:200]
    out = aws(server, "s3api", "get-object", "--bucket", "api-bucket", "--key", "k", "--if-none-match", etag, str(part), check=False)
    assert out.returncode != 0 and "304" in out.stderr
    out = aws(server, "s3api", "get-object", "--bucket", "api-bucket", "--key", "k", "--if-match", '"nope"', str(part), check=False)
    assert out.returncode != 0 and "PreconditionFailed" in out.stderr
    out = aws(server, "s3api", "head-object", "--bucket", "api-bucket", "--key", "k")
    assert '"ContentLength": 25600' in out.stdout


def test_aws_cli_cp_200_mib_uses_multipart_and_round_trips(server, s3, tmp_path):
    aws(server, "s3", "mb", "s3://cli-big")
    src = tmp_path / "big.bin"
    rng = random.Random(200)
    with open(src, "wb") as f:
        for _ in range(200):
            f.write(rng.randbytes(1 << 20))
    aws(server, "s3", "cp", str(src), "s3://cli-big/big.bin", timeout=600)
    # The CLI switched to multipart by itself (8 MiB parts): the ETag says so.
    head = s3.head_object(Bucket="cli-big", Key="big.bin")
    assert head["ContentLength"] == 200 << 20
    assert head["ETag"].strip('"').endswith("-25"), head["ETag"]
    back = tmp_path / "back.bin"
    aws(server, "s3", "cp", "s3://cli-big/big.bin", str(back), timeout=600)
    assert filecmp.cmp(src, back, shallow=False)


def rclone_runner(server):
    # The AWS SDK inside rclone refuses a CA bundle over plain HTTP.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        RCLONE_CONFIG="/dev/null",
        RCLONE_CONFIG_BILLET_TYPE="s3",
        RCLONE_CONFIG_BILLET_PROVIDER="Other",
        RCLONE_CONFIG_BILLET_ENDPOINT=server.endpoint,
        RCLONE_CONFIG_BILLET_ACCESS_KEY_ID=ACCESS_KEY,
        RCLONE_CONFIG_BILLET_SECRET_ACCESS_KEY=SECRET_KEY,
        RCLONE_CONFIG_BILLET_REGION="us-east-1",
        RCLONE_CONFIG_BILLET_FORCE_PATH_STYLE="true",
    )

    def rclone(*args):
        out = subprocess.run(["rclone", *args, "--transfers", "16", "--checkers", "16"], capture_output=True, text=True, env=env, timeout=600)
        assert out.returncode == 0, (args, out.stdout[-2000:], out.stderr[-4000:])
        return out

    return rclone


@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone missing (the test command installs it)")
def test_rclone_copies_a_file_above_its_multipart_cutoff(server, s3, tmp_path):
    s3.create_bucket(Bucket="rclone-mp")
    rclone = rclone_runner(server)
    src = tmp_path / "src"
    src.mkdir()
    (src / "large.bin").write_bytes(random.Random(12).randbytes((12 << 20) + 345))
    rclone("copy", str(src), "billet:rclone-mp", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M")
    head = s3.head_object(Bucket="rclone-mp", Key="large.bin")
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]
    back = tmp_path / "back"
    rclone("copy", "billet:rclone-mp", str(back))
    rclone("check", str(src), "billet:rclone-mp", "--download")
    same_trees(src, back)


@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone missing (the test command installs it)")
def test_rclone_sync_up_and_back(server, s3, tmp_path):
    s3.create_bucket(Bucket="rclone-bucket")
    rclone = rclone_runner(server)
    src = tmp_path / "src"
    make_tree(src, 1000, seed=7, big=10)

    rclone("sync", str(src), "billet:rclone-bucket/tree")
    back = tmp_path / "back"
    rclone("sync", "billet:rclone-bucket/tree", str(back))
    rclone("check", str(src), str(back))
    rclone("check", str(src), "billet:rclone-bucket/tree")
    same_trees(src, back)
    keys = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="rclone-bucket"):
        keys += len(page.get("Contents", []))
    assert keys == 1000
