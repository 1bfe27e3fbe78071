#!/usr/bin/env python3
"""Loopback fakes of the AWS credential services mflow's credential chain talks to, answering
as the real services do (shapes from the AWS documentation):

  STS        POST /  Action=AssumeRoleWithWebIdentity (form body, unsigned): the
             AssumeRoleWithWebIdentityResponse XML, or STS's ErrorResponse XML (400
             InvalidIdentityToken for a token other than --web-identity-token, 403
             AccessDenied for a role not in --role-arn, a signed request is refused).
             POST /  Action=AssumeRole: must be SigV4-signed for service "sts" with
             --source-key/--source-secret or with credentials this fake handed out; the
             signature is recomputed with botocore (test/support/s3/sigv4_oracle.py) and the
             body's SHA-256 compared with x-amz-content-sha256 (403 SignatureDoesNotMatch,
             403 InvalidClientTokenId otherwise); answers AssumeRoleResponse XML.
  container  GET --container-path: the ECS/EKS Pod Identity JSON (AccessKeyId,
             SecretAccessKey, Token, Expiration); 401 unless the Authorization header equals
             --container-token.
  IMDSv2     PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds (1..21600) gives
             a session token; GET /latest/meta-data/iam/security-credentials/[ROLE] without a
             valid X-aws-ec2-metadata-token gets 401, as on EC2 with IMDSv2 required.

Every credential handed out is new: ASIAFAKE0001, ASIAFAKE0002, ... with the secret
fakeSecretNNNN and the session token fakeTokenNNNN, expiring --expires-in seconds later.
--clock-file names a file holding seconds the test moved its clock forward (the fake's
Expiration moves with it). --delay makes each credential answer slow (to see that concurrent callers share one fetch).
With --tls-cert/--tls-key it serves https. Each request is appended to --log as "METHOD PATH STATUS". The port is written to
--port-file; the server exits when --exit-with-pid is gone.
"""
import argparse
import datetime
import hashlib
import os
import secrets
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "s3"))
import sigv4_oracle  # noqa: E402  (the botocore signature check the S3 tests use too)

ARGS = None
LOCK = threading.Lock()
STATE = {"issued": 0, "imds_tokens": set()}


def next_credentials():
    with LOCK:
        STATE["issued"] += 1
        n = STATE["issued"]
    # --clock-file holds how many seconds the test moved its clock forward: the fake shares it.
    offset = 0
    if ARGS.clock_file and os.path.exists(ARGS.clock_file):
        with open(ARGS.clock_file) as f:
            offset = int(f.read().strip() or 0)
    expires = (datetime.datetime.now(datetime.timezone.utc) +
               datetime.timedelta(seconds=ARGS.expires_in + offset))
    return {
        "AccessKeyId": "ASIAFAKE%04d" % n,
        "SecretAccessKey": "fakeSecret%04d" % n,
        "Token": "fakeToken%04d" % n,
        "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def sts_error(code, message, kind="Sender"):
    return ('<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">\n'
            "  <Error>\n    <Type>%s</Type>\n    <Code>%s</Code>\n    <Message>%s</Message>\n  </Error>\n"
            "  <RequestId>%s</RequestId>\n</ErrorResponse>\n" % (kind, code, message, secrets.token_hex(16)))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: the request log is --log
        pass

    def reply(self, status, body, content_type="text/plain"):
        # Logged before the answer goes out, so a client that got it sees it in the log.
        if ARGS.log:
            with LOCK, open(ARGS.log, "a") as f:
                f.write("%s %s %d\n" % (self.command, self.path, status))
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def do_POST(self):
        raw = self.body()
        form = urllib.parse.parse_qs(raw.decode(), keep_blank_values=True)
        get = lambda k: form.get(k, [""])[0]
        action = get("Action")
        if self.path != "/" or action not in ("AssumeRoleWithWebIdentity", "AssumeRole"):
            return self.reply(400, sts_error("InvalidAction", "Could not find operation %s" % action), "text/xml")
        if get("Version") != "2011-06-15" or not get("RoleSessionName"):
            return self.reply(400, sts_error("MissingParameter", "Version and RoleSessionName are required"),
                              "text/xml")
        if action == "AssumeRole":
            problem = self.check_signature(raw)
            if problem:
                return self.reply(403, sts_error(*problem), "text/xml")
        else:
            if self.headers.get("Authorization"):
                return self.reply(400, sts_error("InvalidParameterValue",
                                                 "AssumeRoleWithWebIdentity is an unsigned call"), "text/xml")
            if get("WebIdentityToken") != ARGS.web_identity_token:
                return self.reply(400, sts_error("InvalidIdentityToken", "Couldn't retrieve verification key "
                                                 "from your identity provider"), "text/xml")
        if get("RoleArn") not in ARGS.role_arn.split(","):
            return self.reply(403, sts_error("AccessDenied", "Not authorized to perform sts:%s" % action),
                              "text/xml")
        time.sleep(ARGS.delay)
        c = next_credentials()
        role = get("RoleArn")
        extra = ("<SubjectFromWebIdentityToken>system:serviceaccount:default:mflow</SubjectFromWebIdentityToken>\n"
                 "    <Audience>sts.amazonaws.com</Audience>\n    " if action == "AssumeRoleWithWebIdentity" else "")
        xml = f"""<{action}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <{action}Result>
    {extra}<AssumedRoleUser>
      <Arn>{role.replace(':role/', ':assumed-role/')}/{get("RoleSessionName")}</Arn>
      <AssumedRoleId>AROAFAKE:{get("RoleSessionName")}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>{c["Token"]}</SessionToken>
      <SecretAccessKey>{c["SecretAccessKey"]}</SecretAccessKey>
      <Expiration>{c["Expiration"]}</Expiration>
      <AccessKeyId>{c["AccessKeyId"]}</AccessKeyId>
    </Credentials>
  </{action}Result>
  <ResponseMetadata>
    <RequestId>{secrets.token_hex(16)}</RequestId>
  </ResponseMetadata>
</{action}Response>
"""
        self.reply(200, xml, "text/xml")

    def check_signature(self, raw):
        """None when the request is signed for STS by a known key; else (code, message)."""
        def secret_for(key):
            if key == ARGS.source_key:
                return ARGS.source_secret
            if key.startswith("ASIAFAKE"):
                return "fakeSecret" + key[len("ASIAFAKE"):]
            return None
        auth = self.headers.get("Authorization", "")
        if "/sts/aws4_request" not in auth:
            return ("IncompleteSignature", "the request must be signed for the sts service")
        if self.headers.get("x-amz-content-sha256") != hashlib.sha256(raw).hexdigest():
            return ("SignatureDoesNotMatch", "x-amz-content-sha256 is not the body's SHA-256")
        try:
            sigv4_oracle.verify("POST", "/", "", list(self.headers.items()), secret_for)
        except sigv4_oracle.Rejection as e:
            code = "InvalidClientTokenId" if e.code == "InvalidAccessKeyId" else e.code
            return (code, e.message.split("\n")[0])
        return None

    def do_PUT(self):
        self.body()
        if self.path != "/latest/api/token":
            return self.reply(404, "Not Found")
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
        if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return self.reply(400, "Bad Request")
        token = secrets.token_urlsafe(32)
        with LOCK:
            STATE["imds_tokens"].add(token)
        self.reply(200, token)

    def do_GET(self):
        if ARGS.container_path and self.path == ARGS.container_path:
            if self.headers.get("Authorization") != ARGS.container_token:
                return self.reply(401, '{"code":"AccessDeniedException","message":"invalid token"}',
                                  "application/json")
            time.sleep(ARGS.delay)
            c = next_credentials()
            c["RoleArn"] = ARGS.role_arn.split(",")[0]
            return self.reply(200, json_dump(c), "application/json")
        prefix = "/latest/meta-data/iam/security-credentials/"
        if self.path.startswith(prefix):
            with LOCK:
                ok = self.headers.get("X-aws-ec2-metadata-token") in STATE["imds_tokens"]
            if not ok:
                return self.reply(401, "Unauthorized")
            role = self.path[len(prefix):]
            if role == "":
                return self.reply(200, ARGS.imds_role)
            if role != ARGS.imds_role:
                return self.reply(404, "Not Found")
            time.sleep(ARGS.delay)
            c = next_credentials()
            c.update({"Code": "Success", "Type": "AWS-HMAC",
                      "LastUpdated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")})
            return self.reply(200, json_dump(c), "text/plain")
        self.reply(404, "Not Found")


def json_dump(obj):
    import json
    return json.dumps(obj, indent=2)


def watch_parent(pid):
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(0)
        time.sleep(0.5)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--log")
    p.add_argument("--exit-with-pid", type=int)
    p.add_argument("--expires-in", type=int, default=3600)
    p.add_argument("--delay", type=float, default=0)
    p.add_argument("--clock-file")
    p.add_argument("--role-arn", default="arn:aws:iam::123456789012:role/mflow",
                   help="comma-separated roles that may be assumed")
    p.add_argument("--source-key", default="AKIDSOURCE")
    p.add_argument("--source-secret", default="sourceSecretValue")
    p.add_argument("--web-identity-token", default="eyJhbGciOiJSUzI1NiJ9.fake-web-identity.sig")
    p.add_argument("--container-path", default="/v2/credentials/fake")
    p.add_argument("--container-token", default="fakeContainerAuthToken")
    p.add_argument("--imds-role", default="mflow-node-role")
    p.add_argument("--tls-cert", help="serve https with this certificate (and --tls-key)")
    p.add_argument("--tls-key")
    ARGS = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if ARGS.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ARGS.tls_cert, ARGS.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    if ARGS.exit_with_pid:
        threading.Thread(target=watch_parent, args=(ARGS.exit_with_pid,), daemon=True).start()
    tmp = ARGS.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, ARGS.port_file)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
