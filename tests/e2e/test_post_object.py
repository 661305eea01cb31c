"""POST Object: browser form uploads with signed policies (boto3's
generate_presigned_post, the form a page would hold), sent by curl. Each
policy violation is refused before anything is stored."""

import json
import re
import subprocess
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import Server, error_code


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("post") / "data").start()
    yield s
    assert s.stop() == 0, s.log_text()


@pytest.fixture(scope="module")
def s3(srv):
    return srv.client(signature_version="s3v4")


def curl_post(url, fields, file_path, filename="hello.txt"):
    args = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-D", "-", "--max-time", "60"]
    for k, v in fields.items():
        args += ["--form-string", f"{k}={v}"]
    args += ["-F", f"file=@{file_path};filename={filename}", url]
    out = subprocess.run(args, capture_output=True, timeout=90, check=True).stdout.decode(errors="replace")
    body, code = out.rsplit("\n", 1)
    head, _, payload = body.partition("\r\n\r\n")
    headers = {}
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(code), headers, payload


def absent(s3, bucket, key):
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    return e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def new_bucket(s3):
    b = "p-" + uuid.uuid4().hex[:16]
    s3.create_bucket(Bucket=b)
    return b


TAGGING = "<Tagging><TagSet><Tag><Key>source</Key><Value>form</Value></Tag></TagSet></Tagging>"


def presigned(s3, bucket, extra_fields=None, extra_conditions=None, expires=300, max_len=1 << 20):
    fields = {
        "acl": "private",
        "Content-Type": "text/plain",
        "x-amz-meta-who": "browser",
        "success_action_status": "201",
        "tagging": TAGGING,
        **(extra_fields or {}),
    }
    conditions = [
        {"acl": "private"},
        ["starts-with", "$key", "uploads/"],
        ["starts-with", "$Content-Type", "text/"],
        ["content-length-range", 1, max_len],
        {"x-amz-meta-who": "browser"},
        {"success_action_status": "201"},
        {"tagging": TAGGING},
        *(extra_conditions or []),
    ]
    return s3.generate_presigned_post(bucket, "uploads/${filename}", Fields=fields, Conditions=conditions, ExpiresIn=expires)


def test_a_signed_form_uploads_a_file_with_its_fields(srv, s3, tmp_path):
    b = new_bucket(s3)
    f = tmp_path / "hello.txt"
    f.write_bytes(b"hello from a browser form\n" * 100)
    post = presigned(s3, b)
    code, headers, body = curl_post(post["url"], post["fields"], f)
    assert code == 201, body
    assert "<Key>uploads/hello.txt</Key>" in body and f"<Bucket>{b}</Bucket>" in body
    head = s3.head_object(Bucket=b, Key="uploads/hello.txt")
    assert head["ContentType"] == "text/plain"
    assert head["Metadata"] == {"who": "browser"}
    assert head["ETag"] == headers["etag"]
    got = s3.get_object(Bucket=b, Key="uploads/hello.txt")["Body"].read()
    assert got == f.read_bytes()
    tags = s3.get_object_tagging(Bucket=b, Key="uploads/hello.txt")["TagSet"]
    assert tags == [{"Key": "source", "Value": "form"}]

    # success_action_redirect: a 303 to the page, naming what was stored.
    post = presigned(s3, b, {"success_action_redirect": "http://app.example.test/done"},
                     [{"success_action_redirect": "http://app.example.test/done"}])
    fields = dict(post["fields"])
    code, headers, _ = curl_post(post["url"], fields, f, filename="second.txt")
    assert code == 303, headers
    loc = headers["location"]
    assert loc.startswith("http://app.example.test/done?") and f"bucket={b}" in loc and "key=uploads%2Fsecond.txt" in loc
    assert s3.get_object(Bucket=b, Key="uploads/second.txt")["Body"].read() == f.read_bytes()


def test_policy_violations_are_refused_and_store_nothing(srv, s3, tmp_path):
    b = new_bucket(s3)
    small = tmp_path / "small.txt"
    small.write_bytes(b"x" * 1000)
    big = tmp_path / "big.txt"
    big.write_bytes(b"y" * (3 << 20))
    post = presigned(s3, b)

    def refused(fields, path, filename, want_code, want_status=403):
        code, _, body = curl_post(post["url"], fields, path, filename)
        assert code == want_status, body
        assert f"<Code>{want_code}</Code>" in body, body
        return body

    # A key outside the policy's prefix (the key field is the form's own).
    fields = {**post["fields"], "key": "elsewhere/${filename}"}
    body = refused(fields, small, "a.txt", "AccessDenied")
    assert "starts-with" in body and "$key" in body
    assert absent(s3, b, "elsewhere/a.txt")
    # A content type the policy does not allow.
    refused({**post["fields"], "Content-Type": "image/png"}, small, "b.txt", "AccessDenied")
    assert absent(s3, b, "uploads/b.txt")
    # A field the policy does not name.
    body = refused({**post["fields"], "x-amz-meta-extra": "1"}, small, "c.txt", "AccessDenied")
    assert "x-amz-meta-extra" in body
    assert absent(s3, b, "uploads/c.txt")
    # A file beyond content-length-range: cut off while it streams.
    refused(post["fields"], big, "d.txt", "EntityTooLarge", 400)
    assert absent(s3, b, "uploads/d.txt")
    # An altered policy, a wrong key, an expired policy.
    tampered = dict(post["fields"])
    tampered["policy"] = tampered["policy"][:-4] + ("AAAA" if not tampered["policy"].endswith("AAAA") else "BBBB")
    refused(tampered, small, "e.txt", "SignatureDoesNotMatch")
    expired = presigned(s3, b, expires=-10)
    code, _, body = curl_post(expired["url"], expired["fields"], small, "f.txt")
    assert code == 403 and "expired" in body.lower(), body
    for k in ["e.txt", "f.txt"]:
        assert absent(s3, b, f"uploads/{k}")
    # No file, and a SigV2 form.
    code, _, body = curl_post_no_file(post["url"], post["fields"])
    assert code == 400 and "IncorrectNumberOfFilesInPostRequest" in body
    v2 = {"key": "uploads/v2.txt", "AWSAccessKeyId": "x", "signature": "y", "policy": post["fields"]["policy"]}
    refused(v2, small, "v2.txt", "AccessDenied")


def curl_post_no_file(url, fields):
    args = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", "30"]
    for k, v in fields.items():
        args += ["--form-string", f"{k}={v}"]
    out = subprocess.run(args + [url], capture_output=True, timeout=60, check=True).stdout.decode()
    body, code = out.rsplit("\n", 1)
    return int(code), {}, body


def test_anonymous_forms_go_where_a_policy_lets_everyone_write(srv, s3, tmp_path):
    b = new_bucket(s3)
    f = tmp_path / "drop.txt"
    f.write_bytes(b"anonymous drop")
    url = f"{srv.endpoint}/{b}"
    code, _, body = curl_post(url, {"key": "inbox/${filename}"}, f, "drop.txt")
    assert code == 403 and "AccessDenied" in body
    assert absent(s3, b, "inbox/drop.txt")
    s3.put_bucket_policy(Bucket=b, Policy=json.dumps({
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:PutObject",
                       "Resource": f"arn:aws:s3:::{b}/inbox/*"}]}))
    code, headers, _ = curl_post(url, {"key": "inbox/${filename}"}, f, "drop.txt")
    assert code == 204 and re.fullmatch(r'"[0-9a-f]{32}"', headers["etag"])
    assert s3.get_object(Bucket=b, Key="inbox/drop.txt")["Body"].read() == b"anonymous drop"
    code, _, _ = curl_post(url, {"key": "outside/${filename}"}, f, "drop.txt")
    assert code == 403
    assert absent(s3, b, "outside/drop.txt")
