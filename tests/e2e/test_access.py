"""Who may do what, against the real binary: two owners, a read-only key,
a key limited to one bucket, bucket policies (explicit deny first),
anonymous reads of a public prefix, the public access block, bucket ACLs
and ownership controls. Every refusal is AccessDenied and leaves what is
stored unchanged."""

import base64
import json
import subprocess
import urllib.error
import urllib.request
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, SECRET_KEY, Server, client, error_code, run_billet, status

BOB_KEY, BOB_SECRET = "BKBOB000000000000001", "bob-secret-0123456789abcdefghijklmnopqr"
RO_KEY, RO_SECRET = "BKREADONLY0000000001", "ro-secret-0123456789abcdefghijklmnopqrs"
ONE_KEY, ONE_SECRET = "BKONEBUCKET000000001", "one-secret-0123456789abcdefghijklmnopq"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    data = tmp_path_factory.mktemp("access") / "data"
    run_billet("keys", "create", "--owner", "bob", "--id", BOB_KEY, "--secret", BOB_SECRET, data_dir=data)
    run_billet("keys", "create", "--owner", "billet", "--read-only", "--id", RO_KEY, "--secret", RO_SECRET, data_dir=data)
    run_billet("keys", "create", "--owner", "billet", "--limited", "--id", ONE_KEY, "--secret", ONE_SECRET, data_dir=data)
    s = Server(data).start()
    yield s
    assert s.stop() == 0, s.log_text()


@pytest.fixture(scope="module")
def alice(srv):
    return srv.client()


@pytest.fixture(scope="module")
def bob(srv):
    return client(srv.endpoint, access_key=BOB_KEY, secret_key=BOB_SECRET)


@pytest.fixture(scope="module")
def ro(srv):
    return client(srv.endpoint, access_key=RO_KEY, secret_key=RO_SECRET)


@pytest.fixture(scope="module")
def one(srv):
    return client(srv.endpoint, access_key=ONE_KEY, secret_key=ONE_SECRET)


def new_bucket(s3):
    name = "a-" + uuid.uuid4().hex[:16]
    s3.create_bucket(Bucket=name)
    return name


def denied(fn):
    with pytest.raises(ClientError) as e:
        fn()
    # A HEAD answer has no body to carry the code.
    assert error_code(e) in ("AccessDenied", "403"), e.value.response["Error"]
    assert status(e) == 403


def anonymous(srv, method, path, body=None):
    """curl without credentials: (status, body)."""
    args = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", "20", "-X", method]
    if method == "HEAD":
        args = ["curl", "-sS", "-I", "-o", "/dev/null", "-w", "\n%{http_code}", "--max-time", "20"]
    if body is not None:
        args += ["--data-binary", "@-", "-H", "Content-Type: application/octet-stream"]
    out = subprocess.run(args + [srv.endpoint + path], input=body or b"", capture_output=True, timeout=30, check=True).stdout
    payload, _, code = out.rpartition(b"\n")
    return int(code), payload


def state(s3, bucket):
    """What a bucket holds, as its owner sees it."""
    objs = {}
    for v in s3.list_object_versions(Bucket=bucket).get("Versions", []):
        body = s3.get_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
        tags = s3.get_object_tagging(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])["TagSet"]
        objs[(v["Key"], v["VersionId"])] = (body, json.dumps(tags, sort_keys=True))
    uploads = [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    btags = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    return objs, sorted(uploads), btags, versioning


# The first version of each populated bucket's "doc".
FIRST = {}


def populated(alice):
    b = new_bucket(alice)
    alice.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    FIRST[b] = alice.put_object(Bucket=b, Key="doc", Body=b"v1")["VersionId"]
    alice.put_object(Bucket=b, Key="doc", Body=b"v2")
    alice.put_object(Bucket=b, Key="secret/plans", Body=b"plans")
    alice.put_object_tagging(Bucket=b, Key="doc", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
    alice.put_bucket_tagging(Bucket=b, Tagging={"TagSet": [{"Key": "team", "Value": "a"}]})
    uid = alice.create_multipart_upload(Bucket=b, Key="up")["UploadId"]
    alice.upload_part(Bucket=b, Key="up", UploadId=uid, PartNumber=1, Body=b"part")
    return b, uid


def history(srv, path, key, secret):
    auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
    req = urllib.request.Request(srv.endpoint + "/_billet/v1/" + path, headers={"Authorization": auth})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def proofs(srv, b, key, secret):
    """The statuses of a bucket's checkpoint, object proof, commit proof and
    storage challenge for this key."""
    return {
        history(srv, f"buckets/{b}/{p}", key, secret)
        for p in ["checkpoint", "proof/object?key=doc", "proof/commit", "challenge?key=doc&chunk=0&nonce=00c0ffee"]
    }


def writes(s3, b, uid, target):
    """Every writing operation family, against bucket b."""
    tags = {"TagSet": [{"Key": "evil", "Value": "1"}]}
    return {
        "PutObject": lambda: s3.put_object(Bucket=b, Key="doc", Body=b"overwritten"),
        "CopyObject": lambda: s3.copy_object(Bucket=b, Key="copy", CopySource={"Bucket": b, "Key": "doc"}),
        "DeleteObject": lambda: s3.delete_object(Bucket=b, Key="doc"),
        "DeleteObject by version": lambda: s3.delete_object(Bucket=b, Key="doc", VersionId=FIRST[b]),
        "DeleteObjects": lambda: s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "doc"}]}),
        "PutObjectTagging": lambda: s3.put_object_tagging(Bucket=b, Key="doc", Tagging=tags),
        "DeleteObjectTagging": lambda: s3.delete_object_tagging(Bucket=b, Key="doc"),
        "PutBucketTagging": lambda: s3.put_bucket_tagging(Bucket=b, Tagging=tags),
        "DeleteBucketTagging": lambda: s3.delete_bucket_tagging(Bucket=b),
        "PutBucketVersioning": lambda: s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Suspended"}),
        "CreateMultipartUpload": lambda: s3.create_multipart_upload(Bucket=b, Key="mp"),
        "UploadPart": lambda: s3.upload_part(Bucket=b, Key="up", UploadId=uid, PartNumber=2, Body=b"x"),
        "CompleteMultipartUpload": lambda: s3.complete_multipart_upload(
            Bucket=b, Key="up", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": "x"}]}
        ),
        "AbortMultipartUpload": lambda: s3.abort_multipart_upload(Bucket=b, Key="up", UploadId=uid),
        "PutBucketPolicy": lambda: s3.put_bucket_policy(Bucket=b, Policy=public_policy(b, "x/")),
        "DeleteBucket": lambda: s3.delete_bucket(Bucket=b),
    }


def reads(s3, b, uid):
    return {
        "GetObject": lambda: s3.get_object(Bucket=b, Key="doc")["Body"].read(),
        "GetObject by version": lambda: s3.get_object(Bucket=b, Key="doc", VersionId=FIRST[b])["Body"].read(),
        "GetObjectTagging by version": lambda: s3.get_object_tagging(Bucket=b, Key="doc", VersionId=FIRST[b]),
        "HeadObject": lambda: s3.head_object(Bucket=b, Key="doc"),
        "ListObjectsV2": lambda: s3.list_objects_v2(Bucket=b),
        "ListObjects": lambda: s3.list_objects(Bucket=b),
        "ListObjectVersions": lambda: s3.list_object_versions(Bucket=b),
        "GetObjectTagging": lambda: s3.get_object_tagging(Bucket=b, Key="doc"),
        "GetBucketTagging": lambda: s3.get_bucket_tagging(Bucket=b),
        "ListMultipartUploads": lambda: s3.list_multipart_uploads(Bucket=b),
        "ListParts": lambda: s3.list_parts(Bucket=b, Key="up", UploadId=uid),
        "HeadBucket": lambda: s3.head_bucket(Bucket=b),
    }


def public_policy(bucket, prefix):
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "public", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                 "Resource": f"arn:aws:s3:::{bucket}/{prefix}*"}
            ],
        }
    )


def test_a_read_only_key_reads_and_changes_nothing(srv, alice, ro):
    b, uid = populated(alice)
    before = state(alice, b)
    for name, fn in reads(ro, b, uid).items():
        fn()  # allowed
    for name, fn in writes(ro, b, uid, b).items():
        denied(fn)
    denied(lambda: ro.create_bucket(Bucket="ro-" + uuid.uuid4().hex[:12]))
    assert state(alice, b) == before
    assert proofs(srv, b, RO_KEY, RO_SECRET) == {200}
    assert b in [x["Name"] for x in ro.list_buckets()["Buckets"]]


def test_a_key_limited_to_one_bucket_stays_in_it(srv, alice, one):
    mine, uid = populated(alice)
    other, other_uid = populated(alice)
    run_billet("keys", "allow", ONE_KEY, mine, "--read", "--write", data_dir=srv.data_dir)
    listed = run_billet("keys", "list", data_dir=srv.data_dir).stdout
    assert ONE_KEY in listed and mine in listed and "read+write" in listed
    before = state(alice, other)
    for name, fn in {**reads(one, other, other_uid), **writes(one, other, other_uid, other)}.items():
        denied(fn)
    assert state(alice, other) == before
    assert proofs(srv, other, ONE_KEY, ONE_SECRET) == {403}
    # On its bucket: reads and object writes, but no configuration.
    for name, fn in reads(one, mine, uid).items():
        fn()
    one.put_object(Bucket=mine, Key="new", Body=b"by the limited key")
    assert alice.get_object(Bucket=mine, Key="new")["Body"].read() == b"by the limited key"
    one.delete_object(Bucket=mine, Key="new")
    denied(lambda: one.put_bucket_versioning(Bucket=mine, VersioningConfiguration={"Status": "Suspended"}))
    denied(lambda: one.put_bucket_policy(Bucket=mine, Policy=public_policy(mine, "")))
    denied(lambda: one.delete_bucket(Bucket=mine))
    denied(lambda: one.create_bucket(Bucket="one-" + uuid.uuid4().hex[:12]))
    assert [x["Name"] for x in one.list_buckets()["Buckets"]] == [mine]
    assert proofs(srv, mine, ONE_KEY, ONE_SECRET) == {200}
    # Taking the grant back takes the access (the server's cache holds a
    # key's grants for at most 5 s).
    run_billet("keys", "deny", ONE_KEY, mine, data_dir=srv.data_dir)
    import time

    deadline = time.time() + 15
    while True:
        try:
            one.head_object(Bucket=mine, Key="doc")
        except ClientError as e:
            assert status_of(e) == 403
            break
        assert time.time() < deadline, "the revoked grant still works"
        time.sleep(0.5)


def status_of(e):
    return e.response["ResponseMetadata"]["HTTPStatusCode"]


def test_a_policy_shares_a_bucket_with_another_owner_and_deny_wins(srv, alice, bob):
    b, uid = populated(alice)
    before = state(alice, b)
    for name, fn in {**reads(bob, b, uid), **writes(bob, b, uid, b)}.items():
        denied(fn)
    assert proofs(srv, b, BOB_KEY, BOB_SECRET) == {403}
    assert state(alice, b) == before
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ["bob"]}, "Action": ["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
             "Resource": [f"arn:aws:s3:::{b}", f"arn:aws:s3:::{b}/*"]},
            {"Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::bob:root"}, "Action": "s3:*",
             "Resource": f"arn:aws:s3:::{b}/secret/*"},
        ],
    }
    alice.put_bucket_policy(Bucket=b, Policy=json.dumps(policy))
    assert json.loads(alice.get_bucket_policy(Bucket=b)["Policy"]) == policy
    assert alice.get_bucket_policy_status(Bucket=b)["PolicyStatus"]["IsPublic"] is False
    assert bob.get_object(Bucket=b, Key="doc")["Body"].read() == b"v2"
    assert [o["Key"] for o in bob.list_objects_v2(Bucket=b)["Contents"]] == ["doc", "secret/plans"]
    bob.put_object(Bucket=b, Key="from-bob", Body=b"shared")
    assert proofs(srv, b, BOB_KEY, BOB_SECRET) == {200}
    # The explicit Deny beats the Allow on the secret prefix.
    denied(lambda: bob.get_object(Bucket=b, Key="secret/plans"))
    denied(lambda: bob.put_object(Bucket=b, Key="secret/plans", Body=b"overwritten"))
    # What the policy does not allow stays denied.
    denied(lambda: bob.delete_object(Bucket=b, Key="doc"))
    denied(lambda: bob.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "from-bob"}, {"Key": "doc"}]}))
    denied(lambda: bob.get_bucket_policy(Bucket=b))
    denied(lambda: bob.delete_bucket_policy(Bucket=b))
    assert alice.get_object(Bucket=b, Key="secret/plans")["Body"].read() == b"plans"
    assert alice.get_object(Bucket=b, Key="doc")["Body"].read() == b"v2"
    # Bob's own buckets do not list alice's.
    assert b not in [x["Name"] for x in bob.list_buckets()["Buckets"]]
    alice.delete_bucket_policy(Bucket=b)
    with pytest.raises(ClientError) as e:
        alice.get_bucket_policy(Bucket=b)
    assert error_code(e) == "NoSuchBucketPolicy" and status(e) == 404
    denied(lambda: bob.get_object(Bucket=b, Key="doc"))


def test_anonymous_clients_read_exactly_the_public_prefix(srv, alice):
    b = new_bucket(alice)
    alice.put_object(Bucket=b, Key="public/hello.txt", Body=b"hello world")
    alice.put_object(Bucket=b, Key="private/key.txt", Body=b"hidden")
    assert anonymous(srv, "GET", f"/{b}/public/hello.txt")[0] == 403
    alice.put_bucket_policy(Bucket=b, Policy=public_policy(b, "public/"))
    assert alice.get_bucket_policy_status(Bucket=b)["PolicyStatus"]["IsPublic"] is True
    assert anonymous(srv, "GET", f"/{b}/public/hello.txt") == (200, b"hello world")
    assert anonymous(srv, "HEAD", f"/{b}/public/hello.txt")[0] == 200
    code, body = anonymous(srv, "GET", f"/{b}/private/key.txt")
    assert code == 403 and b"<Code>AccessDenied</Code>" in body
    assert anonymous(srv, "GET", f"/{b}?list-type=2")[0] == 403
    assert anonymous(srv, "PUT", f"/{b}/public/planted.txt", body=b"x")[0] == 403
    assert anonymous(srv, "DELETE", f"/{b}/public/hello.txt")[0] == 403
    assert anonymous(srv, "GET", "/")[0] == 403
    assert "Contents" in alice.list_objects_v2(Bucket=b, Prefix="public/")
    assert [o["Key"] for o in alice.list_objects_v2(Bucket=b)["Contents"]] == ["private/key.txt", "public/hello.txt"]

    # The public access block: BlockPublicPolicy refuses a public policy,
    # RestrictPublicBuckets takes the public one's effect away.
    alice.put_public_access_block(
        Bucket=b,
        PublicAccessBlockConfiguration={"BlockPublicAcls": False, "IgnorePublicAcls": False,
                                        "BlockPublicPolicy": True, "RestrictPublicBuckets": True},
    )
    got = alice.get_public_access_block(Bucket=b)["PublicAccessBlockConfiguration"]
    assert got == {"BlockPublicAcls": False, "IgnorePublicAcls": False, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    assert anonymous(srv, "GET", f"/{b}/public/hello.txt")[0] == 403
    denied(lambda: alice.put_bucket_policy(Bucket=b, Policy=public_policy(b, "")))
    alice.delete_public_access_block(Bucket=b)
    with pytest.raises(ClientError) as e:
        alice.get_public_access_block(Bucket=b)
    assert error_code(e) == "NoSuchPublicAccessBlockConfiguration" and status(e) == 404
    assert anonymous(srv, "GET", f"/{b}/public/hello.txt") == (200, b"hello world")

    # A public-read bucket ACL lets anyone list; IgnorePublicAcls takes it back.
    alice.put_bucket_acl(Bucket=b, ACL="public-read")
    grants = alice.get_bucket_acl(Bucket=b)["Grants"]
    assert {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"} in [g["Grantee"] for g in grants]
    code, body = anonymous(srv, "GET", f"/{b}?list-type=2")
    assert code == 200 and b"public/hello.txt" in body
    assert anonymous(srv, "PUT", f"/{b}/planted", body=b"x")[0] == 403
    alice.put_public_access_block(Bucket=b, PublicAccessBlockConfiguration={"IgnorePublicAcls": True})
    assert anonymous(srv, "GET", f"/{b}?list-type=2")[0] == 403
    alice.put_public_access_block(Bucket=b, PublicAccessBlockConfiguration={"BlockPublicAcls": True})
    denied(lambda: alice.put_bucket_acl(Bucket=b, ACL="public-read-write"))
    denied(lambda: alice.put_object(Bucket=b, Key="k", Body=b"x", ACL="public-read"))
    alice.put_object(Bucket=b, Key="k", Body=b"x", ACL="private")

    # A bucket deleted and made again starts private.
    for o in alice.list_objects_v2(Bucket=b)["Contents"]:
        alice.delete_object(Bucket=b, Key=o["Key"])
    alice.delete_bucket(Bucket=b)
    alice.create_bucket(Bucket=b)
    alice.put_object(Bucket=b, Key="public/hello.txt", Body=b"again")
    assert anonymous(srv, "GET", f"/{b}/public/hello.txt")[0] == 403
    assert anonymous(srv, "GET", f"/nonexistent-{uuid.uuid4().hex[:8]}/x")[0] == 404


def test_malformed_policies_are_refused_naming_the_problem(alice):
    b = new_bucket(alice)
    cases = [
        ("{not json", "valid JSON"),
        (json.dumps({"Version": "2012-10-17"}), "Statement"),
        (json.dumps({"Statement": [{"Effect": "Permit", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{b}/*"}]}), "Invalid effect"),
        (json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObjekt", "Resource": f"arn:aws:s3:::{b}/*"}]}), "invalid action"),
        (json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::another-bucket/*"}]}), "invalid resource"),
        (json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{b}/*",
                                    "Condition": {"IpAddress": {"aws:SourceIp": "not-an-ip"}}}]}), "Invalid IP address"),
    ]
    for doc, want in cases:
        with pytest.raises(ClientError) as e:
            alice.put_bucket_policy(Bucket=b, Policy=doc)
        assert error_code(e) == "MalformedPolicy" and status(e) == 400, doc
        assert want in e.value.response["Error"]["Message"], (doc, e.value.response["Error"])
    with pytest.raises(ClientError) as e:
        alice.get_bucket_policy(Bucket=b)
    assert error_code(e) == "NoSuchBucketPolicy"


def test_bucket_owner_enforced_refuses_acl_changes(srv, alice):
    b = new_bucket(alice)
    with pytest.raises(ClientError) as e:
        alice.get_bucket_ownership_controls(Bucket=b)
    assert error_code(e) == "OwnershipControlsNotFoundError"
    alice.put_bucket_ownership_controls(Bucket=b, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
    rules = alice.get_bucket_ownership_controls(Bucket=b)["OwnershipControls"]["Rules"]
    assert rules == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    for fn in [
        lambda: alice.put_bucket_acl(Bucket=b, ACL="public-read"),
        lambda: alice.put_object(Bucket=b, Key="k", Body=b"x", ACL="public-read"),
    ]:
        with pytest.raises(ClientError) as e:
            fn()
        assert error_code(e) == "AccessControlListNotSupported" and status(e) == 400
    assert anonymous(srv, "GET", f"/{b}?list-type=2")[0] == 403
    # The owner's own ACL reads back; private stays allowed.
    acl = alice.get_bucket_acl(Bucket=b)
    assert [g["Permission"] for g in acl["Grants"]] == ["FULL_CONTROL"]
    alice.put_object(Bucket=b, Key="k", Body=b"x")
    assert [g["Permission"] for g in alice.get_object_acl(Bucket=b, Key="k")["Grants"]] == ["FULL_CONTROL"]
    alice.delete_bucket_ownership_controls(Bucket=b)
    alice.put_bucket_acl(Bucket=b, ACL="public-read")
    assert anonymous(srv, "GET", f"/{b}?list-type=2")[0] == 200
    # A bucket made with a canned ACL and ownership in its CreateBucket.
    c = "a-" + uuid.uuid4().hex[:16]
    with pytest.raises(ClientError) as e:
        alice.create_bucket(Bucket=c, ACL="public-read", ObjectOwnership="BucketOwnerEnforced")
    assert error_code(e) == "InvalidBucketAclWithObjectOwnership"
    alice.create_bucket(Bucket=c, ACL="public-read")
    assert anonymous(srv, "GET", f"/{c}?list-type=2")[0] == 200


def raw(srv, method, path, headers):
    req = urllib.request.Request(srv.endpoint + path, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_cors_preflights_and_responses_follow_the_buckets_rules(srv, alice):
    b = new_bucket(alice)
    alice.put_object(Bucket=b, Key="page.html", Body=b"<p>hi</p>")
    app = "http://app.example.test"
    preflight = {"Origin": app, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "Content-Type, X-Amz-Date"}
    code, _, body = raw(srv, "OPTIONS", f"/{b}/page.html", preflight)
    assert code == 403 and b"CORS is not enabled" in body
    with pytest.raises(ClientError) as e:
        alice.get_bucket_cors(Bucket=b)
    assert error_code(e) == "NoSuchCORSConfiguration" and status(e) == 404
    rules = [
        {"AllowedOrigins": [app], "AllowedMethods": ["GET", "PUT"], "AllowedHeaders": ["content-type", "x-amz-*"],
         "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 600},
        {"AllowedOrigins": ["*"], "AllowedMethods": ["HEAD"]},
    ]
    alice.put_bucket_cors(Bucket=b, CORSConfiguration={"CORSRules": rules})
    assert alice.get_bucket_cors(Bucket=b)["CORSRules"] == rules
    with pytest.raises(ClientError) as e:
        alice.put_bucket_cors(Bucket=b, CORSConfiguration={"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}]})
    assert error_code(e) == "InvalidRequest"

    # Preflights: no credentials, answered from the rules.
    code, h, _ = raw(srv, "OPTIONS", f"/{b}/page.html", preflight)
    assert code == 200
    assert h["Access-Control-Allow-Origin"] == app
    assert h["Access-Control-Allow-Methods"] == "GET, PUT"
    assert h["Access-Control-Allow-Headers"] == "content-type, x-amz-date"
    assert h["Access-Control-Max-Age"] == "600"
    assert h["Access-Control-Expose-Headers"] == "ETag"
    for bad in [
        {**preflight, "Origin": "http://evil.test"},
        {**preflight, "Access-Control-Request-Method": "DELETE"},
        {**preflight, "Access-Control-Request-Headers": "authorization"},
    ]:
        code, h, body = raw(srv, "OPTIONS", f"/{b}/page.html", bad)
        assert code == 403 and b"<Code>AccessForbidden</Code>" in body, bad
        assert "Access-Control-Allow-Origin" not in h
    code, h, _ = raw(srv, "OPTIONS", f"/{b}/x", {"Origin": "http://any.test", "Access-Control-Request-Method": "HEAD"})
    assert code == 200 and h["Access-Control-Allow-Origin"] == "*"

    # Actual responses: a presigned GET from the page's origin carries the
    # headers; another origin's does not (the browser then refuses it).
    v4 = srv.client(signature_version="s3v4")
    url = v4.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "page.html"}, ExpiresIn=300)
    path = url[len(srv.endpoint):]
    code, h, body = raw(srv, "GET", path, {"Origin": app})
    assert code == 200 and body == b"<p>hi</p>"
    assert h["Access-Control-Allow-Origin"] == app and h["Access-Control-Expose-Headers"] == "ETag"
    code, h, _ = raw(srv, "GET", path, {"Origin": "http://evil.test"})
    assert code == 200 and "Access-Control-Allow-Origin" not in h
    # Also on a refusal (the page can read why).
    code, h, _ = raw(srv, "GET", f"/{b}/page.html", {"Origin": app})
    assert code == 403 and h["Access-Control-Allow-Origin"] == app

    alice.delete_bucket_cors(Bucket=b)
    code, _, _ = raw(srv, "OPTIONS", f"/{b}/page.html", preflight)
    assert code == 403


def test_billet_api_is_signed_like_s3(tmp_path, srv, alice):
    from rawhttp import presign, sign

    b, _ = populated(alice)
    url = f"{srv.endpoint}/_billet/v1/buckets/{b}/checkpoint?format=json"

    def get(u, headers=None):
        req = urllib.request.Request(u, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    code, body = get(url, sign("GET", url))
    assert code == 200 and json.loads(body)["checkpoint"]["bucket"] == b
    code, body = get(presign("GET", url))
    assert code == 200 and json.loads(body)["checkpoint"]["bucket"] == b
    # The read-only key reads; another owner and a key without a grant do not.
    assert get(url, sign("GET", url, key=RO_KEY, secret=RO_SECRET))[0] == 200
    assert get(presign("GET", url, key=BOB_KEY, secret=BOB_SECRET))[0] == 403
    assert get(url, sign("GET", url, key=ONE_KEY, secret=ONE_SECRET))[0] == 403
    # A wrong secret, an altered query, an expired or unsigned request.
    code, body = get(url, sign("GET", url, secret="not-the-secret-0123456789abcdefghijklmn"))
    assert code == 403 and b"SignatureDoesNotMatch" in body
    assert get(presign("GET", url).replace("format=json", "format=cbor"))[0] == 403
    assert get(presign("GET", url, expires=1).replace("X-Amz-Expires=1", "X-Amz-Expires=2"))[0] == 403
    code, body = get(url)
    assert code == 403 and b"AccessDenied" in body
    # `_billet` is no bucket's name.
    with pytest.raises(ClientError) as e:
        alice.create_bucket(Bucket="_billet")
    assert error_code(e) == "InvalidBucketName"

    # Basic authentication is for loopback clients by default, and can be
    # turned off.
    auth = {"Authorization": "Basic " + base64.b64encode(f"{ACCESS_KEY}:{SECRET_KEY}".encode()).decode()}
    assert get(url, auth)[0] == 200
    cfg = tmp_path / "billet.toml"
    cfg.write_text('history_basic_auth = "off"\n')
    other = Server(tmp_path / "data", extra_args=["--config", str(cfg)]).start()
    try:
        c = other.client()
        c.create_bucket(Bucket="hist")
        u = f"{other.endpoint}/_billet/v1/buckets/hist/checkpoint"
        code, body = get(u, auth)
        assert code == 403 and b"SigV4" in body
        assert get(u, sign("GET", u))[0] == 200
    finally:
        assert other.stop() == 0


def test_object_acls_are_kept_per_version_and_allow_what_they_grant(srv, alice, bob):
    b = new_bucket(alice)
    alice.put_object(Bucket=b, Key="open.txt", Body=b"for everyone", ACL="public-read")
    alice.put_object(Bucket=b, Key="closed.txt", Body=b"for the owner")
    assert anonymous(srv, "GET", f"/{b}/open.txt") == (200, b"for everyone")
    assert anonymous(srv, "GET", f"/{b}/closed.txt")[0] == 403
    assert anonymous(srv, "GET", f"/{b}/missing.txt")[0] == 403
    assert anonymous(srv, "PUT", f"/{b}/open.txt", body=b"x")[0] == 403
    grants = alice.get_object_acl(Bucket=b, Key="open.txt")["Grants"]
    assert {"Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"}, "Permission": "READ"} in grants
    denied(lambda: bob.get_object_acl(Bucket=b, Key="open.txt"))

    # PutObjectAcl: canned, and a grant to another owner by header.
    alice.put_object_acl(Bucket=b, Key="open.txt", ACL="private")
    assert anonymous(srv, "GET", f"/{b}/open.txt")[0] == 403
    alice.put_object_acl(Bucket=b, Key="closed.txt", GrantRead='id="bob"', GrantReadACP='id="bob"')
    assert bob.get_object(Bucket=b, Key="closed.txt")["Body"].read() == b"for the owner"
    assert [g["Permission"] for g in bob.get_object_acl(Bucket=b, Key="closed.txt")["Grants"]] == ["FULL_CONTROL", "READ", "READ_ACP"]
    denied(lambda: bob.put_object_acl(Bucket=b, Key="closed.txt", ACL="public-read"))
    denied(lambda: bob.put_object(Bucket=b, Key="closed.txt", Body=b"overwritten"))
    # An overwrite starts over: its ACL is its own request's.
    alice.put_object(Bucket=b, Key="closed.txt", Body=b"new")
    denied(lambda: bob.get_object(Bucket=b, Key="closed.txt"))

    # A copy does not take its source's ACL; a multipart upload sets one.
    alice.put_object(Bucket=b, Key="src.txt", Body=b"src", ACL="public-read")
    alice.copy_object(Bucket=b, Key="copy.txt", CopySource={"Bucket": b, "Key": "src.txt"})
    assert anonymous(srv, "GET", f"/{b}/copy.txt")[0] == 403
    uid = alice.create_multipart_upload(Bucket=b, Key="mp.txt", ACL="public-read")["UploadId"]
    etag = alice.upload_part(Bucket=b, Key="mp.txt", UploadId=uid, PartNumber=1, Body=b"multi")["ETag"]
    alice.complete_multipart_upload(Bucket=b, Key="mp.txt", UploadId=uid,
                                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert anonymous(srv, "GET", f"/{b}/mp.txt") == (200, b"multi")

    # Versions keep their own ACL.
    v = new_bucket(alice)
    alice.put_bucket_versioning(Bucket=v, VersioningConfiguration={"Status": "Enabled"})
    v1 = alice.put_object(Bucket=v, Key="k", Body=b"one", ACL="public-read")["VersionId"]
    alice.put_object(Bucket=v, Key="k", Body=b"two")
    assert anonymous(srv, "GET", f"/{v}/k?versionId={v1}") == (200, b"one")
    assert anonymous(srv, "GET", f"/{v}/k")[0] == 403

    # IgnorePublicAcls and BlockPublicAcls.
    alice.put_public_access_block(Bucket=b, PublicAccessBlockConfiguration={"IgnorePublicAcls": True})
    assert anonymous(srv, "GET", f"/{b}/mp.txt")[0] == 403
    alice.put_public_access_block(Bucket=b, PublicAccessBlockConfiguration={"BlockPublicAcls": True})
    denied(lambda: alice.put_object_acl(Bucket=b, Key="mp.txt", ACL="public-read"))
    denied(lambda: alice.put_object(Bucket=b, Key="x.txt", Body=b"x", ACL="public-read"))
    with pytest.raises(ClientError) as e:
        alice.put_object_acl(Bucket=b, Key="mp.txt", GrantWrite='id="bob"')
    assert error_code(e) == "InvalidArgument"


def test_object_lock_bypass_and_lifecycle_need_their_permissions(srv, alice, bob, ro):
    import datetime

    b = "a-" + uuid.uuid4().hex[:16]
    alice.create_bucket(Bucket=b, ObjectLockEnabledForBucket=True)
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    v = alice.put_object(Bucket=b, Key="g", Body=b"g", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=later)["VersionId"]
    # Bob may delete versions by policy, but not bypass a GOVERNANCE lock.
    alice.put_bucket_policy(Bucket=b, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ["bob"]}, "Action": ["s3:DeleteObjectVersion", "s3:PutObjectRetention"],
         "Resource": f"arn:aws:s3:::{b}/*"}]}))
    denied(lambda: bob.delete_object(Bucket=b, Key="g", VersionId=v, BypassGovernanceRetention=True))
    denied(lambda: bob.put_object_retention(Bucket=b, Key="g", VersionId=v, BypassGovernanceRetention=True, Retention={}))
    # Without the bypass the lock itself refuses him.
    denied(lambda: bob.delete_object(Bucket=b, Key="g", VersionId=v))
    # A read-only key changes no lock or lifecycle configuration.
    denied(lambda: ro.put_object_lock_configuration(Bucket=b, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}}))
    denied(lambda: ro.put_bucket_lifecycle_configuration(Bucket=b, LifecycleConfiguration={"Rules": [
        {"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}]}))
    denied(lambda: ro.put_object_legal_hold(Bucket=b, Key="g", VersionId=v, LegalHold={"Status": "ON"}))
    assert "Rule" not in alice.get_object_lock_configuration(Bucket=b)["ObjectLockConfiguration"]
    assert alice.head_object(Bucket=b, Key="g", VersionId=v)["ObjectLockMode"] == "GOVERNANCE"
    # With the bypass permission, the owner removes it.
    alice.delete_object(Bucket=b, Key="g", VersionId=v, BypassGovernanceRetention=True)
