"""`billet serve --index postgres`: the same S3 behaviour with the index in
a real PostgreSQL server (127.0.0.1:5432, database `test`). Skipped when no
server is reachable, except under CI=true where that is a failure."""

import os
import socket
import subprocess
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import Server, run_billet

PG_URL = os.environ.get("BILLET_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")


def pg_reachable():
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def pg_schema():
    if not pg_reachable():
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432 and CI=true")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    schema = "e2e_" + uuid.uuid4().hex[:12]
    yield schema
    subprocess.run(["psql", PG_URL, "-qc", f"DROP SCHEMA IF EXISTS {schema} CASCADE"], capture_output=True, timeout=60)


def test_serve_on_postgres_survives_kill_9(tmp_path, pg_schema):
    pg = ["--index", "postgres", "--postgres-url", PG_URL, "--postgres-schema", pg_schema]
    srv = Server(tmp_path / "data", extra_args=pg).start()
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="pgbucket")
        bodies = {f"dir/{i:03}": os.urandom(i * 997) for i in range(50)}
        etags = {k: s3.put_object(Bucket="pgbucket", Key=k, Body=v)["ETag"] for k, v in bodies.items()}
        page = s3.list_objects_v2(Bucket="pgbucket", Prefix="dir/", MaxKeys=20)
        assert [o["Key"] for o in page["Contents"]] == sorted(bodies)[:20]
        assert page["IsTruncated"]
        srv.kill()
        srv.start()
        s3 = srv.client()
        for k, v in bodies.items():
            got = s3.get_object(Bucket="pgbucket", Key=k)
            assert got["ETag"] == etags[k]
            assert got["Body"].read() == v
        s3.delete_object(Bucket="pgbucket", Key="dir/000")
        assert s3.list_objects_v2(Bucket="pgbucket")["KeyCount"] == 49
    finally:
        if srv.proc and srv.proc.poll() is None:
            assert srv.stop() == 0, srv.log_text()
    fsck = run_billet("fsck", "pgbucket", *pg, data_dir=srv.data_dir, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert "49 keys" in fsck.stdout and " 0 problems" in fsck.stdout, fsck.stdout


def test_multipart_versions_and_tags_on_postgres(tmp_path, pg_schema):
    pg = ["--index", "postgres", "--postgres-url", PG_URL, "--postgres-schema", pg_schema]
    cfg = tmp_path / "billet.toml"
    cfg.write_text("min_part_size = 1024\n")
    srv = Server(tmp_path / "data", extra_args=[*pg, "--config", str(cfg)]).start()
    parts = [os.urandom(2048), os.urandom(3000), os.urandom(10)]
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="pgmp")
        s3.put_bucket_versioning(Bucket="pgmp", VersioningConfiguration={"Status": "Enabled"})
        v1 = s3.put_object(Bucket="pgmp", Key="obj", Body=b"first")["VersionId"]
        uid = s3.create_multipart_upload(Bucket="pgmp", Key="obj", Tagging="a=b")["UploadId"]
        done = s3.create_multipart_upload(Bucket="pgmp", Key="open")["UploadId"]
        etags = [
            s3.upload_part(Bucket="pgmp", Key="obj", UploadId=uid, PartNumber=n, Body=p)["ETag"]
            for n, p in enumerate(parts, 1)
        ]
        s3.upload_part(Bucket="pgmp", Key="open", UploadId=done, PartNumber=1, Body=b"kept")
        out = s3.complete_multipart_upload(
            Bucket="pgmp", Key="obj", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
        )
        assert out["ETag"].endswith('-3"') and out["VersionId"] != v1
        s3.put_object_tagging(Bucket="pgmp", Key="obj", VersionId=v1, Tagging={"TagSet": [{"Key": "old", "Value": "1"}]})
        # kill -9: the completed object and the open upload's part survive.
        srv.kill()
        srv.start()
        s3 = srv.client()
        assert s3.get_object(Bucket="pgmp", Key="obj")["Body"].read() == b"".join(parts)
        assert s3.get_object(Bucket="pgmp", Key="obj", VersionId=v1)["Body"].read() == b"first"
        assert s3.get_object_tagging(Bucket="pgmp", Key="obj")["TagSet"] == [{"Key": "a", "Value": "b"}]
        listed = s3.list_parts(Bucket="pgmp", Key="open", UploadId=done)["Parts"]
        assert [p["Size"] for p in listed] == [4]
        with pytest.raises(ClientError) as e:
            s3.list_parts(Bucket="pgmp", Key="obj", UploadId=uid)
        assert e.value.response["Error"]["Code"] == "NoSuchUpload"
    finally:
        if srv.proc and srv.proc.poll() is None:
            assert srv.stop() == 0, srv.log_text()
    fsck = run_billet("fsck", "pgmp", *pg, data_dir=srv.data_dir, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert ": 1 keys, 2 versions," in fsck.stdout and " 0 problems" in fsck.stdout, fsck.stdout
