"""Fixtures for end-to-end tests: the real `billet` binary on 127.0.0.1,
driven by real S3 clients. Every server is started by the test that needs
it on a free port with its own data directory, and stopped by it."""

import hashlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
BILLET = os.environ.get("BILLET_BIN", str(ROOT / "target" / "debug" / "billet"))
ACCESS_KEY = "BKTESTKEY0000000001"
SECRET_KEY = "test-secret-key-0123456789abcdefghijklmn"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `billet serve` process."""

    def __init__(self, data_dir, extra_args=(), env=None, preexec_fn=None):
        self.data_dir = Path(data_dir)
        self.extra_args = list(extra_args)
        self.env = env or {}
        self.preexec_fn = preexec_fn
        self.port = None
        self.proc = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=60):
        self.port = free_port()
        env = dict(os.environ)
        env.update({"BILLET_ACCESS_KEY": ACCESS_KEY, "BILLET_SECRET_KEY": SECRET_KEY, "BILLET_LOG": "warn"})
        env.update(self.env)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [BILLET, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir), *self.extra_args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=self.preexec_fn,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"billet exited with {self.proc.returncode}: {self.log_text()}")
            try:
                with urllib.request.urlopen(self.endpoint + "/health/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"billet did not become ready: {self.log_text()}")

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        self.log.close()
        return self.proc.returncode

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def client(self, **config):
        return client(self.endpoint, **config)


def client(endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY, **config):
    cfg = dict(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=5, read_timeout=60)
    cfg.update(config)
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(**cfg),
    )


def run_billet(*args, data_dir, check=True, timeout=300):
    return subprocess.run(
        [BILLET, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


@pytest.fixture(scope="session")
def server():
    with tempfile.TemporaryDirectory(prefix="billet-e2e-") as tmp:
        s = Server(Path(tmp) / "data").start()
        yield s
        assert s.stop() == 0, s.log_text()


@pytest.fixture(scope="session")
def s3(server):
    return server.client()


@pytest.fixture
def bucket(s3):
    name = "b-" + uuid.uuid4().hex[:16]
    s3.create_bucket(Bucket=name)
    yield name


def md5(data):
    return hashlib.md5(data).hexdigest()


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def status(excinfo):
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]
