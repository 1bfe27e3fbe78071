#!/usr/bin/env python3
"""An independent SigV4 check: recomputes a request's signature with botocore, the signer of
the AWS CLI and boto3, the way S3 verifies it (the signed headers are those the Authorization
header names; the path and query are decoded and re-encoded by S3's rules, and the wire form
must already be that encoding).

Used by the verifying proxy (s3_verifying_proxy.py) for every request, and by the signer's
unit test: `sigv4_oracle.py FILE` reads JSON lines {"method", "path", "query", "headers":
[[name, value], ...], "secret"} (path and query in wire form) and prints one line per request:
"ok" or "mismatch: <why>".
"""

import json
import re
import sys
from urllib.parse import quote, unquote_to_bytes

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,"
    r"\s*SignedHeaders=([a-z0-9;\-]+),\s*Signature=([0-9a-f]{64})$")


class Rejection(Exception):
    """A request S3 would refuse: code is S3's error code."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def s3_encode(raw, safe):
    return quote(raw, safe=safe)  # quote() keeps A-Z a-z 0-9 _ . - ~ and `safe`


def canonical_path(wire_path):
    return s3_encode(unquote_to_bytes(wire_path), "/")


def decoded_query(wire_query):
    params = []
    if wire_query:
        for pair in wire_query.split("&"):
            name, _, value = pair.partition("=")
            params.append((unquote_to_bytes(name), unquote_to_bytes(value)))
    return params


def canonical_query_of(params):
    pairs = sorted((s3_encode(n, ""), s3_encode(v, "")) for n, v in params)
    return "&".join(f"{n}={v}" for n, v in pairs)


def verify(method, wire_path, wire_query, headers, secret_for):
    """headers: list of (name, value). secret_for(access_key) -> secret or None.
    Returns the access key on success; raises Rejection otherwise."""
    lower = {}
    for name, value in headers:
        lower.setdefault(name.lower(), []).append(value)
    auth = lower.get("authorization", [None])[0]
    if auth is None:
        raise Rejection("AccessDenied", "Access Denied (no Authorization header)")
    m = AUTH_RE.match(auth)
    if not m:
        raise Rejection("AuthorizationHeaderMalformed",
                        f"The authorization header is malformed: {auth.split('Signature=')[0]}")
    access_key, date, region, service, signed, signature = m.groups()
    secret = secret_for(access_key)
    if secret is None:
        raise Rejection("InvalidAccessKeyId",
                        "The AWS Access Key Id you provided does not exist in our records.")
    signed_names = signed.split(";")
    for required in ("host", "x-amz-date", "x-amz-content-sha256"):
        if required not in signed_names:
            raise Rejection("AccessDenied", f"{required} must be a signed header")
    if "x-amz-security-token" in lower and "x-amz-security-token" not in signed_names:
        raise Rejection("AccessDenied", "x-amz-security-token must be a signed header")
    if signed_names != sorted(set(signed_names)):
        raise Rejection("AuthorizationHeaderMalformed", "SignedHeaders are not sorted and unique")
    amz_date = lower.get("x-amz-date", [""])[0]
    if amz_date[:8] != date:
        raise Rejection("AuthorizationHeaderMalformed",
                        f"the credential date {date} is not the x-amz-date {amz_date}")
    if canonical_path(wire_path) != wire_path:
        raise Rejection("SignatureDoesNotMatch",
                        f"the path {wire_path} is not in canonical encoding "
                        f"({canonical_path(wire_path)})")
    params = decoded_query(wire_query)
    req = AWSRequest(method=method, url="http://placeholder" + wire_path)
    for name in signed_names:
        if name not in lower:
            raise Rejection("AccessDenied", f"signed header {name} is not in the request")
        for value in lower[name]:
            req.headers[name] = value  # HTTPHeaders keeps repeated names, as get_all needs
    req.context["timestamp"] = amz_date
    signer = S3SigV4Auth(Credentials(access_key, secret), service, region)
    try:
        req.params = [(n.decode("utf-8"), v.decode("utf-8")) for n, v in params]
        canonical = signer.canonical_request(req)
    except UnicodeDecodeError:
        # botocore takes parameters as text; bytes that are not UTF-8 are encoded here.
        req.params = {}
        lines = signer.canonical_request(req).split("\n")
        lines[2] = canonical_query_of(params)
        canonical = "\n".join(lines)
    expected = signer.signature(signer.string_to_sign(req, canonical), req)
    if expected != signature:
        raise Rejection(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.\nCanonicalRequest:\n" + canonical)
    return access_key


def main(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            try:
                verify(r["method"], r["path"], r["query"], [tuple(h) for h in r["headers"]],
                       lambda _key, s=r["secret"]: s)
                print("ok")
            except Rejection as e:
                print("mismatch: " + e.code + ": " + e.message.replace("\n", "\\n"))


if __name__ == "__main__":
    main(sys.argv[1])
