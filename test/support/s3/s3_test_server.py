#!/usr/bin/env python3
"""mflow's S3 test server: s3rver (a faithful object store that checks no signature) behind a
verifying proxy that does what s3rver does not (docs/s3.md, "Test server"):

- every request's SigV4 signature is recomputed with botocore (sigv4_oracle.py) and refused
  with S3's own error XML when it does not match (SignatureDoesNotMatch, InvalidAccessKeyId,
  RequestTimeTooSkewed, AuthorizationHeaderMalformed, AccessDenied);
- x-amz-content-sha256 is compared with the body (XAmzContentSHA256Mismatch);
- headers that MinIO, Ceph and R2 reject (x-amz-checksum-*, x-amz-sdk-checksum-algorithm,
  x-amz-trailer, aws-chunked content encoding) are refused, so a client that sends them fails
  here as it would there;
- If-None-Match: * on PutObject and CompleteMultipartUpload (conditional create, which
  s3rver ignores) answers 412 PreconditionFailed when the key exists;
- with --fault-rate, faults are injected at random from --seed: 500 InternalError, 503
  SlowDown, a connection reset before or after the request reached s3rver, a body cut short,
  and a corrupted GET body.

Usage: s3_test_server.py --port-file F [--bucket B ...] [--fault-rate 0.2] [--seed 1]
  [--key ACCESS:SECRET ...] [--s3rver PATH] [--data DIR]
Writes the proxy's port to F once both servers are ready. GET /__proxy/stats (unsigned) gives
counters as JSON. SIGTERM stops both.
"""

import argparse
import hashlib
import http.client
import http.server
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from email.utils import formatdate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sigv4_oracle  # noqa: E402

REJECTED_HEADER_PREFIXES = ("x-amz-checksum-", "x-amz-sdk-checksum-algorithm", "x-amz-trailer")


def error_xml(code, message, resource="", extra=""):
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{_esc(message)}</Message>{extra}<Resource>{_esc(resource)}</Resource>"
            f"<RequestId>{random.getrandbits(64):016X}</RequestId></Error>").encode()


def _esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class State:
    def __init__(self, args, upstream_port):
        self.keys = dict(k.split(":", 1) for k in args.key)
        self.upstream_port = upstream_port
        self.rng = random.Random(args.seed)
        self.fault_rate = args.fault_rate
        self.faults = args.faults.split(",")
        self.lock = threading.Lock()
        self.create_lock = threading.Lock()
        self.completed_uploads = set()
        self.stats = {"requests": 0, "forwarded": 0, "rejected": {}, "faults": {}, "methods": {}}

    def count(self, group, name):
        with self.lock:
            self.stats[group][name] = self.stats[group].get(name, 0) + 1

    def pick_fault(self, method, is_object_get):
        with self.lock:
            if self.fault_rate <= 0 or self.rng.random() >= self.fault_rate:
                return None
            choices = [f for f in self.faults if not f.startswith("corrupt") or is_object_get]
            choices = [f for f in choices if f not in ("truncate",) or method == "GET"]
            return self.rng.choice(choices) if choices else None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None  # set by main

    def log_message(self, fmt, *args):  # quiet: tests read stats instead
        pass

    def _send(self, status, body=b"", headers=None):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Date", formatdate(usegmt=True))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body:
            self.send_header("Content-Type", "application/xml")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reject(self, status, code, message):
        self.state.count("rejected", code)
        self._send(status, error_xml(code, message, self.path))

    def _reset(self):
        # A connection reset: RST instead of FIN, as a crashed load balancer does.
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        self.close_connection = True
        self.connection.close()

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return None
        length = int(self.headers.get("Content-Length", "0") or "0")
        spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)
        sha = hashlib.sha256()
        left = length
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                break
            sha.update(chunk)
            spool.write(chunk)
            left -= len(chunk)
        spool.seek(0)
        return spool, length, sha.hexdigest(), left == 0

    def _handle(self):
        st = self.state
        with st.lock:
            st.stats["requests"] += 1
            st.stats["methods"][self.command] = st.stats["methods"].get(self.command, 0) + 1
        if self.path == "/__proxy/stats":
            body = json.dumps(st.stats).encode()
            self._send(200, body)
            return
        path, _, query = self.path.partition("?")
        body = self._read_body()
        if body is None:
            self._reject(501, "NotImplemented", "chunked transfer encoding is not accepted")
            return
        spool, length, digest, complete = body
        if not complete:
            self.close_connection = True
            return
        headers = [(k, v) for k, v in self.headers.items()]
        lower = {k.lower(): v for k, v in headers}
        for name in lower:
            if name.startswith(REJECTED_HEADER_PREFIXES):
                self._reject(400, "InvalidRequest", f"header {name} is not supported by this service")
                return
        if "aws-chunked" in lower.get("content-encoding", ""):
            self._reject(400, "InvalidRequest", "aws-chunked content encoding is not supported")
            return
        try:
            sigv4_oracle.verify(self.command, path, query, headers, st.keys.get)
        except sigv4_oracle.Rejection as e:
            status = 400 if e.code in ("AuthorizationHeaderMalformed",) else 403
            self._reject(status, e.code, e.message)
            return
        amz_date = lower.get("x-amz-date", "")
        try:
            signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
            if abs((datetime.now(timezone.utc) - signed_at).total_seconds()) > 900:
                self._reject(403, "RequestTimeTooSkewed",
                             "The difference between the request time and the current time is too large.")
                return
        except ValueError:
            self._reject(400, "AuthorizationHeaderMalformed", f"bad x-amz-date {amz_date!r}")
            return
        claimed = lower.get("x-amz-content-sha256", "")
        if claimed != "UNSIGNED-PAYLOAD" and claimed != digest:
            with st.lock:
                st.stats.setdefault("mismatches", []).append(
                    {"path": self.path, "length": length, "claimed": claimed, "body": digest})
            self._reject(400, "XAmzContentSHA256Mismatch",
                         "The provided 'x-amz-content-sha256' header does not match what was computed.")
            return
        is_object_get = self.command == "GET" and path.count("/") >= 2 and "list-type" not in query
        fault = st.pick_fault(self.command, is_object_get)
        if fault and fault != "corrupt-big":  # counted when applied (big bodies only)
            st.count("faults", fault)
        if fault == "500":
            self._send(500, error_xml("InternalError", "We encountered an internal error. Please try again.", path))
            return
        if fault == "503":
            self._send(503, error_xml("SlowDown", "Please reduce your request rate.", path))
            return
        if fault == "reset-before":
            self._reset()
            return
        upload_id = dict(p.partition("=")[::2] for p in query.split("&")).get("uploadId")
        if self.command == "POST" and upload_id:
            with st.lock:
                done = upload_id in st.completed_uploads
            if done:
                # s3rver drops the connection here; S3 answers NoSuchUpload.
                self._reject(404, "NoSuchUpload", "The specified upload does not exist.")
                return
        conditional = lower.get("if-none-match", "").strip() == "*" and (
            self.command == "PUT" or (self.command == "POST" and "uploadId=" in query))
        if conditional:
            st.create_lock.acquire()
        try:
            if conditional and self._exists(path):
                self._reject(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
                return
            status, resp_headers, resp = self._forward(path, query, headers, spool, length)
        finally:
            if conditional:
                st.create_lock.release()
        with st.lock:
            st.stats["forwarded"] += 1
            if self.command == "POST" and upload_id and status == 200:
                st.completed_uploads.add(upload_id)
        if fault == "reset-after":
            resp.close()
            self._reset()
            return
        content_range = dict((k.lower(), v) for k, v in resp_headers).get("content-range", "")
        if status == 206 and content_range.endswith("/0"):
            # s3rver answers a Range on an empty object 206 with a body it never sends; S3
            # answers 416 InvalidRange, which is what clients must handle.
            resp.close()
            self._send(416, error_xml("InvalidRange", "The requested range is not satisfiable", path))
            return
        self.send_response(status)
        for k, v in resp_headers:
            if k.lower() not in ("connection", "transfer-encoding", "keep-alive"):
                self.send_header(k, v)
        has_length = any(k.lower() == "content-length" for k, _ in resp_headers)
        if fault not in ("truncate", "corrupt", "corrupt-big") and has_length:
            # Streamed through in pieces: a 1 GB download must not sit in the proxy's memory.
            self.end_headers()
            if self.command != "HEAD":
                while True:
                    chunk = resp.resp.read(1 << 20)
                    if not chunk:
                        break
                    self.wfile.write(chunk)
            resp.close()
            return
        data = resp.read()
        if not has_length:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if fault == "truncate" and len(data) > 1:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self._reset()
            return
        if fault == "corrupt-big" and len(data) < (1 << 20):
            fault = None  # corrupt-big: only bodies of 1 MiB and more (whole artifacts)
        if fault == "corrupt-big" and 200 <= status < 300:
            st.count("faults", fault)
        if fault in ("corrupt", "corrupt-big") and data and 200 <= status < 300:
            i = st.rng.randrange(len(data))
            data = data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1:]
        self.wfile.write(data)

    def _exists(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.state.upstream_port, timeout=60)
        conn.request("HEAD", path)
        r = conn.getresponse()
        r.read()
        conn.close()
        return r.status == 200

    def _forward(self, path, query, headers, spool, length):
        conn = http.client.HTTPConnection("127.0.0.1", self.state.upstream_port, timeout=600)
        target = path + ("?" + query if query else "")
        # s3rver would check signatures with its own key table: the request is verified here
        # and reaches it anonymously (the bucket is public to s3rver).
        skip = {"authorization", "host", "if-none-match", "expect", "x-amz-security-token"}
        conn.putrequest(self.command, target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", f"127.0.0.1:{self.state.upstream_port}")
        for k, v in headers:
            if k.lower() not in skip and k.lower() != "content-length":
                conn.putheader(k, v)
        conn.putheader("Content-Length", str(length))
        conn.endheaders()
        while True:
            chunk = spool.read(1 << 20)
            if not chunk:
                break
            conn.send(chunk)
        r = conn.getresponse()
        return r.status, r.getheaders(), _Closing(r, conn)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


class _Closing:
    def __init__(self, resp, conn):
        self.resp, self.conn = resp, conn

    def read(self):
        data = self.resp.read()
        self.conn.close()
        return data

    def close(self):
        self.resp.close()
        self.conn.close()


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # Injected resets end connections abruptly (that is the point); anything else is a
        # bug of the proxy and goes to stderr (server.log of the test's S3Server).
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, BrokenPipeError, OSError)):
            super().handle_error(request, client_address)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--bucket", action="append", default=[])
    ap.add_argument("--key", action="append", default=[])
    ap.add_argument("--fault-rate", type=float, default=0.0)
    ap.add_argument("--faults", default="500,503,reset-before,reset-after,truncate,corrupt")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", default=None)
    ap.add_argument("--s3rver", default=os.path.join(here, "node_modules", ".bin", "s3rver"))
    args = ap.parse_args()
    if not args.key:
        args.key = ["AKIAMFLOWTEST0000001:mflow-test-secret/+xyz"]
    if not os.path.exists(args.s3rver):
        print(f"skipped: s3rver is not installed at {args.s3rver} "
              f"(run `npm ci --prefix {here}`, part of packaging/install-deps.sh)", file=sys.stderr)
        sys.exit(77)
    data = args.data or tempfile.mkdtemp(prefix="mflow-s3rver-")
    upstream_port = free_port()
    cmd = [args.s3rver, "-d", data, "-a", "127.0.0.1", "-p", str(upstream_port), "--silent"]
    for b in args.bucket:
        cmd += ["--configure-bucket", b]
    # s3rver makes ListObjectsV2 continuation tokens with DES, which Node 20's OpenSSL 3
    # only offers through its legacy provider (without it every second page is a 500).
    env = dict(os.environ, NODE_OPTIONS="--openssl-legacy-provider")
    child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, env=env)

    def stop(*_):
        child.terminate()
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", upstream_port), timeout=1).close()
            break
        except OSError:
            if child.poll() is not None or time.time() > deadline:
                print("s3rver did not start", file=sys.stderr)
                stop()
            time.sleep(0.1)
    Handler.state = State(args, upstream_port)
    server = QuietServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, args.port_file)
    try:
        server.serve_forever()
    finally:
        stop()


if __name__ == "__main__":
    main()
