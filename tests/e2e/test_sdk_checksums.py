"""Checksums as current SDKs use them: the AWS SDK for JavaScript v3
(pinned in tests/sdk-js) and boto3, each with its default integrity
settings, upload single objects and multipart objects and read them back
with response validation on. S3's rules: FULL_OBJECT values are the
body's checksum; COMPOSITE values end in `-N` (the part count), which
tells SDKs not to check them against the body; `x-amz-checksum-type`
always comes with them."""

import base64
import io
import json
import os
import shutil
import subprocess
import uuid
import zlib

import pytest
from boto3.s3.transfer import TransferConfig

from conftest import ACCESS_KEY, ROOT, SECRET_KEY

MIB = 1 << 20
SDK_JS = ROOT / "tests" / "sdk-js"


@pytest.mark.skipif(shutil.which("node") is None, reason="node missing")
def test_aws_sdk_for_javascript_reads_back_what_it_wrote(server, s3):
    assert (SDK_JS / "node_modules" / "@aws-sdk" / "client-s3").is_dir(), "run `npm ci --prefix tests/sdk-js` (the test command does)"
    bucket = "js-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=bucket)
    out = subprocess.run(
        ["node", str(SDK_JS / "checksums.mjs"), server.endpoint, ACCESS_KEY, SECRET_KEY, bucket],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = {r["key"]: r for r in map(json.loads, out.stdout.splitlines())}
    assert len(rows) == 14, rows.keys()
    for key, r in rows.items():
        # GET and HEAD agree, and say how the value was formed.
        assert r["checksums"] == r["headChecksums"], key
        kind = r["checksums"]["ChecksumType"]
        values = [v for k, v in r["checksums"].items() if k != "ChecksumType"]
        assert len(values) == 1, (key, r)
        if kind == "COMPOSITE":
            assert values[0].endswith("-5"), (key, r)
        else:
            assert kind == "FULL_OBJECT" and "-" not in values[0], (key, r)
    # Single PUTs are full-object; lib-storage's default (CRC32) and the
    # named algorithms are composite, CRC64NVME and FULL_OBJECT uploads
    # full-object, with Complete answering what GET does.
    for key, r in rows.items():
        if key.startswith("single/"):
            assert r["checksums"]["ChecksumType"] == "FULL_OBJECT", key
        else:
            assert r["complete"] == r["checksums"], key
    assert rows["multipart/default"]["checksums"]["ChecksumType"] == "COMPOSITE"
    assert "ChecksumCRC32" in rows["multipart/default"]["checksums"]
    assert rows["multipart/CRC64NVME"]["checksums"]["ChecksumType"] == "FULL_OBJECT"
    assert rows["multipart/CRC32-FULL_OBJECT"]["checksums"]["ChecksumType"] == "FULL_OBJECT"


def test_boto3_defaults_read_back_with_validation(s3, bucket):
    # A single PUT with botocore's default CRC32, checked on the way back.
    data = os.urandom(3 * MIB + 5)
    put = s3.put_object(Bucket=bucket, Key="one", Body=data)
    got = s3.get_object(Bucket=bucket, Key="one", ChecksumMode="ENABLED")
    assert got["Body"].read() == data
    crc = zlib.crc32(data).to_bytes(4, "big")
    assert got["ChecksumCRC32"] == put["ChecksumCRC32"] == base64.b64encode(crc).decode()
    assert got["ChecksumType"] == "FULL_OBJECT"

    # s3transfer's multipart upload with its defaults, read back whole.
    data = os.urandom(23 * MIB)
    cfg = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=2)
    s3.upload_fileobj(io.BytesIO(data), bucket, "many", Config=cfg)
    got = s3.get_object(Bucket=bucket, Key="many", ChecksumMode="ENABLED")
    assert got["Body"].read() == data
    head = s3.head_object(Bucket=bucket, Key="many", ChecksumMode="ENABLED")
    assert head["ETag"].endswith('-5"')
    kinds = {k: v for k, v in head.items() if k.startswith("Checksum")}
    assert kinds["ChecksumType"] in ("COMPOSITE", "FULL_OBJECT"), kinds
    value = next(v for k, v in kinds.items() if k != "ChecksumType")
    assert value.endswith("-5") == (kinds["ChecksumType"] == "COMPOSITE"), kinds

    # Without any checksum from the client, S3's default: CRC64NVME.
    mp = s3.create_multipart_upload(Bucket=bucket, Key="plain")
    assert mp["ChecksumAlgorithm"] == "CRC64NVME" and mp["ChecksumType"] == "FULL_OBJECT"
    part = os.urandom(5 * MIB)
    e1 = s3.upload_part(Bucket=bucket, Key="plain", UploadId=mp["UploadId"], PartNumber=1, Body=part)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="plain", UploadId=mp["UploadId"], PartNumber=2, Body=b"tail")["ETag"]
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="plain",
        UploadId=mp["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    assert done["ChecksumType"] == "FULL_OBJECT" and "-" not in done["ChecksumCRC64NVME"]
    got = s3.get_object(Bucket=bucket, Key="plain", ChecksumMode="ENABLED")
    assert got["Body"].read() == part + b"tail"
    assert got["ChecksumCRC64NVME"] == done["ChecksumCRC64NVME"]
