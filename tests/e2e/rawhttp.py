"""Requests the way an attacker or a careless client sends them: raw
sockets, SigV4 signatures made with botocore's signer, headers added after
signing, bodies cut short."""

import hashlib
import hmac
import http.client
import socket
from urllib.parse import urlsplit

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import ACCESS_KEY, SECRET_KEY


class _DeclaredPayload(S3SigV4Auth):
    """Signs with a given `x-amz-content-sha256` value instead of the hash
    of the body."""

    def __init__(self, credentials, region, payload):
        super().__init__(credentials, "s3", region)
        self._payload = payload

    def payload(self, request):
        return self._payload


def sign(method, url, body=b"", headers=None, key=ACCESS_KEY, secret=SECRET_KEY, region="us-east-1", payload=None):
    """The headers of a header-signed SigV4 request. The payload hash is
    the body's (botocore signs payloads over plain HTTP) unless `payload`
    names the value to sign instead (UNSIGNED-PAYLOAD, STREAMING-…)."""
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    creds = Credentials(key, secret)
    signer = S3SigV4Auth(creds, "s3", region) if payload is None else _DeclaredPayload(creds, region, payload)
    signer.add_auth(req)
    out = dict(req.headers.items())
    # Signed from the URL; a raw request must send it itself.
    out.setdefault("Host", urlsplit(url).netloc)
    return out


def signature_of(headers):
    """The `Signature=` of an Authorization header."""
    return headers["Authorization"].rsplit("Signature=", 1)[1]


def presign(method, url, headers=None, expires=300, key=ACCESS_KEY, secret=SECRET_KEY, region="us-east-1"):
    """A presigned URL; `headers` are signed into it."""
    req = AWSRequest(method=method, url=url, headers=dict(headers or {}))
    S3SigV4QueryAuth(Credentials(key, secret), "s3", region, expires=expires).add_auth(req)
    return req.url


def connect(port, timeout=30):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def head_bytes(method, target, headers):
    lines = [f"{method} {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock, method="GET"):
    """(status, headers as a lower-case dict, body) of the next response."""
    r = http.client.HTTPResponse(sock, method=method)
    r.begin()
    body = r.read()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def request(port, method, target, headers, body=b""):
    """One request on a new connection; returns the response."""
    with connect(port) as s:
        s.sendall(head_bytes(method, target, headers) + body)
        return read_response(s, method)


def closed_by_peer(sock, timeout):
    """Whether the server closes the connection within `timeout` seconds
    (reading and dropping whatever else it sends)."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def _hmac(key, msg):
    return hmac.new(key, msg.encode() if isinstance(msg, str) else msg, hashlib.sha256).digest()


def aws_chunked(chunks, seed_signature, amz_date, region="us-east-1", secret=SECRET_KEY, corrupt=None):
    """An `aws-chunked` body with signed chunks (the empty final chunk
    included) chaining from the seed signature; `corrupt` is the index of
    a chunk whose signature is replaced by a wrong one."""
    date = amz_date[:8]
    scope = f"{date}/{region}/s3/aws4_request"
    k = _hmac(("AWS4" + secret).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, "s3")
    k = _hmac(k, "aws4_request")
    empty = hashlib.sha256(b"").hexdigest()
    prev = seed_signature
    out = b""
    for i, chunk in enumerate(list(chunks) + [b""]):
        to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, empty, hashlib.sha256(chunk).hexdigest()])
        sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        prev = sig
        if i == corrupt:
            sig = "0" * 64
        out += f"{len(chunk):x};chunk-signature={sig}\r\n".encode() + chunk + b"\r\n"
    return out
