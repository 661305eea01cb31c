"""Crash: kill -9 the server during concurrent multipart uploads.

After each restart: every upload completed with 200 reads back intact; every
other upload is either resumable (ListParts shows each acknowledged part with
its ETag, and completing it gives the right bytes) or cleanly absent (no
upload, and the key holds nothing or a whole, correct object)."""

import hashlib
import random
import threading
import time

from botocore.exceptions import ClientError

from conftest import Server, run_billet

CYCLES = 5
CLIENTS = 8
KIB = 1024


class Upload:
    def __init__(self, key):
        self.key = key
        self.uid = None
        self.sent = {}  # part number -> bytes (acknowledged or not)
        self.acked = {}  # part number -> ETag
        self.completed = False
        self.complete_sent = False


def etag_of(parts):
    return hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + f"-{len(parts)}"


def writer(s3, tid, cycle, seed, uploads, stop):
    rng = random.Random(seed)
    n = 0
    while not stop.is_set():
        up = Upload(f"c{cycle}/t{tid}/{n}")
        n += 1
        try:
            up.uid = s3.create_multipart_upload(Bucket="mpcrash", Key=up.key)["UploadId"]
            uploads.append(up)
            count = rng.randrange(2, 5)
            for number in rng.sample(range(1, count + 1), count):
                data = rng.randbytes(rng.randrange(64 * KIB, 300 * KIB))
                up.sent[number] = data
                r = s3.upload_part(Bucket="mpcrash", Key=up.key, UploadId=up.uid, PartNumber=number, Body=data)
                up.acked[number] = r["ETag"].strip('"')
            up.complete_sent = True
            s3.complete_multipart_upload(
                Bucket="mpcrash",
                Key=up.key,
                UploadId=up.uid,
                MultipartUpload={"Parts": [{"PartNumber": k, "ETag": up.acked[k]} for k in sorted(up.acked)]},
            )
            up.completed = True
        except Exception:
            return


def check(s3, up):
    parts = [up.sent[k] for k in sorted(up.sent)]
    if up.completed:
        got = s3.get_object(Bucket="mpcrash", Key=up.key)
        assert got["Body"].read() == b"".join(parts), up.key
        assert got["ETag"].strip('"') == etag_of(parts), up.key
        return "completed"
    try:
        listed = s3.list_parts(Bucket="mpcrash", Key=up.key, UploadId=up.uid).get("Parts", [])
    except ClientError as e:
        assert e.response["Error"]["Code"] == "NoSuchUpload", e
        # Cleanly absent: either never completed, or completed whole just
        # before the kill (the answer was lost).
        try:
            got = s3.get_object(Bucket="mpcrash", Key=up.key)
        except ClientError as e2:
            assert e2.response["Error"]["Code"] == "NoSuchKey", e2
            assert not up.complete_sent, up.key
            return "absent"
        assert up.complete_sent and got["Body"].read() == b"".join(parts), up.key
        return "completed unacknowledged"
    # Resumable: every acknowledged part is there with its ETag; a part in
    # flight may be there too, with the bytes that were sent.
    listed = {p["PartNumber"]: p["ETag"].strip('"') for p in listed}
    for number, etag in up.acked.items():
        assert listed.get(number) == etag, (up.key, number)
    for number, etag in listed.items():
        assert etag == hashlib.md5(up.sent[number]).hexdigest(), (up.key, number)
    if not listed:
        # Created, no part recorded yet: resumable, but nothing to complete.
        assert not up.acked, up.key
        s3.abort_multipart_upload(Bucket="mpcrash", Key=up.key, UploadId=up.uid)
        return "resumable, empty"
    order = sorted(listed)
    s3.complete_multipart_upload(
        Bucket="mpcrash",
        Key=up.key,
        UploadId=up.uid,
        MultipartUpload={"Parts": [{"PartNumber": k, "ETag": listed[k]} for k in order]},
    )
    got = s3.get_object(Bucket="mpcrash", Key=up.key)["Body"].read()
    assert got == b"".join(up.sent[k] for k in order), up.key
    return "resumed"


def test_kill_9_during_concurrent_multipart_uploads(tmp_path):
    rng = random.Random(11)
    cfg = tmp_path / "billet.toml"
    # Small parts keep the test quick; the rules are the same.
    cfg.write_text("min_part_size = 65536\n")
    srv = Server(tmp_path / "data", extra_args=["--config", str(cfg)]).start()
    srv.client().create_bucket(Bucket="mpcrash")
    outcomes = {}
    try:
        for cycle in range(CYCLES):
            stop = threading.Event()
            uploads = []
            threads = [
                threading.Thread(target=writer, args=(srv.client(read_timeout=20), t, cycle, rng.random(), uploads, stop))
                for t in range(CLIENTS)
            ]
            for t in threads:
                t.start()
            deadline = time.time() + 30
            while sum(u.completed for u in uploads) < 5 and time.time() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.5))
            srv.kill()
            stop.set()
            for t in threads:
                t.join(timeout=60)
                assert not t.is_alive()
            assert any(u.completed for u in uploads), f"cycle {cycle}: nothing completed before the kill"
            fsck = run_billet("fsck", "mpcrash", data_dir=srv.data_dir, check=False)
            assert fsck.returncode == 0 and " 0 problems" in fsck.stdout, fsck.stdout + fsck.stderr
            srv.start()
            s3 = srv.client()
            for up in uploads:
                outcome = check(s3, up)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
    finally:
        if srv.proc and srv.proc.poll() is None:
            assert srv.stop() == 0, srv.log_text()
    fsck = run_billet("fsck", "mpcrash", data_dir=srv.data_dir, check=False)
    assert fsck.returncode == 0 and " 0 problems" in fsck.stdout, fsck.stdout + fsck.stderr
    assert outcomes.get("completed", 0) >= CYCLES, outcomes
    print(f"multipart uploads after {CYCLES} kill -9 cycles: {outcomes}")
