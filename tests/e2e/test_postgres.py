"""`billet serve --index postgres`: the same S3 behaviour with the index in
a real PostgreSQL server (127.0.0.1:5432, database `test`). Skipped when no
server is reachable, except under CI=true where that is a failure."""

import os
import socket
import subprocess
import uuid

import pytest

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
