"""S3 behaviours real clients depend on, each against the real binary:
conditional writes decided atomically in the bucket's pipeline, retried and
re-sent multipart completions, presigned URL errors, chunked uploads of
unknown length, encodings, listings, ListBuckets pages and
GetObjectAttributes."""

import base64
import hashlib
import os
import re
import subprocess
import threading
import time
import uuid
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError

from conftest import error_code, md5, status
from rawhttp import connect, head_bytes, presign, read_response, request, sign

MIB = 1024 * 1024


def raw(server, method, path, body=b"", headers=None, payload=None):
    """A header-signed request sent as is; (status, headers, body)."""
    url = server.endpoint + path
    h = sign(method, url, body=body, headers=headers, payload=payload)
    if body and "Content-Length" not in h:
        h["Content-Length"] = str(len(body))
    return request(server.port, method, path, h, body)


def answer(e):
    """(status, code) of a ClientError caught outside pytest.raises."""
    return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]


def chunked(chunks):
    """A Transfer-Encoding: chunked body."""
    out = b""
    for c in chunks:
        out += f"{len(c):x}\r\n".encode() + c + b"\r\n"
    return out + b"0\r\n\r\n"


def put_unsized(server, path, chunks, payload):
    """A PUT streamed with Transfer-Encoding: chunked and no Content-Length."""
    url = server.endpoint + path
    h = sign("PUT", url, headers={"Transfer-Encoding": "chunked"}, payload=payload)
    h.pop("Content-Length", None)
    with connect(server.port) as s:
        s.sendall(head_bytes("PUT", path, h) + chunked(chunks))
        return read_response(s, "PUT")


# Conditional writes


def test_racing_conditional_puts_have_exactly_one_winner(s3, bucket):
    results = {}

    def put(i):
        try:
            s3.put_object(Bucket=bucket, Key="race", Body=f"writer {i}".encode(), IfNoneMatch="*")
            results[i] = 200
        except ClientError as e:
            results[i] = answer(e)

    threads = [threading.Thread(target=put, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    winners = [i for i, r in results.items() if r == 200]
    assert len(results) == 16 and len(winners) == 1, results
    assert all(r == (412, "PreconditionFailed") for i, r in results.items() if i != winners[0]), results
    assert s3.get_object(Bucket=bucket, Key="race")["Body"].read() == f"writer {winners[0]}".encode()

    # If-Match: of writers all holding the same ETag, only the first lands.
    etag = s3.head_object(Bucket=bucket, Key="race")["ETag"]
    results.clear()

    def replace(i):
        try:
            s3.put_object(Bucket=bucket, Key="race", Body=f"replacer {i}".encode(), IfMatch=etag)
            results[i] = 200
        except ClientError as e:
            results[i] = answer(e)

    threads = [threading.Thread(target=replace, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    winners = [i for i, r in results.items() if r == 200]
    assert len(winners) == 1, results
    assert s3.get_object(Bucket=bucket, Key="race")["Body"].read() == f"replacer {winners[0]}".encode()


def test_conditional_deletes_and_completes(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"one")
    etag = s3.head_object(Bucket=bucket, Key="k")["ETag"]
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=bucket, Key="k", IfMatch='"' + "0" * 32 + '"')
    assert (status(e), error_code(e)) == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"one"
    assert s3.delete_object(Bucket=bucket, Key="k", IfMatch=etag)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="k")
    assert status(e) == 404
    # A conditional delete of nothing fails rather than succeeding vacuously.
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=bucket, Key="k", IfMatch=etag)
    assert status(e) == 412

    s3.put_object(Bucket=bucket, Key="m", Body=b"taken")
    uid = s3.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
    p = s3.upload_part(Bucket=bucket, Key="m", UploadId=uid, PartNumber=1, Body=b"new")
    parts = {"Parts": [{"PartNumber": 1, "ETag": p["ETag"]}]}
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=uid, MultipartUpload=parts, IfNoneMatch="*")
    assert (status(e), error_code(e)) == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="m")["Body"].read() == b"taken"
    done = s3.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=uid, MultipartUpload=parts,
                                        IfMatch=s3.head_object(Bucket=bucket, Key="m")["ETag"])
    assert s3.get_object(Bucket=bucket, Key="m")["ETag"] == done["ETag"]


# Multipart completion


@pytest.mark.parametrize("versioned", [False, True])
def test_a_complete_retried_after_success_answers_the_same(s3, bucket, versioned):
    if versioned:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    uid = s3.create_multipart_upload(Bucket=bucket, Key="dir/big obj", ChecksumAlgorithm="CRC32")["UploadId"]
    bodies = [os.urandom(5 * MIB), os.urandom(1000)]
    parts = []
    for n, b in enumerate(bodies, 1):
        r = s3.upload_part(Bucket=bucket, Key="dir/big obj", UploadId=uid, PartNumber=n, Body=b, ChecksumAlgorithm="CRC32")
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
    args = dict(Bucket=bucket, Key="dir/big obj", UploadId=uid, MultipartUpload={"Parts": parts})
    first = s3.complete_multipart_upload(**args)
    if versioned:
        # A later version does not hide the one the upload made.
        s3.put_object(Bucket=bucket, Key="dir/big obj", Body=b"later")
    again = s3.complete_multipart_upload(**args)
    for field in ("ETag", "Location", "Bucket", "Key", "VersionId", "ChecksumCRC32", "ChecksumType"):
        assert again.get(field) == first.get(field), field
    assert first["ETag"].endswith('-2"') and (first.get("VersionId") is not None) == versioned
    # The retry changed nothing.
    got = s3.get_object(Bucket=bucket, Key="dir/big obj", **({"VersionId": first["VersionId"]} if versioned else {}))
    assert got["Body"].read() == b"".join(bodies)
    if not versioned:
        # Overwritten: the upload's object is gone, and so is the answer.
        s3.put_object(Bucket=bucket, Key="dir/big obj", Body=b"later")
        with pytest.raises(ClientError) as e:
            s3.complete_multipart_upload(**args)
        assert error_code(e) == "NoSuchUpload"
    # An upload id that never completed is still unknown.
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(**{**args, "UploadId": "no-such-upload"})
    assert error_code(e) == "NoSuchUpload"


def test_a_part_sent_again_counts_once_as_listed_last(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="resent")["UploadId"]
    p1 = os.urandom(5 * MIB)
    e1 = s3.upload_part(Bucket=bucket, Key="resent", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
    first = s3.upload_part(Bucket=bucket, Key="resent", UploadId=uid, PartNumber=2, Body=b"first send")["ETag"]
    second = s3.upload_part(Bucket=bucket, Key="resent", UploadId=uid, PartNumber=2, Body=b"second send")["ETag"]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="resent", UploadId=uid, MultipartUpload={"Parts": [
            {"PartNumber": 2, "ETag": second}, {"PartNumber": 1, "ETag": e1}]})
    assert error_code(e) == "InvalidPartOrder"
    # The client lists both sends of part 2, the last one last.
    done = s3.complete_multipart_upload(Bucket=bucket, Key="resent", UploadId=uid, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": first}, {"PartNumber": 2, "ETag": second}]})
    assert done["ETag"].endswith('-2"')
    assert s3.get_object(Bucket=bucket, Key="resent")["Body"].read() == p1 + b"second send"


# Requests that arrive in forms S3 accepts


def test_a_put_of_unknown_length_streams_in(server, s3, bucket):
    chunks = [os.urandom(700_000) for _ in range(5)]
    whole = b"".join(chunks)
    code, _, body = put_unsized(server, f"/{bucket}/unsized", chunks, "UNSIGNED-PAYLOAD")
    assert code == 200, body
    got = s3.get_object(Bucket=bucket, Key="unsized")
    assert got["ContentLength"] == len(whole) and got["Body"].read() == whole
    # A signed payload hash is checked once the body is in.
    code, _, _ = put_unsized(server, f"/{bucket}/signed", chunks, hashlib.sha256(whole).hexdigest())
    assert code == 200 and s3.get_object(Bucket=bucket, Key="signed")["Body"].read() == whole
    code, _, body = put_unsized(server, f"/{bucket}/lied", chunks, hashlib.sha256(b"other").hexdigest())
    assert code == 400 and b"XAmzContentSHA256Mismatch" in body
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="lied")
    assert status(e) == 404
    # A part of unknown length, too.
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    code, headers, body = put_unsized(server, f"/{bucket}/mp?partNumber=1&uploadId={uid}", chunks, "UNSIGNED-PAYLOAD")
    assert code == 200, body
    assert headers["etag"] == f'"{md5(whole)}"'
    # A subresource's XML body still has to say how long it is.
    code, _, body = put_unsized(server, f"/{bucket}?tagging", [b"<Tagging/>"], "UNSIGNED-PAYLOAD")
    assert code == 411 and b"MissingContentLength" in body


def test_aws_chunked_is_not_kept_as_a_content_encoding(server, s3, bucket):
    code, _, body = raw(server, "PUT", f"/{bucket}/gz", body=b"\x1f\x8b data",
                        headers={"Content-Encoding": "gzip, aws-chunked"}, payload="UNSIGNED-PAYLOAD")
    assert code == 200, body
    assert s3.head_object(Bucket=bucket, Key="gz")["ContentEncoding"] == "gzip"
    code, _, _ = raw(server, "PUT", f"/{bucket}/plain", body=b"x",
                     headers={"Content-Encoding": "aws-chunked"}, payload="UNSIGNED-PAYLOAD")
    assert code == 200 and "ContentEncoding" not in s3.head_object(Bucket=bucket, Key="plain")


def test_non_ascii_metadata_round_trips_as_rfc_2047(server, s3, bucket):
    value = "Grüße, 世界"
    encoded = "=?UTF-8?B?" + base64.b64encode(value.encode()).decode() + "?="
    code, _, body = raw(server, "PUT", f"/{bucket}/meta", body=b"x",
                        headers={"x-amz-meta-name": encoded, "x-amz-meta-plain": "ascii"}, payload="UNSIGNED-PAYLOAD")
    assert code == 200, body

    def decoded(headers):
        m = re.fullmatch(r"=\?UTF-8\?B\?(.*)\?=", headers["x-amz-meta-name"], re.I)
        return base64.b64decode(m.group(1)).decode() if m else headers["x-amz-meta-name"]

    for method in ("HEAD", "GET"):
        code, headers, _ = raw(server, method, f"/{bucket}/meta")
        assert code == 200 and decoded(headers) == value and headers["x-amz-meta-plain"] == "ascii"
    # Copies and multipart uploads keep it too.
    s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "meta"})
    code, headers, _ = raw(server, "HEAD", f"/{bucket}/copied")
    assert decoded(headers) == value
    code, _, body = raw(server, "POST", f"/{bucket}/mp?uploads", headers={"x-amz-meta-name": encoded})
    uid = re.search(rb"<UploadId>(.*?)</UploadId>", body).group(1).decode()
    etag = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=b"p")["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    code, headers, _ = raw(server, "HEAD", f"/{bucket}/mp")
    assert decoded(headers) == value


# Answers


def test_presigned_urls_tell_expired_from_malformed(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="p", Body=b"p")
    url = presign("GET", f"{server.endpoint}/{bucket}/p", expires=1)
    time.sleep(2.5)
    code, _, body = request(server.port, "GET", url.split(server.endpoint, 1)[1], {"Host": f"127.0.0.1:{server.port}"})
    assert code == 403 and b"<Code>AccessDenied</Code>" in body, body
    fresh = presign("GET", f"{server.endpoint}/{bucket}/p", expires=300)
    for bad in ("abc", "0", "-5", "604801"):
        target = fresh.split(server.endpoint, 1)[1].replace("X-Amz-Expires=300", f"X-Amz-Expires={bad}")
        code, _, body = request(server.port, "GET", target, {"Host": f"127.0.0.1:{server.port}"})
        assert code == 400 and b"<Code>AuthorizationQueryParametersError</Code>" in body, (bad, body)
    code, _, body = request(server.port, "GET", fresh.split(server.endpoint, 1)[1], {"Host": f"127.0.0.1:{server.port}"})
    assert code == 200 and body == b"p"


def test_a_missing_bucket_is_404_for_anonymous_and_presigned_requests(server):
    missing = "no-such-" + uuid.uuid4().hex[:8]
    out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", f"{server.endpoint}/{missing}/k"],
                         capture_output=True, text=True, timeout=20)
    assert out.stdout.endswith("\n404") and "<Code>NoSuchBucket</Code>" in out.stdout, out.stdout
    url = presign("GET", f"{server.endpoint}/{missing}/k")
    out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", url], capture_output=True, text=True, timeout=20)
    assert out.stdout.endswith("\n404") and "<Code>NoSuchBucket</Code>" in out.stdout, out.stdout


def test_head_and_get_count_tags_and_deletes_say_no_marker(s3, bucket):
    s3.put_object(Bucket=bucket, Key="t", Body=b"t", Tagging="a=1&b=2&c=3")
    head = s3.head_object(Bucket=bucket, Key="t")
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "3"
    assert s3.get_object(Bucket=bucket, Key="t")["TagCount"] == 3
    s3.put_object(Bucket=bucket, Key="untagged", Body=b"u")
    assert "x-amz-tagging-count" not in s3.head_object(Bucket=bucket, Key="untagged")["ResponseMetadata"]["HTTPHeaders"]
    out = s3.delete_object(Bucket=bucket, Key="t")
    assert out["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "false"
    assert out["DeleteMarker"] is False


def test_an_empty_delimiter_is_no_delimiter(server, s3, bucket):
    for k in ("a/1", "a/2", "b"):
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    v2 = s3.list_objects_v2(Bucket=bucket, Delimiter="")
    assert [o["Key"] for o in v2["Contents"]] == ["a/1", "a/2", "b"]
    assert "Delimiter" not in v2 and "CommonPrefixes" not in v2
    v1 = s3.list_objects(Bucket=bucket, Delimiter="")
    assert "Delimiter" not in v1 and len(v1["Contents"]) == 3
    versions = s3.list_object_versions(Bucket=bucket, Delimiter="")
    assert "Delimiter" not in versions and len(versions["Versions"]) == 3
    code, _, body = raw(server, "GET", f"/{bucket}?list-type=2&delimiter=")
    assert code == 200 and b"<Delimiter>" not in body


def test_url_encoding_covers_prefix_delimiter_and_start_after(s3, bucket):
    s3.put_object(Bucket=bucket, Key="sp ace/ü+x", Body=b"x")
    s3.put_object(Bucket=bucket, Key="sp ace/z", Body=b"x")
    raw_xml = []
    for op in ("ListObjectsV2", "ListObjects", "ListObjectVersions"):
        s3.meta.events.register(f"after-call.s3.{op}", lambda http_response, **_: raw_xml.append(http_response.content.decode()))
    # boto3 asks for url encoding, and decodes the answer.
    page = s3.list_objects_v2(Bucket=bucket, Prefix="sp ace/", Delimiter="+", StartAfter="sp ace/a")
    assert page["Prefix"] == "sp ace/" and page["StartAfter"] == "sp ace/a" and page["Delimiter"] == "+"
    assert [o["Key"] for o in page["Contents"]] == ["sp ace/z"]
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["sp ace/ü+"]
    text = raw_xml[-1]
    assert "<EncodingType>url</EncodingType>" in text
    assert "<Prefix>sp%20ace/</Prefix>" in text and "<Delimiter>%2B</Delimiter>" in text
    assert "<StartAfter>sp%20ace/a</StartAfter>" in text and "<Key>sp%20ace/z</Key>" in text
    assert "<Prefix>sp%20ace/%C3%BC%2B</Prefix>" in text
    v1 = s3.list_objects(Bucket=bucket, Prefix="sp ace/", Marker="sp ace/a")
    assert [o["Key"] for o in v1["Contents"]] == ["sp ace/z", "sp ace/ü+x"]
    assert "<Prefix>sp%20ace/</Prefix>" in raw_xml[-1] and "<Marker>sp%20ace/a</Marker>" in raw_xml[-1]
    s3.list_object_versions(Bucket=bucket, Prefix="sp ace/", KeyMarker="sp ace/a")
    assert "<Prefix>sp%20ace/</Prefix>" in raw_xml[-1] and "<KeyMarker>sp%20ace/a</KeyMarker>" in raw_xml[-1]


# Operations


def test_list_buckets_pages(s3):
    tag = uuid.uuid4().hex[:8]
    names = sorted(f"pg-{tag}-{i}" for i in range(7))
    for n in reversed(names):
        s3.create_bucket(Bucket=n)
    seen, token, pages = [], None, 0
    while True:
        args = dict(MaxBuckets=3, Prefix=f"pg-{tag}-")
        if token:
            args["ContinuationToken"] = token
        page = s3.list_buckets(**args)
        pages += 1
        assert len(page["Buckets"]) <= 3 and page["Prefix"] == f"pg-{tag}-"
        seen += [b["Name"] for b in page["Buckets"]]
        token = page.get("ContinuationToken")
        if not token:
            break
    assert seen == names and pages == 3
    assert [b["Name"] for b in s3.list_buckets(Prefix=f"pg-{tag}-")["Buckets"]] == names
    with pytest.raises(ClientError) as e:
        s3.list_buckets(MaxBuckets=10001)
    assert error_code(e) == "InvalidArgument"


def test_get_object_attributes(s3, bucket):
    body = os.urandom(3000)
    s3.put_object(Bucket=bucket, Key="one", Body=body, ChecksumAlgorithm="SHA256")
    a = s3.get_object_attributes(Bucket=bucket, Key="one",
                                 ObjectAttributes=["ETag", "Checksum", "ObjectSize", "StorageClass", "ObjectParts"])
    assert a["ETag"].strip('"') == md5(body) and a["ObjectSize"] == 3000 and a["StorageClass"] == "STANDARD"
    assert a["Checksum"]["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert "ObjectParts" not in a and "LastModified" in a
    only = s3.get_object_attributes(Bucket=bucket, Key="one", ObjectAttributes=["ObjectSize"])
    assert only["ObjectSize"] == 3000 and "ETag" not in only and "Checksum" not in only

    uid = s3.create_multipart_upload(Bucket=bucket, Key="multi")["UploadId"]
    sizes = [5 * MIB, 5 * MIB, 1234]
    parts = []
    for n, size in enumerate(sizes, 1):
        r = s3.upload_part(Bucket=bucket, Key="multi", UploadId=uid, PartNumber=n, Body=os.urandom(size))
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    s3.complete_multipart_upload(Bucket=bucket, Key="multi", UploadId=uid, MultipartUpload={"Parts": parts})
    a = s3.get_object_attributes(Bucket=bucket, Key="multi", ObjectAttributes=["ObjectParts", "ObjectSize"], MaxParts=2)
    op = a["ObjectParts"]
    assert a["ObjectSize"] == sum(sizes) and op["TotalPartsCount"] == 3 and op["IsTruncated"] is True
    assert [(p["PartNumber"], p["Size"]) for p in op["Parts"]] == [(1, sizes[0]), (2, sizes[1])]
    a = s3.get_object_attributes(Bucket=bucket, Key="multi", ObjectAttributes=["ObjectParts"],
                                 PartNumberMarker=op["NextPartNumberMarker"])
    assert [(p["PartNumber"], p["Size"]) for p in a["ObjectParts"]["Parts"]] == [(3, sizes[2])]
    assert a["ObjectParts"]["IsTruncated"] is False

    with pytest.raises(ClientError) as e:
        s3.get_object_attributes(Bucket=bucket, Key="nothing", ObjectAttributes=["ETag"])
    assert error_code(e) == "NoSuchKey"
