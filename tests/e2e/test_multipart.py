"""Multipart uploads through boto3: every operation and every error."""

import base64
import hashlib
import random
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import Server, error_code, md5, status

MIB = 1 << 20


def body(seed, size):
    return random.Random(seed).randbytes(size)


def multipart_etag(parts):
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f'"{digest}-{len(parts)}"'


def start(s3, bucket, key, **kw):
    return s3.create_multipart_upload(Bucket=bucket, Key=key, **kw)["UploadId"]


def put_part(s3, bucket, key, uid, n, data, **kw):
    return s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=data, **kw)["ETag"]


def complete(s3, bucket, key, uid, parts, **kw):
    return s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]},
        **kw,
    )


def test_parts_out_of_order_and_concurrent_with_a_replaced_part(s3, bucket):
    sizes = [5 * MIB + 17, 5 * MIB, 6 * MIB + 3, 5 * MIB + 1, 123_457]
    parts = [body(i, n) for i, n in enumerate(sizes)]
    uid = start(s3, bucket, "big.bin", ContentType="application/x-test", Metadata={"origin": "mp"})
    # A first version of part 3, replaced before Complete.
    stale = put_part(s3, bucket, "big.bin", uid, 3, body(99, 5 * MIB))
    order = [4, 2, 0, 3, 1]
    with ThreadPoolExecutor(max_workers=5) as pool:
        etags = dict(pool.map(lambda i: (i + 1, put_part(s3, bucket, "big.bin", uid, i + 1, parts[i])), order))
    assert etags[3] != stale
    assert etags[3] == f'"{md5(parts[2])}"'
    listed = s3.list_parts(Bucket=bucket, Key="big.bin", UploadId=uid)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3, 4, 5]
    assert [p["Size"] for p in listed["Parts"]] == sizes
    out = complete(s3, bucket, "big.bin", uid, sorted(etags.items()))
    assert out["ETag"] == multipart_etag(parts)
    whole = b"".join(parts)
    got = s3.get_object(Bucket=bucket, Key="big.bin")
    assert got["Body"].read() == whole
    assert got["ETag"] == multipart_etag(parts)
    assert got["ContentType"] == "application/x-test"
    assert got["Metadata"] == {"origin": "mp"}
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == len(whole) and head["PartsCount"] == 5
    # A range across the boundaries of parts 1, 2 and 3.
    a, b = sizes[0] - 10, sizes[0] + sizes[1] + 10
    r = s3.get_object(Bucket=bucket, Key="big.bin", Range=f"bytes={a}-{b}")
    assert r["Body"].read() == whole[a : b + 1]
    assert r["ContentRange"] == f"bytes {a}-{b}/{len(whole)}"
    # partNumber reads.
    p2 = s3.get_object(Bucket=bucket, Key="big.bin", PartNumber=2)
    assert p2["Body"].read() == parts[1]
    assert p2["PartsCount"] == 5
    assert p2["ContentRange"] == f"bytes {sizes[0]}-{sizes[0] + sizes[1] - 1}/{len(whole)}"
    assert s3.head_object(Bucket=bucket, Key="big.bin", PartNumber=5)["ContentLength"] == sizes[4]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="big.bin", PartNumber=6)
    assert error_code(e) == "InvalidPartNumber" and status(e) == 400
    # The upload is gone once completed.
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="big.bin", UploadId=uid)
    assert error_code(e) == "NoSuchUpload"
    uploads = s3.list_multipart_uploads(Bucket=bucket)
    assert uid not in [u["UploadId"] for u in uploads.get("Uploads", [])]


def test_part_number_of_a_plain_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="plain", Body=b"hello")
    assert s3.get_object(Bucket=bucket, Key="plain", PartNumber=1)["Body"].read() == b"hello"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="plain", PartNumber=2)
    assert error_code(e) == "InvalidPartNumber" and status(e) == 400


def test_complete_errors(s3, bucket):
    key = "errs"
    uid = start(s3, bucket, key)
    p1 = put_part(s3, bucket, key, uid, 1, body(1, 5 * MIB))
    p2 = put_part(s3, bucket, key, uid, 2, body(2, 1000))
    p3 = put_part(s3, bucket, key, uid, 3, body(3, 1000))
    cases = [
        ([(1, p1), (2, '"00000000000000000000000000000000"')], "InvalidPart"),
        ([(1, p1), (4, p2)], "InvalidPart"),
        ([(2, p2), (1, p1)], "InvalidPartOrder"),
        ([(1, p1), (2, p2), (3, p3)], "EntityTooSmall"),
    ]
    for parts, code in cases:
        with pytest.raises(ClientError) as e:
            complete(s3, bucket, key, uid, parts)
        assert error_code(e) == code, parts
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": []})
    assert error_code(e) == "MalformedXML"
    # Failed Completes stored nothing and kept the upload.
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    assert status(e) == 404
    assert len(s3.list_parts(Bucket=bucket, Key=key, UploadId=uid)["Parts"]) == 3
    out = complete(s3, bucket, key, uid, [(1, p1), (2, p2)])
    assert out["ETag"] == multipart_etag([body(1, 5 * MIB), body(2, 1000)])
    # Completing twice answers the same (SDKs retry Complete); the upload
    # itself is gone.
    assert complete(s3, bucket, key, uid, [(1, p1), (2, p2)])["ETag"] == out["ETag"]
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key=key, UploadId=uid)
    assert error_code(e) == "NoSuchUpload"


def test_unknown_uploads_and_bad_part_numbers(s3, bucket):
    for call in [
        lambda: s3.upload_part(Bucket=bucket, Key="k", UploadId="nope", PartNumber=1, Body=b"x"),
        lambda: s3.list_parts(Bucket=bucket, Key="k", UploadId="nope"),
        lambda: s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId="nope"),
        lambda: complete(s3, bucket, "k", "nope", [(1, '"x"')]),
    ]:
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "NoSuchUpload"
    uid = start(s3, bucket, "k")
    # The upload id belongs to another key.
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="other", UploadId=uid, PartNumber=1, Body=b"x")
    assert error_code(e) == "NoSuchUpload"
    for n in (0, 10001):
        with pytest.raises(ClientError) as e:
            s3.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=n, Body=b"x")
        assert error_code(e) == "InvalidArgument", n
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=1, Body=b"abc", ContentMD5=base64.b64encode(hashlib.md5(b"abd").digest()).decode())
    assert error_code(e) == "BadDigest"
    assert s3.list_parts(Bucket=bucket, Key="k", UploadId=uid).get("Parts", []) == []
    with pytest.raises(ClientError) as e:
        s3.create_multipart_upload(Bucket="no-such-bucket-here", Key="k")
    assert error_code(e) == "NoSuchBucket"


def test_abort_and_list_uploads_with_markers(s3, bucket):
    ids = {}
    for key in ["a/1", "a/2", "b/1", "c"]:
        ids[key] = start(s3, bucket, key)
    second = start(s3, bucket, "a/1")
    put_part(s3, bucket, "c", ids["c"], 1, b"part")
    listed = s3.list_multipart_uploads(Bucket=bucket)
    assert sorted(u["Key"] for u in listed["Uploads"]) == ["a/1", "a/1", "a/2", "b/1", "c"]
    # Paging one upload at a time walks every upload exactly once.
    seen, kw = [], {}
    while True:
        page = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=1, **kw)
        seen += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
        if not page["IsTruncated"]:
            break
        kw = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}
    assert sorted(seen) == sorted([(k, v) for k, v in ids.items()] + [("a/1", second)])
    delim = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in delim["CommonPrefixes"]] == ["a/", "b/"]
    assert [u["Key"] for u in delim["Uploads"]] == ["c"]
    s3.abort_multipart_upload(Bucket=bucket, Key="c", UploadId=ids["c"])
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="c", UploadId=ids["c"], PartNumber=2, Body=b"late")
    assert error_code(e) == "NoSuchUpload"
    with pytest.raises(ClientError) as e:
        s3.abort_multipart_upload(Bucket=bucket, Key="c", UploadId=ids["c"])
    assert error_code(e) == "NoSuchUpload"
    left = [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]]
    assert ids["c"] not in left and len(left) == 4


def test_list_parts_pages(s3, bucket):
    uid = start(s3, bucket, "many")
    for n in range(1, 8):
        put_part(s3, bucket, "many", uid, n, f"part {n}".encode())
    got, marker = [], 0
    while True:
        page = s3.list_parts(Bucket=bucket, Key="many", UploadId=uid, MaxParts=3, PartNumberMarker=marker)
        got += [p["PartNumber"] for p in page["Parts"]]
        if not page["IsTruncated"]:
            break
        marker = page["NextPartNumberMarker"]
    assert got == list(range(1, 8))


def test_complete_and_abort_race_has_one_winner(s3, bucket):
    data = body(5, 1000)
    for i in range(12):
        key = f"race-{i}"
        uid = start(s3, bucket, key)
        etag = put_part(s3, bucket, key, uid, 1, data)

        def do_complete():
            try:
                complete(s3, bucket, key, uid, [(1, etag)])
                return "completed"
            except ClientError as e:
                return error_code_of(e)

        def do_abort():
            try:
                s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=uid)
                return "aborted"
            except ClientError as e:
                return error_code_of(e)

        with ThreadPoolExecutor(max_workers=2) as pool:
            results = sorted(f.result() for f in [pool.submit(do_complete), pool.submit(do_abort)])
        exists = True
        try:
            s3.head_object(Bucket=bucket, Key=key)
        except ClientError:
            exists = False
        assert results in (["NoSuchUpload", "completed"], ["NoSuchUpload", "aborted"]), results
        assert exists == ("completed" in results)


def error_code_of(e):
    return e.response["Error"]["Code"]


def test_upload_part_copy_with_ranges(s3, bucket):
    src = body(11, 16 * MIB + 5)
    s3.put_object(Bucket=bucket, Key="src", Body=src)
    uid = start(s3, bucket, "copied")
    ranges = [(0, 5 * MIB - 1), (5 * MIB, 11 * MIB - 1), (11 * MIB, len(src) - 1)]
    etags = []
    for n, (a, b) in enumerate(ranges, 1):
        out = s3.upload_part_copy(
            Bucket=bucket, Key="copied", UploadId=uid, PartNumber=n,
            CopySource={"Bucket": bucket, "Key": "src"}, CopySourceRange=f"bytes={a}-{b}",
        )
        assert out["CopyPartResult"]["ETag"] == f'"{md5(src[a:b + 1])}"'
        etags.append((n, out["CopyPartResult"]["ETag"]))
    # A part copied whole from a small object, as the last part.
    s3.put_object(Bucket=bucket, Key="tail", Body=b"tail bytes")
    out = s3.upload_part_copy(Bucket=bucket, Key="copied", UploadId=uid, PartNumber=4, CopySource=f"{bucket}/tail")
    etags.append((4, out["CopyPartResult"]["ETag"]))
    complete(s3, bucket, "copied", uid, etags)
    assert s3.get_object(Bucket=bucket, Key="copied")["Body"].read() == src + b"tail bytes"
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(
            Bucket=bucket, Key="copied", UploadId=start(s3, bucket, "copied"), PartNumber=1,
            CopySource={"Bucket": bucket, "Key": "src"}, CopySourceRange=f"bytes=0-{len(src)}",
        )
    assert error_code(e) == "InvalidRange"


def test_composite_and_full_object_checksums(s3, bucket):
    parts = [body(21, 5 * MIB), body(22, 1234)]
    # Composite SHA-256: the checksum of the parts' checksums, with -N.
    uid = start(s3, bucket, "sha", ChecksumAlgorithm="SHA256")
    etags = []
    for n, p in enumerate(parts, 1):
        out = s3.upload_part(Bucket=bucket, Key="sha", UploadId=uid, PartNumber=n, Body=p, ChecksumAlgorithm="SHA256")
        assert out["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(p).digest()).decode()
        etags.append({"PartNumber": n, "ETag": out["ETag"], "ChecksumSHA256": out["ChecksumSHA256"]})
    out = s3.complete_multipart_upload(Bucket=bucket, Key="sha", UploadId=uid, MultipartUpload={"Parts": etags})
    joined = b"".join(hashlib.sha256(p).digest() for p in parts)
    assert out["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(joined).digest()).decode() + "-2"
    head = s3.head_object(Bucket=bucket, Key="sha", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"].startswith(base64.b64encode(hashlib.sha256(joined).digest()).decode())
    # Full-object CRC32: combined from the parts' CRCs, equal to the CRC of the whole.
    uid = start(s3, bucket, "crc", ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
    etags = []
    for n, p in enumerate(parts, 1):
        out = s3.upload_part(Bucket=bucket, Key="crc", UploadId=uid, PartNumber=n, Body=p, ChecksumAlgorithm="CRC32")
        etags.append({"PartNumber": n, "ETag": out["ETag"], "ChecksumCRC32": out["ChecksumCRC32"]})
    out = s3.complete_multipart_upload(Bucket=bucket, Key="crc", UploadId=uid, MultipartUpload={"Parts": etags})
    whole = zlib.crc32(b"".join(parts)).to_bytes(4, "big")
    assert out["ChecksumCRC32"] == base64.b64encode(whole).decode()
    # A part checksum that does not match what was uploaded.
    uid = start(s3, bucket, "bad", ChecksumAlgorithm="CRC32")
    out = s3.upload_part(Bucket=bucket, Key="bad", UploadId=uid, PartNumber=1, Body=b"abc", ChecksumAlgorithm="CRC32")
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="bad", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": out["ETag"], "ChecksumCRC32": "AAAAAA=="}]},
        )
    assert error_code(e) == "InvalidPart"


def test_tags_and_conditions_on_complete(s3, bucket):
    uid = start(s3, bucket, "tagged", Tagging="team=storage&tier=cold")
    e1 = put_part(s3, bucket, "tagged", uid, 1, b"only part")
    complete(s3, bucket, "tagged", uid, [(1, e1)])
    tags = s3.get_object_tagging(Bucket=bucket, Key="tagged")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("team", "storage"), ("tier", "cold")]
    # If-None-Match: * on Complete refuses to overwrite.
    uid = start(s3, bucket, "tagged")
    e1 = put_part(s3, bucket, "tagged", uid, 1, b"second")
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, "tagged", uid, [(1, e1)], IfNoneMatch="*")
    assert status(e) == 412
    assert s3.get_object(Bucket=bucket, Key="tagged")["Body"].read() == b"only part"


def test_abandoned_uploads_expire(tmp_path):
    cfg = tmp_path / "billet.toml"
    cfg.write_text("upload_expiry_secs = 2\n")
    server = Server(tmp_path / "data", extra_args=["--config", str(cfg)]).start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="exp")
        uid = start(s3, "exp", "k")
        put_part(s3, "exp", "k", uid, 1, b"abandoned")
        deadline = time.time() + 60
        while time.time() < deadline and s3.list_multipart_uploads(Bucket="exp").get("Uploads"):
            time.sleep(0.5)
        assert not s3.list_multipart_uploads(Bucket="exp").get("Uploads")
        with pytest.raises(ClientError) as e:
            s3.upload_part(Bucket="exp", Key="k", UploadId=uid, PartNumber=2, Body=b"x")
        assert error_code(e) == "NoSuchUpload"
    finally:
        assert server.stop() == 0, server.log_text()
