"""Operations: metrics, health, graceful shutdown, virtual-hosted style."""

import hashlib
import http.client
import signal
import time
import urllib.request

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
import pytest

from conftest import ACCESS_KEY, SECRET_KEY, Server, client, run_billet


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.read().decode()


def test_metrics_and_health(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="m", Body=b"x")
    s3.get_object(Bucket=bucket, Key="m")["Body"].read()
    st, text = get(server.endpoint + "/metrics")
    assert st == 200
    assert 'billet_requests_total{op="PutObject",status="200"}' in text
    assert 'billet_requests_total{op="GetObject",status="200"}' in text
    assert "billet_request_duration_seconds_bucket" in text
    assert 'billet_log_fsyncs_total{plane="data"}' in text
    assert "billet_commit_batches_total" in text
    assert get(server.endpoint + "/health/live") == (200, "ok\n")
    assert get(server.endpoint + "/health/ready") == (200, "ready\n")


def test_sigterm_drains_in_flight_requests(tmp_path):
    """A PUT whose body is still arriving when SIGTERM lands completes and is kept."""
    srv = Server(tmp_path / "data").start()
    s3 = srv.client()
    s3.create_bucket(Bucket="drain")
    body = bytes(range(256)) * 4096  # 1 MiB
    url = f"{srv.endpoint}/drain/slow"
    req = AWSRequest(
        method="PUT",
        url=url,
        headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD", "Content-Length": str(len(body))},
    )
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    conn.putrequest("PUT", "/drain/slow", skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", f"127.0.0.1:{srv.port}")
    for k, v in req.headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    half = len(body) // 2
    conn.send(body[:half])
    # The request is now in flight: the server has its head and half its body.
    time.sleep(0.5)
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert srv.proc.poll() is None, "the server must wait for the in-flight request"
    conn.send(body[half:])
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    assert resp.getheader("ETag") == f'"{hashlib.md5(body).hexdigest()}"'
    conn.close()
    assert srv.stop(timeout=30) == 0, srv.log_text()
    srv.start()
    try:
        assert srv.client().get_object(Bucket="drain", Key="slow")["Body"].read() == body
    finally:
        srv.stop()


def test_virtual_hosted_style(tmp_path):
    srv = Server(tmp_path / "data", extra_args=["--domain", "s3.billet.test"]).start()
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="vhost")
        host = f"vhost.s3.billet.test:{srv.port}"
        body = b"via virtual host"
        req = AWSRequest(method="PUT", url=f"http://{host}/obj", data=body, headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
        SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(req)
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        headers = dict(req.headers.items())
        headers["Host"] = host
        conn.request("PUT", "/obj", body=body, headers=headers)
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        conn.close()
        assert s3.get_object(Bucket="vhost", Key="obj")["Body"].read() == body
    finally:
        srv.stop()


def test_keys_cli(tmp_path):
    srv = Server(tmp_path / "data").start()
    try:
        out = run_billet("keys", "create", "--owner", "alice", data_dir=srv.data_dir).stdout
        creds = dict(line.split("=", 1) for line in out.split())
        alice = client(srv.endpoint, creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"])
        alice.create_bucket(Bucket="alices")
        alice.put_object(Bucket="alices", Key="k", Body=b"v")
        assert alice.get_object(Bucket="alices", Key="k")["Body"].read() == b"v"

        out = run_billet("keys", "create", "--id", "BKDOOMED0000000000000", "--secret", "s" * 40, data_dir=srv.data_dir).stdout
        assert "AWS_ACCESS_KEY_ID=BKDOOMED0000000000000" in out
        listed = run_billet("keys", "list", data_dir=srv.data_dir).stdout
        assert creds["AWS_ACCESS_KEY_ID"] in listed and "alice" in listed and "BKDOOMED0000000000000" in listed
        assert creds["AWS_SECRET_ACCESS_KEY"] not in listed
        assert run_billet("keys", "delete", "BKDOOMED0000000000000", data_dir=srv.data_dir).returncode == 0
        assert "BKDOOMED0000000000000" not in run_billet("keys", "list", data_dir=srv.data_dir).stdout
        doomed = client(srv.endpoint, "BKDOOMED0000000000000", "s" * 40)
        with pytest.raises(ClientError) as e:
            doomed.list_buckets()
        assert e.value.response["Error"]["Code"] == "InvalidAccessKeyId"
        missing = run_billet("keys", "delete", "BKNOSUCHKEY", data_dir=srv.data_dir, check=False)
        assert missing.returncode != 0 and "BKNOSUCHKEY" in missing.stderr
    finally:
        assert srv.stop() == 0, srv.log_text()
