"""Fixtures for end-to-end tests: the real `billet` binary on 127.0.0.1,
driven by real S3 clients. Every server is started by the test that needs
it on a free port with its own data directory, and stopped by it."""

import base64
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


def history(server, path):
    """GET /_billet/v1/<path> with Basic authentication (allowed from
    loopback by default)."""
    req = urllib.request.Request(server.endpoint + "/_billet/v1/" + path)
    token = base64.b64encode(f"{ACCESS_KEY}:{SECRET_KEY}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def md5(data):
    return hashlib.md5(data).hexdigest()


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def status(excinfo):
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


# The cold tier's remotes: a real Garage server, and a second billet.

GARAGE = os.environ.get("BILLET_GARAGE", "")
GARAGE_KEY = "GK0123456789abcdef01234567"
GARAGE_SECRET = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"


class Remote:
    """An S3-compatible store billet can ship to."""

    def __init__(self, name, endpoint, bucket, access_key, secret_key, region):
        self.name = name
        self.endpoint = endpoint
        self.bucket = bucket
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def toml(self, prefix=""):
        return (
            "[remote]\n"
            f'bucket = "{self.bucket}"\n'
            f'endpoint = "{self.endpoint}"\n'
            f'region = "{self.region}"\n'
            f'prefix = "{prefix}"\n'
            f'access_key_id = "{self.access_key}"\n'
            f'secret_access_key = "{self.secret_key}"\n'
        )


class Garage:
    """A single-node Garage, configured the way its quick start does."""

    def __init__(self, root):
        self.root = Path(root)
        self.rpc, self.s3, self.admin = free_port(), free_port(), free_port()
        self.config = self.root / "garage.toml"
        self.config.write_text(
            f'metadata_dir = "{self.root}/meta"\n'
            f'data_dir = "{self.root}/data"\n'
            'db_engine = "lmdb"\n'
            "replication_factor = 1\n"
            f'rpc_bind_addr = "127.0.0.1:{self.rpc}"\n'
            f'rpc_public_addr = "127.0.0.1:{self.rpc}"\n'
            f'rpc_secret = "{os.urandom(32).hex()}"\n'
            "[s3_api]\n"
            's3_region = "garage"\n'
            f'api_bind_addr = "127.0.0.1:{self.s3}"\n'
            'root_domain = ".s3.garage.localhost"\n'
            "[admin]\n"
            f'api_bind_addr = "127.0.0.1:{self.admin}"\n'
        )
        self.proc = None

    def cli(self, *args):
        return subprocess.run(
            [GARAGE, "-c", str(self.config), *args], capture_output=True, text=True, timeout=60, check=True
        ).stdout

    def start(self):
        self.log = open(self.root / "garage.log", "ab")
        self.proc = subprocess.Popen(
            [GARAGE, "-c", str(self.config), "server"], stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.time() + 60
        while True:
            try:
                out = self.cli("status")
                break
            except subprocess.CalledProcessError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.2)
        return out

    def setup(self, bucket):
        out = self.start()
        lines = out.split("HEALTHY NODES")[1].splitlines()
        node = next(line.split()[0] for line in lines if line.split() and all(c in "0123456789abcdef" for c in line.split()[0]))
        self.cli("layout", "assign", "-z", "dc1", "-c", "1G", node)
        self.cli("layout", "apply", "--version", "1")
        self.cli("key", "import", "--yes", "-n", "billet", GARAGE_KEY, GARAGE_SECRET)
        self.cli("key", "allow", "--create-bucket", "billet")
        self.cli("bucket", "create", bucket)
        self.cli("bucket", "allow", "--read", "--write", "--owner", bucket, "--key", "billet")
        self.wait_ready(bucket)
        return Remote("garage", f"http://127.0.0.1:{self.s3}", bucket, GARAGE_KEY, GARAGE_SECRET, "garage")

    def wait_ready(self, bucket):
        deadline = time.time() + 60
        remote = Remote("garage", f"http://127.0.0.1:{self.s3}", bucket, GARAGE_KEY, GARAGE_SECRET, "garage")
        while True:
            try:
                remote.client().list_objects_v2(Bucket=bucket)
                return
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="session")
def garage():
    if not GARAGE or not os.access(GARAGE, os.X_OK):
        if os.environ.get("CI") == "true":
            pytest.fail("BILLET_GARAGE must name a garage binary under CI=true (scripts/test installs it)")
        pytest.skip("no Garage binary: set BILLET_GARAGE (scripts/test installs one)")
    with tempfile.TemporaryDirectory(prefix="billet-garage-") as tmp:
        g = Garage(tmp)
        remote = g.setup("billet-cold")
        remote.garage = g
        yield remote
        g.stop()


@pytest.fixture(scope="session")
def billet_remote():
    """A second billet as the remote store of the first."""
    with tempfile.TemporaryDirectory(prefix="billet-as-remote-") as tmp:
        s = Server(Path(tmp) / "data").start()
        s.client().create_bucket(Bucket="billet-cold")
        yield Remote("billet", s.endpoint, "billet-cold", ACCESS_KEY, SECRET_KEY, "us-east-1")
        assert s.stop() == 0, s.log_text()


@pytest.fixture(params=["garage", "billet"])
def remote(request):
    return request.getfixturevalue("garage" if request.param == "garage" else "billet_remote")
