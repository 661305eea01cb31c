"""Every object and bucket operation of the S3 server, through boto3."""

import base64
import datetime
import hashlib
import zlib

import pytest
from botocore.exceptions import ClientError

from conftest import error_code, md5, status


def body_of(resp):
    return resp["Body"].read()


def test_put_get_with_metadata_and_system_headers(s3, bucket):
    data = b"hello billet" * 1000
    expires = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    put = s3.put_object(
        Bucket=bucket,
        Key="dir/hello.txt",
        Body=data,
        ContentType="text/plain; charset=utf-8",
        ContentEncoding="identity",
        ContentDisposition='attachment; filename="hello.txt"',
        ContentLanguage="en-GB",
        CacheControl="max-age=60",
        Expires=expires,
        Metadata={"Owner": "ann", "project": "x y"},
    )
    assert put["ETag"] == f'"{md5(data)}"'
    got = s3.get_object(Bucket=bucket, Key="dir/hello.txt")
    assert body_of(got) == data
    assert got["ETag"] == put["ETag"]
    assert got["ContentLength"] == len(data)
    assert got["ContentType"] == "text/plain; charset=utf-8"
    assert got["ContentEncoding"] == "identity"
    assert got["ContentDisposition"] == 'attachment; filename="hello.txt"'
    assert got["ContentLanguage"] == "en-GB"
    assert got["CacheControl"] == "max-age=60"
    assert got["Expires"] == expires
    assert got["Metadata"] == {"owner": "ann", "project": "x y"}
    head = s3.head_object(Bucket=bucket, Key="dir/hello.txt")
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == put["ETag"]
    assert head["Metadata"] == {"owner": "ann", "project": "x y"}


def test_empty_and_multi_chunk_bodies(s3, bucket):
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert body_of(got) == b""
    assert got["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'
    big = bytes(range(256)) * (3 * 4096 + 17)  # a little over 3 MiB: four chunks
    s3.put_object(Bucket=bucket, Key="big", Body=big)
    assert body_of(s3.get_object(Bucket=bucket, Key="big")) == big


def test_ranges(s3, bucket):
    data = bytes(i % 251 for i in range(2_500_000))
    s3.put_object(Bucket=bucket, Key="r", Body=data)
    for rng, want, content_range in [
        ("bytes=0-9", data[:10], "bytes 0-9/2500000"),
        ("bytes=1048570-1048600", data[1048570:1048601], "bytes 1048570-1048600/2500000"),
        ("bytes=2400000-", data[2400000:], "bytes 2400000-2499999/2500000"),
        ("bytes=-5", data[-5:], "bytes 2499995-2499999/2500000"),
        ("bytes=10-99999999", data[10:], "bytes 10-2499999/2500000"),
    ]:
        got = s3.get_object(Bucket=bucket, Key="r", Range=rng)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["ContentRange"] == content_range
        assert body_of(got) == want, rng
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=2500000-")
    assert error_code(e) == "InvalidRange" and status(e) == 416


def test_conditional_reads(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="c", Body=b"x")
    etag = put["ETag"]
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"x"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"0000"')
    assert status(e) == 412
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert status(e) == 304
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    earlier = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=later)
    assert status(e) == 304
    assert s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=earlier)["Body"].read() == b"x"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=earlier)
    assert status(e) == 412
    # If-Match wins over If-Unmodified-Since.
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag, IfUnmodifiedSince=earlier)["Body"].read() == b"x"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert status(e) == 304


def test_response_overrides(s3, bucket):
    s3.put_object(Bucket=bucket, Key="o", Body=b"x", ContentType="text/plain")
    got = s3.get_object(
        Bucket=bucket,
        Key="o",
        ResponseContentType="application/json",
        ResponseContentDisposition="inline",
        ResponseCacheControl="no-cache",
        ResponseContentLanguage="fr",
        ResponseContentEncoding="gzip",
    )
    assert got["ContentType"] == "application/json"
    assert got["ContentDisposition"] == "inline"
    assert got["CacheControl"] == "no-cache"
    assert got["ContentLanguage"] == "fr"
    assert got["ContentEncoding"] == "gzip"


def test_conditional_puts(s3, bucket):
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"1", IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"2", IfNoneMatch="*")
    assert error_code(e) == "PreconditionFailed" and status(e) == 412
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"2", IfMatch='"ffffffffffffffffffffffffffffffff"')
    assert status(e) == 412
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="absent", Body=b"2", IfMatch=first["ETag"])
    assert status(e) == 412
    s3.put_object(Bucket=bucket, Key="k", Body=b"2", IfMatch=first["ETag"])
    assert body_of(s3.get_object(Bucket=bucket, Key="k")) == b"2"


def test_content_md5(s3, bucket):
    data = b"payload"
    good = base64.b64encode(hashlib.md5(data).digest()).decode()
    s3.put_object(Bucket=bucket, Key="m", Body=data, ContentMD5=good)
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="m", Body=b"changed", ContentMD5=bad)
    assert error_code(e) == "BadDigest" and status(e) == 400
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="m", Body=b"changed", ContentMD5="not-base64!")
    assert error_code(e) == "InvalidDigest"
    # Nothing changed.
    assert body_of(s3.get_object(Bucket=bucket, Key="m")) == data


@pytest.mark.parametrize("algo", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"])
def test_checksums_are_verified_and_echoed(s3, bucket, algo):
    data = b"checksum me" * 100
    put = s3.put_object(Bucket=bucket, Key=f"c-{algo}", Body=data, ChecksumAlgorithm=algo)
    field = f"Checksum{algo}"
    assert put[field]
    got = s3.get_object(Bucket=bucket, Key=f"c-{algo}", ChecksumMode="ENABLED")
    assert got[field] == put[field]
    head = s3.head_object(Bucket=bucket, Key=f"c-{algo}", ChecksumMode="ENABLED")
    assert head[field] == put[field]
    if algo == "SHA256":
        assert put[field] == base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_default_trailing_checksum_matches_crc32(s3, bucket):
    # boto3 >= 1.36 sends a CRC32 in an aws-chunked trailer by default.
    data = b"trailer" * 5000
    s3.put_object(Bucket=bucket, Key="t", Body=data)
    got = s3.get_object(Bucket=bucket, Key="t", ChecksumMode="ENABLED")
    want = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    assert got.get("ChecksumCRC32") == want
    assert body_of(got) == data


def test_wrong_checksum_is_bad_digest_and_stores_nothing(s3, bucket):
    wrong = base64.b64encode((12345).to_bytes(4, "big")).decode()
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="w", Body=b"abc", ChecksumCRC32=wrong)
    assert error_code(e) == "BadDigest"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="w")
    assert status(e) == 404


def test_delete_and_delete_objects(s3, bucket):
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"d/{i}", Body=b"x")
    assert s3.delete_object(Bucket=bucket, Key="d/0")["ResponseMetadata"]["HTTPStatusCode"] == 204
    s3.delete_object(Bucket=bucket, Key="d/absent")  # deleting nothing succeeds
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "d/1"}, {"Key": "d/2"}, {"Key": "nope"}]})
    assert sorted(d["Key"] for d in out["Deleted"]) == ["d/1", "d/2", "nope"]
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "d/3"}], "Quiet": True})
    assert not out.get("Deleted")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["d/4"]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="d/0")
    assert error_code(e) == "NoSuchKey" and status(e) == 404


def test_copy_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"copy me", ContentType="text/plain", Metadata={"a": "1"})
    out = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert out["CopyObjectResult"]["ETag"] == f'"{md5(b"copy me")}"'
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert body_of(got) == b"copy me"
    assert got["Metadata"] == {"a": "1"} and got["ContentType"] == "text/plain"
    s3.copy_object(
        Bucket=bucket,
        Key="dst2",
        CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE",
        ContentType="application/x-new",
        Metadata={"b": "2"},
    )
    got = s3.get_object(Bucket=bucket, Key="dst2")
    assert got["Metadata"] == {"b": "2"} and got["ContentType"] == "application/x-new"
    other = bucket + "-other"
    s3.create_bucket(Bucket=other)
    s3.copy_object(Bucket=other, Key="x", CopySource={"Bucket": bucket, "Key": "src"})
    assert body_of(s3.get_object(Bucket=other, Key="x")) == b"copy me"
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"})
    assert error_code(e) == "InvalidRequest"
    s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"}, MetadataDirective="REPLACE", Metadata={"c": "3"})
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"c": "3"}
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="y", CopySource={"Bucket": bucket, "Key": "absent"})
    assert error_code(e) == "NoSuchKey"
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="y", CopySource={"Bucket": bucket, "Key": "src"}, CopySourceIfMatch='"0"')
    assert status(e) == 412


def all_v2(s3, **kw):
    keys, prefixes, token = [], [], None
    while True:
        args = dict(kw)
        if token:
            args["ContinuationToken"] = token
        page = s3.list_objects_v2(**args)
        keys += [o["Key"] for o in page.get("Contents", [])]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        assert page["KeyCount"] == len(page.get("Contents", [])) + len(page.get("CommonPrefixes", []))
        if not page["IsTruncated"]:
            return keys, prefixes
        token = page["NextContinuationToken"]


def test_listing(s3, bucket):
    # Bytewise (UTF-8) order: "z" (0x7a) sorts before "é" (0xc3 0xa9).
    keys = ["a", "a/b", "a/c/d", "b", "c d/e", "z", "é/ü"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    assert all_v2(s3, Bucket=bucket) == (keys, [])
    assert all_v2(s3, Bucket=bucket, MaxKeys=1) == (keys, [])
    assert all_v2(s3, Bucket=bucket, Delimiter="/") == (["a", "b", "z"], ["a/", "c d/", "é/"])
    assert all_v2(s3, Bucket=bucket, Delimiter="/", MaxKeys=1) == (["a", "b", "z"], ["a/", "c d/", "é/"])
    assert all_v2(s3, Bucket=bucket, Prefix="a/", Delimiter="/") == (["a/b"], ["a/c/"])
    assert all_v2(s3, Bucket=bucket, StartAfter="b") == (["c d/e", "z", "é/ü"], [])
    page = s3.list_objects_v2(Bucket=bucket, MaxKeys=0)
    assert page["KeyCount"] == 0 and not page["IsTruncated"]
    page = s3.list_objects_v2(Bucket=bucket, Prefix="c d/", FetchOwner=True)
    assert page["Contents"][0]["Owner"]["ID"]
    assert page["Contents"][0]["Size"] == 1 and page["Contents"][0]["StorageClass"] == "STANDARD"
    # v1, with markers.
    page = s3.list_objects(Bucket=bucket, MaxKeys=2)
    assert [o["Key"] for o in page["Contents"]] == ["a", "a/b"] and page["IsTruncated"]
    page = s3.list_objects(Bucket=bucket, Marker="a/b", Delimiter="/")
    assert [o["Key"] for o in page["Contents"]] == ["b", "z"]
    # The marker lies inside a/, which an earlier page returned.
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["c d/", "é/"]
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket=bucket, ContinuationToken="!!!")
    assert error_code(e) == "InvalidArgument"


def test_listing_url_encoding(s3, bucket):
    s3.put_object(Bucket=bucket, Key="sp ace/ü+x", Body=b"x")
    # boto3 asks for url encoding and decodes it itself.
    page = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in page["Contents"]] == ["sp ace/ü+x"]
    page = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["sp ace/"]


def test_buckets(s3):
    name = "bk-lifecycle-test"
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="kept", Body=b"k")
    # In us-east-1 a repeated create by the owner succeeds and changes nothing.
    assert s3.create_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.get_object(Bucket=name, Key="kept")["Body"].read() == b"k"
    s3.delete_object(Bucket=name, Key="kept")
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=name)
    assert s3.get_bucket_location(Bucket=name).get("LocationConstraint") in (None, "")
    s3.put_object(Bucket=name, Key="x", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=name)
    assert error_code(e) == "BucketNotEmpty" and status(e) == 409
    s3.delete_object(Bucket=name, Key="x")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert status(e) == 404
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket=name)
    assert error_code(e) == "NoSuchBucket"
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=name, Key="x", Body=b"x")
    assert error_code(e) == "NoSuchBucket"


@pytest.mark.parametrize("name", ["ab", "UPPER", "has_underscore", "-dash", "a" * 64, "192.168.1.1", "dot..dot"])
def test_invalid_bucket_names(s3, name):
    with pytest.raises((ClientError, Exception)) as e:
        s3.create_bucket(Bucket=name)
    if isinstance(e.value, ClientError):
        assert error_code(e) == "InvalidBucketName"
        assert e.value.response["Error"]["Message"] == "The specified bucket is not valid."
        assert e.value.response["ResponseMetadata"]["RequestId"]
    # botocore rejects some names before sending; either way none exists.
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_key_limits(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k" * 1024, Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k" * 1025, Body=b"x")
    assert error_code(e) == "KeyTooLongError"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["k" * 1024]


def test_empty_put_does_not_stall_the_next_request_on_the_connection(server):
    # botocore sends "Expect: 100-continue" with empty bodies and mishandles a
    # final answer without an interim 100 on a pooled connection
    # (boto/botocore#3755): the next PUT would hang until the read timeout.
    s3 = server.client(read_timeout=10, max_pool_connections=1)
    s3.create_bucket(Bucket="expect-empty")
    for i in range(3):
        assert s3.put_object(Bucket="expect-empty", Key=f"empty{i}", Body=b"")["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'
        assert s3.put_object(Bucket="expect-empty", Key=f"full{i}", Body=b"x" * 1000)["ETag"] == f'"{md5(b"x" * 1000)}"'
