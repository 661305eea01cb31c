"""Object and bucket tagging through boto3, with S3's limits."""

import pytest
from botocore.exceptions import ClientError

from conftest import error_code, status


def tagset(d):
    return {"TagSet": [{"Key": k, "Value": v} for k, v in d.items()]}


def tags_of(s3, bucket, key, **kw):
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key, **kw)["TagSet"]}


def test_object_tagging_round_trip(s3, bucket):
    s3.put_object(Bucket=bucket, Key="t", Body=b"x", Tagging="a=1&b=two%20words")
    assert tags_of(s3, bucket, "t") == {"a": "1", "b": "two words"}
    assert s3.get_object(Bucket=bucket, Key="t")["TagCount"] == 2
    s3.put_object_tagging(Bucket=bucket, Key="t", Tagging=tagset({"k": "v", "empty": ""}))
    assert tags_of(s3, bucket, "t") == {"k": "v", "empty": ""}
    # Retagging keeps the body, ETag and metadata.
    got = s3.get_object(Bucket=bucket, Key="t")
    assert got["Body"].read() == b"x" and got["ETag"] == '"9dd4e461268c8034f5c8564e155c67a6"'
    s3.delete_object_tagging(Bucket=bucket, Key="t")
    assert tags_of(s3, bucket, "t") == {}
    # Copy keeps tags by default and replaces them on request.
    s3.put_object_tagging(Bucket=bucket, Key="t", Tagging=tagset({"keep": "me"}))
    s3.copy_object(Bucket=bucket, Key="c1", CopySource=f"{bucket}/t")
    assert tags_of(s3, bucket, "c1") == {"keep": "me"}
    s3.copy_object(Bucket=bucket, Key="c2", CopySource=f"{bucket}/t", TaggingDirective="REPLACE", Tagging="x=y")
    assert tags_of(s3, bucket, "c2") == {"x": "y"}


def test_tagging_versions(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="v", Body=b"1")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="v", Body=b"2")["VersionId"]
    out = s3.put_object_tagging(Bucket=bucket, Key="v", VersionId=v1, Tagging=tagset({"old": "1"}))
    assert out["VersionId"] == v1
    assert tags_of(s3, bucket, "v", VersionId=v1) == {"old": "1"}
    assert tags_of(s3, bucket, "v") == {}
    assert s3.get_object(Bucket=bucket, Key="v")["VersionId"] == v2
    assert s3.get_object(Bucket=bucket, Key="v", VersionId=v1)["Body"].read() == b"1"
    marker = s3.delete_object(Bucket=bucket, Key="v")["VersionId"]
    with pytest.raises(ClientError) as e:
        s3.put_object_tagging(Bucket=bucket, Key="v", VersionId=marker, Tagging=tagset({"a": "b"}))
    assert status(e) == 405
    with pytest.raises(ClientError) as e:
        s3.get_object_tagging(Bucket=bucket, Key="v")
    assert error_code(e) == "NoSuchKey"


@pytest.mark.parametrize(
    "tags",
    [
        {f"k{i}": "v" for i in range(11)},
        {"k" * 129: "v"},
        {"k": "v" * 257},
        {"aws:reserved": "v"},
    ],
)
def test_tag_limits(s3, bucket, tags):
    s3.put_object(Bucket=bucket, Key="lim", Body=b"x", Tagging="keep=1")
    with pytest.raises(ClientError) as e:
        s3.put_object_tagging(Bucket=bucket, Key="lim", Tagging=tagset(tags))
    assert error_code(e) == "InvalidTag"
    header = "&".join(f"{k}={v}" for k, v in tags.items())
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="lim", Body=b"y", Tagging=header)
    assert error_code(e) == "InvalidTag"
    with pytest.raises(ClientError) as e:
        s3.create_multipart_upload(Bucket=bucket, Key="lim", Tagging=header)
    assert error_code(e) == "InvalidTag"
    # Nothing changed.
    assert tags_of(s3, bucket, "lim") == {"keep": "1"}
    assert s3.get_object(Bucket=bucket, Key="lim")["Body"].read() == b"x"


def test_tagging_missing_objects(s3, bucket):
    for call in [
        lambda: s3.get_object_tagging(Bucket=bucket, Key="absent"),
        lambda: s3.put_object_tagging(Bucket=bucket, Key="absent", Tagging=tagset({"a": "b"})),
        lambda: s3.delete_object_tagging(Bucket=bucket, Key="absent"),
    ]:
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "NoSuchKey"


def test_bucket_tagging(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket=bucket)
    assert error_code(e) == "NoSuchTagSet"
    tags = {f"t{i}": str(i) for i in range(20)}
    s3.put_bucket_tagging(Bucket=bucket, Tagging=tagset(tags))
    got = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    assert got == tags
    with pytest.raises(ClientError) as e:
        s3.put_bucket_tagging(Bucket=bucket, Tagging=tagset({f"t{i}": "x" for i in range(51)}))
    assert error_code(e) == "InvalidTag"
    with pytest.raises(ClientError) as e:
        s3.put_bucket_tagging(Bucket=bucket, Tagging=tagset({"aws:x": "1"}))
    assert error_code(e) == "InvalidTag"
    s3.delete_bucket_tagging(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket=bucket)
    assert error_code(e) == "NoSuchTagSet"
