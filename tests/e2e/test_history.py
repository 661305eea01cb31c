"""Verifiable history: checkpoints and proofs fetched over HTTP from a
running server, then checked offline with `billet verify-proof` against the
node's did:key; forged signatures, another node's key and an altered chunk
are rejected."""

import base64
import hashlib
import json
import random
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import ACCESS_KEY, BILLET, SECRET_KEY, Server

MIB = 1 << 20


def fetch(server, path, auth=(ACCESS_KEY, SECRET_KEY)):
    req = urllib.request.Request(server.endpoint + "/_billet/v1/" + path)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def verify(path, did):
    return subprocess.run([BILLET, "verify-proof", str(path), "--node", did], capture_output=True, text=True, timeout=60)


def flip(data, needle, at=0):
    i = data.find(needle)
    assert i >= 0
    b = bytearray(data)
    b[i + at] ^= 0x01
    return bytes(b)


def test_proofs_over_http_verify_offline(tmp_path):
    srv = Server(tmp_path / "data").start()
    other = Server(tmp_path / "other").start()
    files = {}
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="hist")
        big = random.Random(8).randbytes(3 * MIB + 12345)
        s3.put_object(Bucket="hist", Key="big.bin", Body=big)
        for i in range(5):
            s3.put_object(Bucket="hist", Key=f"small/{i}", Body=f"small {i}".encode())
        did = json.loads(fetch(srv, "node"))["did"]
        other_did = json.loads(fetch(other, "node"))["did"]
        assert did.startswith("did:key:z") and did != other_did
        assert did in srv.log_text()

        old = fetch(srv, "buckets/hist/checkpoint")
        old_json = json.loads(fetch(srv, "buckets/hist/checkpoint?format=json"))
        old_size = old_json["checkpoint"]["mmrSize"]
        old_head = old_json["checkpoint"]["head"]["/"]
        old_seq = old_json["checkpoint"]["seq"]
        for i in range(7):
            s3.put_object(Bucket="hist", Key=f"later/{i}", Body=b"x" * i)
        s3.delete_object(Bucket="hist", Key="small/0")

        files["checkpoint"] = fetch(srv, "buckets/hist/checkpoint")
        files["present"] = fetch(srv, "buckets/hist/proof/object?key=small/3")
        files["absent"] = fetch(srv, "buckets/hist/proof/object?key=small/0")
        files["head"] = fetch(srv, "buckets/hist/proof/commit")
        files["old-commit"] = fetch(srv, f"buckets/hist/proof/commit?seq={old_seq}&commit={old_head}")
        files["consistency"] = fetch(srv, f"buckets/hist/proof/consistency?from={old_size}")
        files["challenge"] = fetch(srv, "buckets/hist/challenge?key=big.bin&chunk=2&nonce=00c0ffee")
        files["old"] = old

        # Authentication is required, and checked: an unsigned request is
        # refused as S3 refuses one, a wrong Basic login asks for another.
        for auth, code in [(None, 403), ((ACCESS_KEY, "wrong-secret"), 401), (("NOSUCHKEY", SECRET_KEY), 401)]:
            with pytest.raises(urllib.error.HTTPError) as e:
                fetch(srv, "buckets/hist/checkpoint", auth=auth)
            assert e.value.code == code
        with pytest.raises(urllib.error.HTTPError) as e:
            fetch(srv, "buckets/nosuch/checkpoint")
        assert e.value.code == 404
        with pytest.raises(urllib.error.HTTPError) as e:
            fetch(srv, "buckets/hist/challenge?key=big.bin&chunk=99&nonce=00")
        assert e.value.code == 400
        etag = s3.head_object(Bucket="hist", Key="small/3")["ETag"].strip('"')
    finally:
        assert srv.stop() == 0, srv.log_text()
        assert other.stop() == 0, other.log_text()

    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / f"{name}.cbor"
        paths[name].write_bytes(data)
    expect = {
        "checkpoint": "checkpoint of bucket hist",
        "old": "checkpoint of bucket hist",
        "present": f"hist/small/3 is present at head",
        "absent": "hist/small/0 is absent at head",
        "head": "is leaf",
        "old-commit": f"commit {old_head} is leaf",
        "consistency": f"MMR of {old_size} nodes is a prefix",
        "challenge": "hist/big.bin chunk 2 (1048576 bytes at offset 2097152) is held, nonce 00c0ffee",
    }
    for name, text in expect.items():
        out = verify(paths[name], did)
        assert out.returncode == 0, (name, out.stdout, out.stderr)
        assert text in out.stdout, (name, out.stdout)
    assert f"ETag {etag}" in verify(paths["present"], did).stdout

    # Another node's key rejects every proof.
    for name in files:
        out = verify(paths[name], other_did)
        assert out.returncode != 0 and "not by the node" in out.stderr, (name, out.stderr)
    # A forged checkpoint signature.
    sig = bytes.fromhex(json.loads(subprocess.run(
        [BILLET, "prove", "--json", "checkpoint", "hist", "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, check=True).stdout)["sig"]["hex"])
    cp = paths["checkpoint"].read_bytes()
    assert sig in cp
    forged = tmp_path / "forged.cbor"
    forged.write_bytes(flip(cp, sig, 10))
    out = verify(forged, did)
    assert out.returncode != 0 and "signature does not verify" in out.stderr, out.stderr
    # An altered chunk.
    ch = paths["challenge"].read_bytes()
    chunk = big[2 * MIB: 3 * MIB]
    altered = tmp_path / "altered.cbor"
    altered.write_bytes(flip(ch, chunk[:64], 5))
    out = verify(altered, did)
    assert out.returncode != 0 and "chunk" in out.stderr, out.stderr
    # An object proof with an altered MST node or manifest.
    pr = paths["present"].read_bytes()
    bad = tmp_path / "bad-present.cbor"
    bad.write_bytes(flip(pr, b"small/3", 2))
    out = verify(bad, did)
    assert out.returncode != 0, out.stdout


def test_cli_prove_matches_and_history_survives_restart(tmp_path):
    srv = Server(tmp_path / "data").start()
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="cli")
        for i in range(20):
            s3.put_object(Bucket="cli", Key=f"k{i}", Body=hashlib.sha256(str(i).encode()).digest())
        first = json.loads(fetch(srv, "buckets/cli/checkpoint?format=json"))["checkpoint"]
    finally:
        assert srv.stop() == 0, srv.log_text()
    did = json.loads(subprocess.run([BILLET, "prove", "--json", "checkpoint", "cli", "--data-dir", str(tmp_path / "data")],
                                    capture_output=True, text=True, check=True).stdout)["checkpoint"]["node"]
    srv.start()
    try:
        s3 = srv.client()
        s3.put_object(Bucket="cli", Key="after", Body=b"after restart")
        now = json.loads(fetch(srv, "buckets/cli/checkpoint?format=json"))["checkpoint"]
        # One leaf per commit: creation, 20 PUTs, one more.
        assert now["seq"] == 21 and now["mmrSize"] > first["mmrSize"]
        proof = tmp_path / "c.cbor"
        proof.write_bytes(fetch(srv, f"buckets/cli/proof/consistency?from={first['mmrSize']}"))
    finally:
        assert srv.stop() == 0, srv.log_text()
    out = verify(proof, did)
    assert out.returncode == 0 and "is a prefix" in out.stdout, out.stdout + out.stderr
    for what in (["object", "cli", "k7"], ["commit", "cli"], ["challenge", "cli", "k3", "--chunk", "0", "--nonce", "ab"]):
        p = tmp_path / f"{what[0]}.cbor"
        subprocess.run([BILLET, "prove", *what, "-o", str(p), "--data-dir", str(tmp_path / "data")], check=True, timeout=60)
        out = verify(p, did)
        assert out.returncode == 0, (what, out.stdout, out.stderr)


def test_a_recreated_bucket_starts_a_new_history(tmp_path):
    srv = Server(tmp_path / "data").start()
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="again")
        for i in range(6):
            s3.put_object(Bucket="again", Key=f"k{i}", Body=b"x")
        old = json.loads(fetch(srv, "buckets/again/checkpoint?format=json"))["checkpoint"]
        for i in range(6):
            s3.delete_object(Bucket="again", Key=f"k{i}")
        s3.delete_bucket(Bucket="again")
        s3.create_bucket(Bucket="again")
        s3.put_object(Bucket="again", Key="new", Body=b"y")
        new = json.loads(fetch(srv, "buckets/again/checkpoint?format=json"))["checkpoint"]
        assert new["seq"] == 1 and new["mmrSize"] < old["mmrSize"]
        with pytest.raises(urllib.error.HTTPError) as e:
            fetch(srv, f"buckets/again/proof/consistency?from={old['mmrSize']}")
        assert e.value.code == 400
        assert b"signed no checkpoint" in e.value.read()
    finally:
        assert srv.stop() == 0, srv.log_text()
