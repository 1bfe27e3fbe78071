#!/usr/bin/env python3
"""fake-kube: a protocol-faithful fake Kubernetes API server for mflow's tests.

Owns the HTTP(S) surface: routing of the REST paths mflow and kubectl use (discovery,
batch/v1 Jobs, core/v1 Pods, pods/log, namespaces, nodes), bearer-token and client-cert
authentication, Status error bodies, chunked watch streams and `follow` log streams, fault
injection, request statistics and the /_fake control endpoints. The object semantics live in
api.py (defaults, validation), store.py (resourceVersions, watch history) and cluster.py
(GC, Job controller, scheduler, kubelet). README.md next to this file documents usage.

Run: server.py --port 0 --state-dir DIR [--tls-cert C --tls-key K [--client-ca CA]]
     [--token T] ...   (prints the port once ready and writes it to DIR/port)
"""

import argparse
import copy
import http.server
import json
import os
import random
import re
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import api  # noqa: E402
import cluster as cl  # noqa: E402
import kube_model as km  # noqa: E402
import openapi_check  # noqa: E402
from store import Store  # noqa: E402

SERVER_VERSION = {"major": "1", "minor": "35", "gitVersion": "v1.35.0-fake",
                  "gitCommit": "0000000000000000000000000000000000000000",
                  "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                  "goVersion": "go1.25.0", "compiler": "gc", "platform": "linux/amd64"}

# resource -> (group, version, Kind, namespaced, verbs)
RESOURCES = {
    "jobs": ("batch", "v1", "Job", True),
    "pods": ("", "v1", "Pod", True),
    "namespaces": ("", "v1", "Namespace", False),
    "nodes": ("", "v1", "Node", False),
}
WRITE_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update",
               "watch"]


def discovery_core(port):
    def res(name, kind, namespaced, verbs, short=None, cats=None):
        r = {"name": name, "singularName": "" if "/" in name else kind.lower(),
             "namespaced": namespaced, "kind": kind, "verbs": verbs}
        if short:
            r["shortNames"] = short
        if cats:
            r["categories"] = cats
        return r
    return {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        res("namespaces", "Namespace", False, ["create", "get", "list", "watch"], ["ns"]),
        res("nodes", "Node", False, ["get", "list", "watch"], ["no"]),
        res("pods", "Pod", True, WRITE_VERBS, ["po"], ["all"]),
        res("pods/eviction", "Eviction", True, ["create"]),
        res("pods/log", "Pod", True, ["get"]),
        res("pods/status", "Pod", True, ["get"])]}


def discovery_batch():
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "batch/v1",
            "resources": [
                {"name": "jobs", "singularName": "job", "namespaced": True, "kind": "Job",
                 "verbs": WRITE_VERBS, "categories": ["all"]},
                {"name": "jobs/status", "singularName": "", "namespaced": True, "kind": "Job",
                 "verbs": ["get"]}]}


BATCH_GROUP = {"name": "batch", "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
               "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"}}


# ============================================================================================
# Statistics (GET /_fake/stats)


class Stats:
    """Request counts by verb+resource, watches, and peak concurrency of Jobs/pods/
    containers (the e2e tests assert e.g. "never more than 16 Jobs active")."""

    def __init__(self):
        self.lock = threading.Lock()
        self.watches_active = 0
        self.active_jobs = set()
        self.active_pods = set()
        self.containers_running = 0
        self.in_flight = {}  # "verb resource" -> requests being handled right now
        self.reset()

    def reset(self):
        """Zeroes the counters; peaks restart from what is active right now."""
        with self.lock:
            self.requests = {}
            self.max_in_flight = dict(self.in_flight)
            self.watches_opened = 0
            self.faults_applied = 0
            self.max_active_jobs = len(self.active_jobs)
            self.max_active_pods = len(self.active_pods)
            self.jobs_created = 0
            self.pods_created = 0
            self.max_containers_running = self.containers_running
            self.containers_started = 0

    def count(self, verb, resource):
        with self.lock:
            key = verb + " " + resource
            self.requests[key] = self.requests.get(key, 0) + 1

    def begin(self, verb, resource):
        """Counts a request and marks it in flight until done(verb, resource)."""
        self.count(verb, resource)
        with self.lock:
            key = verb + " " + resource
            self.in_flight[key] = self.in_flight.get(key, 0) + 1
            self.max_in_flight[key] = max(self.max_in_flight.get(key, 0), self.in_flight[key])

    def done(self, verb, resource):
        with self.lock:
            key = verb + " " + resource
            self.in_flight[key] -= 1

    def on_event(self, ev):
        """Store listener: tracks unfinished Jobs and Pending/Running pods."""
        with self.lock:
            uid = ev.obj["metadata"]["uid"]
            if ev.resource == "jobs":
                if ev.type == "ADDED":
                    self.jobs_created += 1
                if ev.type == "DELETED" or cl.job_finished(ev.obj):
                    self.active_jobs.discard(uid)
                else:
                    self.active_jobs.add(uid)
                self.max_active_jobs = max(self.max_active_jobs, len(self.active_jobs))
            elif ev.resource == "pods":
                if ev.type == "ADDED":
                    self.pods_created += 1
                if ev.type == "DELETED" or cl.pod_terminal(ev.obj):
                    self.active_pods.discard(uid)
                else:
                    self.active_pods.add(uid)
                self.max_active_pods = max(self.max_active_pods, len(self.active_pods))

    def container_started(self):
        with self.lock:
            self.containers_started += 1
            self.containers_running += 1
            self.max_containers_running = max(self.max_containers_running,
                                              self.containers_running)

    def container_stopped(self):
        with self.lock:
            self.containers_running -= 1

    def snapshot(self):
        with self.lock:
            by_verb = {}
            for k, v in self.requests.items():
                verb = k.split(" ")[0]
                if verb != "jobcontroller":
                    by_verb[verb] = by_verb.get(verb, 0) + v
            return {"requests": dict(sorted(self.requests.items())),
                    "requests_by_verb": dict(sorted(by_verb.items())),
                    "requests_total": sum(by_verb.values()),
                    "max_in_flight": dict(sorted(self.max_in_flight.items())),
                    "watches_opened": self.watches_opened,
                    "watches_active": self.watches_active,
                    "faults_applied": self.faults_applied,
                    "jobs": {"active": len(self.active_jobs),
                             "max_active": self.max_active_jobs,
                             "created": self.jobs_created},
                    "pods": {"active": len(self.active_pods),
                             "max_active": self.max_active_pods,
                             "created": self.pods_created},
                    "containers": {"running": self.containers_running,
                                   "max_running": self.max_containers_running,
                                   "started": self.containers_started}}


# ============================================================================================
# Fault injection (POST /_fake/faults, --faults FILE)

FAULT_ACTIONS = {"429", "500", "503", "401", "403", "504", "reset", "drop-response",
                 "drop-watch", "expire-watch", "delay"}


class Faults:
    """Rules: {"verb": "create|get|list|watch|delete|deletecollection|patch|*",
    "resource": "jobs|pods|pods/log|*", "path": "<regex on the URL path>", "skip": K,
    "count": N (-1 = forever), "action": one of FAULT_ACTIONS, "retryAfter": s,
    "afterEvents": n (drop-watch), "seconds": s (delay)}. The first rule matching a request
    applies (after skipping K matches) and uses up one of its N."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []

    @staticmethod
    def validate(rule):
        if not isinstance(rule, dict):
            raise ValueError("a fault rule must be a JSON object, got %r" % (rule,))
        action = str(rule.get("action", ""))
        if action not in FAULT_ACTIONS:
            raise ValueError("fault action %r is not one of %s"
                             % (action, ", ".join(sorted(FAULT_ACTIONS))))
        if "path" in rule:
            re.compile(rule["path"])
        r = {"verb": rule.get("verb", "*"), "resource": rule.get("resource", "*"),
             "path": rule.get("path"), "skip": int(rule.get("skip", 0)),
             "count": int(rule.get("count", 1)), "action": action,
             "retryAfter": rule.get("retryAfter"),
             "afterEvents": int(rule.get("afterEvents", 0)),
             "seconds": float(rule.get("seconds", 0)), "applied": 0}
        return r

    def add(self, rules):
        if isinstance(rules, dict):
            rules = [rules]
        checked = [self.validate(r) for r in rules]
        with self.lock:
            self.rules.extend(checked)

    def take(self, verb, resource, path):
        with self.lock:
            for r in self.rules:
                if r["count"] == 0:
                    continue
                if r["verb"] not in ("*", verb) or r["resource"] not in ("*", resource):
                    continue
                if r["path"] and not re.search(r["path"], path):
                    continue
                if r["skip"] > 0:
                    r["skip"] -= 1
                    continue
                if r["count"] > 0:
                    r["count"] -= 1
                r["applied"] += 1
                return dict(r)
        return None

    def list(self):
        with self.lock:
            return [dict(r) for r in self.rules]

    def clear(self):
        with self.lock:
            self.rules = []


# ============================================================================================
# Request handling


class DropConnection(Exception):
    """Close the connection without (further) response bytes."""


class RequestInfo:
    """apiserver RequestInfo: verb, resource, subresource, namespace, name."""

    def __init__(self):
        self.verb = ""
        self.resource = ""
        self.subresource = ""
        self.namespace = None
        self.name = None
        self.group = ""
        self.is_resource = False


def parse_request_info(method, path, query):
    info = RequestInfo()
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        rest = parts[2:]
    elif parts[:3] == ["apis", "batch", "v1"]:
        info.group = "batch"
        rest = parts[3:]
    else:
        return info
    watch_path = False
    if rest[:1] == ["watch"]:
        watch_path = True
        rest = rest[1:]
    # /namespaces/{ns}/{resource}... is namespaced; /namespaces and /namespaces/{ns} are the
    # Namespace objects themselves.
    if len(rest) >= 3 and rest[0] == "namespaces":
        info.namespace = rest[1]
        rest = rest[2:]
    if not rest:
        return info
    info.resource = rest[0]
    if len(rest) > 1:
        info.name = rest[1]
    if len(rest) > 2:
        info.subresource = "/".join(rest[2:])
    info.is_resource = True
    watch = watch_path or query.get("watch", [""])[0] in ("true", "1")
    if method == "GET":
        info.verb = "watch" if watch else ("get" if info.name else "list")
    elif method == "POST":
        info.verb = "create"
    elif method == "PUT":
        info.verb = "update"
    elif method == "PATCH":
        info.verb = "patch"
    elif method == "DELETE":
        info.verb = "delete" if info.name else "deletecollection"
    return info


def bool_param(query, name):
    v = query.get(name, [""])[0]
    if v in ("", "false", "0", "False"):
        return False
    if v in ("true", "1", "True"):
        return True
    raise km.bad_request('%s: Invalid value: "%s": strconv.ParseBool: parsing "%s": invalid '
                         'syntax' % (name, v, v))


def int_param(query, name):
    v = query.get(name, [None])[0]
    if v is None or v == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise km.bad_request('%s: Invalid value: "%s": strconv.ParseInt: parsing "%s": '
                             'invalid syntax' % (name, v, v))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube"
    sys_version = ""

    # The ThreadingHTTPServer instance carries: store, cluster, stats, faults, opts.

    def log_message(self, fmt, *args):
        log = self.server.request_log
        if log is not None:
            with self.server.log_lock:
                log.write("%s %s\n" % (km.now_rfc3339(), fmt % args))
                log.flush()

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # ---- responses

    def _common_headers(self):
        self.send_header("Audit-Id", km.new_uid())
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("X-Kubernetes-Pf-Flowschema-Uid", self.server.pf_uids[0])
        self.send_header("X-Kubernetes-Pf-Prioritylevel-Uid", self.server.pf_uids[1])

    def _pretty(self):
        ua = self.headers.get("User-Agent", "")
        q = self.query.get("pretty", [""])[0]
        if q:
            return q in ("true", "1")
        return ua.startswith(("curl", "Wget", "Mozilla/5.0"))

    def send_json(self, code, obj, warnings=(), extra_headers=()):
        self._end_in_flight()
        if self._pretty():
            body = (json.dumps(obj, indent=2) + "\n").encode()
        else:
            body = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self._common_headers()
        for w in warnings:
            # As the API server writes them: a quoted-string with \ and " escaped.
            self.send_header("Warning", '299 - "%s"' % w.replace("\\", "\\\\").replace('"', '\\"'))
        for k, v in extra_headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_text(self, code, text, extra_headers=()):
        self._end_in_flight()
        body = text.encode() if isinstance(text, str) else text
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in extra_headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_error_status(self, err):
        headers = []
        if err.retry_after is not None:
            headers.append(("Retry-After", str(err.retry_after)))
        self.send_json(err.code, err.status(), extra_headers=headers)

    def start_chunked(self, content_type):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self._common_headers()
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def write_chunk(self, data):
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def end_chunked(self):
        self.wfile.write(b"0\r\n\r\n")

    def read_body(self):
        self.body_read = True
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def drain_body(self):
        """Reads a request body nobody read (a fault or an auth failure answered first), as
        Go's net/http does: left in the socket it would be parsed as the next request."""
        if not getattr(self, "body_read", True):
            try:
                self.read_body()
            except (OSError, ValueError):
                self.close_connection = True

    def json_body(self, required=True):
        raw = self.read_body()
        if not raw.strip():
            if required:
                raise km.bad_request("the body of the request was in an unknown format - "
                                     "accepted media types include: application/json, "
                                     "application/yaml")
            return None
        ctype = self.headers.get("Content-Type", "application/json").split(";")[0].strip()
        if ctype not in ("application/json", "application/merge-patch+json",
                         "application/strategic-merge-patch+json", ""):
            raise km.ApiError(415, "UnsupportedMediaType",
                              'the body of the request was in an unknown format - accepted '
                              'media types include: application/json, application/yaml, '
                              'application/vnd.kubernetes.protobuf, application/cbor '
                              '(fake-kube accepts JSON only; got %s)' % ctype)
        try:
            return json.loads(raw)
        except ValueError as e:
            raise km.bad_request("error decoding request body: %s" % e)

    # ---- authentication

    def _authenticate(self):
        srv = self.server
        tokens = set(srv.opts.token or [])
        if srv.opts.token_file:
            try:
                with open(srv.opts.token_file) as f:
                    tokens.add(f.read().strip())
            except OSError:
                pass
        needs_auth = bool(tokens) or srv.opts.client_ca
        if not needs_auth:
            return "system:anonymous"
        if srv.opts.client_ca and isinstance(self.connection, ssl.SSLSocket):
            cert = self.connection.getpeercert()
            if cert:
                for rdn in cert.get("subject", ()):
                    for k, v in rdn:
                        if k == "commonName":
                            return v
                return "client-cert"
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and auth[7:].strip() in tokens:
            return srv.opts.user
        return None

    # ---- dispatch

    def _dispatch(self, method):
        self.close_connection = False
        self.body_read = False
        url = urllib.parse.urlsplit(self.path)
        counted = None
        path = url.path
        self.query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        try:
            if path.startswith("/_fake/"):
                return self._control(method, path)
            info = parse_request_info(method, path, self.query)
            self.info = info
            res_name = info.resource + ("/" + info.subresource if info.subresource else "")
            if info.is_resource:
                counted = (info.verb, res_name)
            else:
                counted = (method.lower(), "nonresource")
            self.server.stats.begin(*counted)
            self.counted = counted
            user = self._authenticate()
            if user is None:
                raise km.ApiError(401, "Unauthorized", "Unauthorized")
            self.user = user
            fault = self.server.faults.take(info.verb or method.lower(),
                                            res_name if info.is_resource else "nonresource",
                                            path)
            self.fault = fault
            if fault is not None:
                with self.server.stats.lock:
                    self.server.stats.faults_applied += 1
                if self._apply_fault(fault, info, res_name):
                    return
            # --latency: the time a real API server spends in admission and the etcd write
            # before the object exists and the response goes out (faults above answer first,
            # as flow control's 429 does).
            latency = self.server.opts.latency_by_verb.get(info.verb or method.lower())
            if latency:
                time.sleep(latency)
            if fault is not None and fault["action"] == "drop-response":
                # Process the request for real, then lose the response.
                self.wfile = _NullWriter()
                try:
                    self._route(method, path, info)
                finally:
                    self.close_connection = True
                    raise DropConnection()
            self._route(method, path, info)
        except km.ApiError as e:
            self.drain_body()
            self.send_error_status(e)
        except DropConnection:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
            self.close_connection = True
        finally:
            self._end_in_flight()

    def _end_in_flight(self):
        """Ends the request's in-flight mark, once. Called before an answer's first byte goes
        out: a client that waits for each answer before its next request must never be seen
        with two requests in flight, however late this thread runs after the write."""
        counted = getattr(self, "counted", None)
        if counted is not None:
            self.counted = None
            self.server.stats.done(*counted)

    def _apply_fault(self, fault, info, res_name):
        """Returns True when the fault answered the request."""
        action = fault["action"]
        if action in ("429", "500", "503", "504", "401", "403"):
            self.drain_body()
        if action == "delay":
            time.sleep(fault["seconds"])
            return False
        if action == "reset":
            raise DropConnection()
        if action == "429":
            # APF / max-in-flight rejections are text/plain, not Status (API-NOTES §2.2).
            self.send_text(429, "Too many requests, please try again later.\n",
                           [("Retry-After", str(fault["retryAfter"] or 1))])
            return True
        if action in ("500", "503", "504", "401", "403"):
            code = int(action)
            if code == 403:
                self.send_error_status(self._forbidden(info, res_name))
                return True
            reason = {500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout",
                      401: "Unauthorized"}[code]
            msg = {500: "Internal error occurred: fake-kube injected fault",
                   503: "the server is currently unable to handle the request",
                   504: "the server was unable to return a response in the time allotted, "
                        "but may still be processing the request",
                   401: "Unauthorized"}[code]
            details = None
            if fault["retryAfter"] is not None:
                details = {"retryAfterSeconds": int(fault["retryAfter"])}
                if code == 500:
                    details["causes"] = [{"message": "fake-kube injected fault"}]
            err = km.ApiError(code, reason, msg, details, fault["retryAfter"])
            self.send_error_status(err)
            return True
        return False  # drop-watch / expire-watch / drop-response act later

    def _forbidden(self, info, res_name):
        group = info.group
        qualified = km.qualified(info.resource, group)
        subject = '%s "%s"' % (qualified, info.name) if info.name else qualified
        where = ' in the namespace "%s"' % info.namespace if info.namespace else ""
        details = {"kind": info.resource}
        if info.name:
            details["name"] = info.name
        if group:
            details["group"] = group
        return km.ApiError(403, "Forbidden", '%s is forbidden: User "%s" cannot %s resource '
                           '"%s" in API group "%s"%s' % (subject, self.user, info.verb,
                                                         res_name, group, where), details)

    # ---- routing

    def _route(self, method, path, info):
        srv = self.server
        if not info.is_resource:
            return self._nonresource(method, path)
        if info.resource not in RESOURCES or RESOURCES[info.resource][0] != info.group:
            raise km.ApiError(404, "NotFound", "the server could not find the requested "
                              "resource", {})
        if info.resource == "namespaces":
            return self._namespaces(method, info)
        if info.resource == "nodes":
            return self._nodes(method, info)
        if info.namespace is not None:
            ns_ok = srv.store.get("namespaces", "", info.namespace) is not None
            if not ns_ok and srv.opts.any_namespace:
                self._ensure_namespace(info.namespace)
                ns_ok = True
            if not ns_ok and info.verb in ("create",):
                raise km.not_found("namespaces", "", info.namespace)
        kind = RESOURCES[info.resource][2]
        verb = info.verb
        if info.subresource:
            if info.resource == "pods" and info.subresource == "log" and verb == "get":
                return self._pod_log(info)
            if info.resource == "pods" and info.subresource == "eviction" and \
                    verb == "create":
                return self._eviction(info)
            if info.subresource == "status" and verb == "get":
                obj = srv.store.get(info.resource, info.namespace, info.name)
                if obj is None:
                    raise km.not_found(info.resource, info.group, info.name)
                return self.send_json(200, obj)
            raise km.ApiError(405, "MethodNotAllowed", "the server does not allow this method "
                              "on the requested resource", {})
        if verb == "create":
            return self._create(info, kind)
        if verb == "get":
            obj = srv.store.get(info.resource, info.namespace, info.name)
            if obj is None:
                raise km.not_found(info.resource, info.group, info.name)
            return self.send_json(200, obj)
        if verb == "list":
            return self._list(info, kind)
        if verb == "watch":
            return self._watch(info, kind)
        if verb == "delete":
            return self._delete(info)
        if verb == "deletecollection":
            return self._delete_collection(info, kind)
        if verb == "patch" and info.resource == "jobs":
            return self._patch_job(info)
        raise km.ApiError(405, "MethodNotAllowed", "the server does not allow this method on "
                          "the requested resource (fake-kube implements %s only)"
                          % ", ".join(["create", "get", "list", "watch", "delete",
                                       "deletecollection", "patch (jobs)"]), {})

    def _nonresource(self, method, path):
        if method != "GET":
            raise km.ApiError(405, "MethodNotAllowed", "the server does not allow this method "
                              "on the requested resource", {})
        port = self.server.server_address[1]
        if path == "/version":
            return self.send_json(200, SERVER_VERSION)
        if path in ("/healthz", "/livez", "/readyz"):
            return self.send_text(200, "ok")
        if path == "/api":
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": [
                                            {"clientCIDR": "0.0.0.0/0",
                                             "serverAddress": "127.0.0.1:%d" % port}]})
        if path == "/apis":
            return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1",
                                        "groups": [BATCH_GROUP]})
        if path == "/apis/batch":
            return self.send_json(200, dict(BATCH_GROUP, kind="APIGroup", apiVersion="v1"))
        if path == "/api/v1":
            return self.send_json(200, discovery_core(port))
        if path == "/apis/batch/v1":
            return self.send_json(200, discovery_batch())
        if path.startswith("/openapi/v3") and self.server.openapi_raw:
            return self._openapi(path)
        raise km.ApiError(404, "NotFound", "the server could not find the requested resource",
                          {})

    def _openapi(self, path):
        """OpenAPI v3 discovery from the shared/k8s documents: kubectl reads it to learn
        that the server validates fields itself (then sends fieldValidation=Strict)."""
        raw = self.server.openapi_raw
        if path == "/openapi/v3":
            return self.send_json(200, {"paths": {
                gv_path: {"serverRelativeURL": "/openapi/v3/%s?hash=%s" % (gv_path, h)}
                for gv_path, (h, _) in raw.items()}})
        entry = raw.get(path[len("/openapi/v3/"):])
        if entry is None:
            raise km.ApiError(404, "NotFound", "the server could not find the requested "
                              "resource", {})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(entry[1])))
        self.end_headers()
        self.wfile.write(entry[1])

    def _ensure_namespace(self, name):
        store = self.server.store
        if store.get("namespaces", "", name) is None:
            store.create("namespaces", make_namespace(name))

    def _namespaces(self, method, info):
        store = self.server.store
        if info.verb == "get":
            obj = store.get("namespaces", "", info.name)
            if obj is None:
                raise km.not_found("namespaces", "", info.name)
            return self.send_json(200, obj)
        if info.verb == "list":
            return self._list(info, "Namespace")
        if info.verb == "watch":
            return self._watch(info, "Namespace")
        if info.verb == "create":
            body = self.json_body()
            name = (body.get("metadata") or {}).get("name", "")
            errs = [km.invalid("metadata.name", name, e) for e in km.dns1123_label_errors(name)]
            if errs:
                raise km.invalid_error("Namespace", "", name, errs)
            ns = make_namespace(name)
            created = store.create("namespaces", ns)
            if created is None:
                raise km.already_exists("namespaces", "", name)
            return self.send_json(201, created)
        raise km.ApiError(405, "MethodNotAllowed", "the server does not allow this method on "
                          "the requested resource", {})

    def _nodes(self, method, info):
        node = self.server.node
        if info.verb == "get":
            if info.name != node["metadata"]["name"]:
                raise km.not_found("nodes", "", info.name)
            return self.send_json(200, node)
        if info.verb == "list":
            return self.send_json(200, {"kind": "NodeList", "apiVersion": "v1",
                                        "metadata": {"resourceVersion":
                                                     str(self.server.store.rv)},
                                        "items": [node]})
        raise km.ApiError(405, "MethodNotAllowed", "fake-kube serves nodes read-only", {})

    # ---- create

    def _create(self, info, kind):
        srv = self.server
        if info.name:
            raise km.ApiError(405, "MethodNotAllowed", "the server does not allow this method "
                              "on the requested resource", {})
        body = self.json_body()
        if not isinstance(body, dict):
            raise km.bad_request("the object provided is not a %s" % kind)
        want_api = "batch/v1" if info.resource == "jobs" else "v1"
        if body.get("kind") not in (None, kind) or body.get("apiVersion") not in (None,
                                                                                   want_api):
            raise km.bad_request("the API version in the data (%s) does not match the expected "
                                 "API version (%s)" % (body.get("apiVersion"), want_api)
                                 if body.get("apiVersion") not in (None, want_api) else
                                 "the object provided is unrecognized (must be of type %s): "
                                 "%s" % (kind, body.get("kind")))
        md = body.get("metadata") or {}
        if md.get("namespace") and md["namespace"] != info.namespace:
            raise km.bad_request("the namespace of the provided object does not match the "
                                 "namespace sent on the request")
        warnings = []
        validation = self.query.get("fieldValidation", ["Warn"])[0] or "Warn"
        if validation not in ("Ignore", "Warn", "Strict"):
            raise km.bad_request('fieldValidation: Unsupported value: "%s": supported '
                                 'values: "Ignore", "Warn", "Strict"' % validation)
        if validation != "Ignore":
            # Unknown fields per the 1.35 OpenAPI schema when the documents are present,
            # else per the field lists in api.py (Jobs only).
            gv = "batch/v1" if info.resource == "jobs" else "v1"
            docs = srv.openapi.get(gv)
            if docs is not None:
                unknown = docs.check(body, "io.k8s.api.%s.%s" % (
                    "batch.v1" if gv == "batch/v1" else "core.v1", kind))[1]
            else:
                unknown = api.unknown_fields(body) if info.resource == "jobs" else []
            if unknown and validation == "Strict":
                raise km.bad_request('%s in version "v1" cannot be handled as a %s: strict '
                                     'decoding error: %s' % (kind, kind, ", ".join(
                                         'unknown field "%s"' % u for u in unknown)))
            warnings += ['unknown field "%s"' % u for u in unknown]
        dry_run = self.query.get("dryRun", [""])[0] == "All"
        if info.resource == "jobs":
            obj = api.prepare_job(body, info.namespace)
            # The API server's warning for the node labels deprecated since 1.14.
            selector = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
                "nodeSelector") or {}
            for old_key in ("beta.kubernetes.io/arch", "beta.kubernetes.io/os"):
                if old_key in selector:
                    warnings.append('spec.template.spec.nodeSelector[%s]: deprecated since '
                                    'v1.14; use "%s" instead' % (old_key, old_key.replace(
                                        "beta.kubernetes.io", "kubernetes.io")))
            name = obj["metadata"].get("name")
            if name and obj["metadata"]["name"] and not km.DNS1123_LABEL.match(name):
                warnings.append("metadata.name: this is used in Pod names and hostnames, which "
                                "can result in surprising behavior; a DNS label is "
                                "recommended: %s" % "; ".join(km.dns1123_label_errors(name)))
        else:
            obj = api.prepare_pod(body, info.namespace)
        generate = not obj["metadata"].get("name")
        for _ in range(8 if generate else 1):  # RetryGenerateName (GA in 1.32)
            name = km.generate_name(obj["metadata"]["generateName"]) if generate else \
                obj["metadata"]["name"]
            candidate = copy.deepcopy(obj)
            if info.resource == "jobs":
                api.finish_job_create(candidate, info.namespace, name)
            else:
                api.stamp_metadata(candidate, info.namespace)
                candidate["metadata"]["name"] = name
            if dry_run:
                candidate["metadata"]["resourceVersion"] = ""
                return self.send_json(201, candidate, warnings)
            created = srv.store.create(info.resource, candidate)
            if created is not None:
                return self.send_json(201, created, warnings)
        raise km.already_exists(info.resource, info.group, name, generated=generate)

    # ---- list / watch

    def _selectors(self, info, kind):
        labels = km.parse_label_selector(self.query.get("labelSelector", [""])[0])
        getters = {"metadata.name": lambda o: o["metadata"]["name"],
                   "metadata.namespace": lambda o: o["metadata"].get("namespace", "")}
        if kind == "Pod":
            getters["status.phase"] = lambda o: (o.get("status") or {}).get("phase", "")
            getters["spec.nodeName"] = lambda o: o["spec"].get("nodeName", "")
        if kind == "Job":
            getters["status.successful"] = lambda o: str((o.get("status") or {}).get(
                "succeeded", 0))
        fields = km.parse_field_selector(self.query.get("fieldSelector", [""])[0], getters)
        name = info.name

        def pred(o):
            return (name is None or o["metadata"]["name"] == name) and \
                labels.matches(o["metadata"].get("labels")) and fields(o)
        return pred

    def _parse_rv(self):
        rv = self.query.get("resourceVersion", [""])[0]
        if rv in ("", "0"):
            return rv, None
        if not rv.isdigit():
            raise km.bad_request('resourceVersion: Invalid value: "%s": strconv.ParseUint: '
                                 'parsing "%s": invalid syntax' % (rv, rv))
        return rv, int(rv)

    def _list(self, info, kind):
        store = self.server.store
        pred = self._selectors(info, kind)
        _, rv_num = self._parse_rv()
        limit = int_param(self.query, "limit")
        items, rv = store.list(info.resource, info.namespace, pred)
        rv_match = self.query.get("resourceVersionMatch", [""])[0]
        if rv_match == "Exact" and rv_num is not None and rv_num != rv:
            raise km.ApiError(410, "Expired", "too old resource version: %d (%d)"
                              % (rv_num, rv))
        cont = self.query.get("continue", [""])[0]
        start = 0
        if cont:
            try:
                tok = json.loads(urllib.parse.unquote(cont))
                start, tok_rv = int(tok["start"]), int(tok["rv"])
            except (ValueError, KeyError, TypeError):
                raise km.bad_request("continue key is not valid: invalid token")
            if tok_rv < store.compacted_rv:
                raise km.ApiError(410, "Expired", "The provided continue parameter is too old "
                                  "to display a consistent list result. You can start a new "
                                  "list without the continue parameter.")
        meta = {"resourceVersion": str(rv)}
        if limit and limit > 0 and start + limit < len(items):
            meta["continue"] = urllib.parse.quote(json.dumps({"start": start + limit,
                                                              "rv": rv}))
            meta["remainingItemCount"] = len(items) - start - limit
            items = items[start:start + limit]
        else:
            items = items[start:]
        for it in items:  # list items carry no kind/apiVersion on the real server
            it.pop("kind", None)
            it.pop("apiVersion", None)
        api_version = "batch/v1" if info.group == "batch" else "v1"
        self.send_json(200, {"kind": kind + "List", "apiVersion": api_version,
                             "metadata": meta, "items": items})

    def _watch(self, info, kind):
        """Chunked watch stream: one compact JSON event + '\\n' per chunk (API-NOTES §1.5)."""
        srv = self.server
        store = srv.store
        pred = self._selectors(info, kind)
        rv_str, rv_num = self._parse_rv()
        timeout = int_param(self.query, "timeoutSeconds")
        if timeout is None or timeout <= 0:
            timeout = srv.opts.min_request_timeout * (1 + random.random())
        bookmarks = bool_param(self.query, "allowWatchBookmarks")
        deadline = time.time() + timeout
        fault = self.fault
        drop_after = fault["afterEvents"] if fault and fault["action"] == "drop-watch" \
            else None
        expire = fault is not None and fault["action"] == "expire-watch"
        api_version = "batch/v1" if info.group == "batch" else "v1"
        resource, ns = info.resource, info.namespace

        with srv.stats.lock:
            srv.stats.watches_opened += 1
            srv.stats.watches_active += 1
        sent = 0
        try:
            self.start_chunked("application/json")

            def emit(type_, obj):
                nonlocal sent
                if drop_after is not None and sent >= drop_after:
                    raise DropConnection()
                line = json.dumps({"type": type_, "object": obj}, separators=(",", ":"))
                self.write_chunk(line.encode() + b"\n")
                sent += 1

            def error_event(code, reason, message, details=None):
                err = km.ApiError(code, reason, message, details)
                emit("ERROR", err.status())
                self.end_chunked()

            with store.lock:
                if expire or (rv_num is not None and rv_num < store.compacted_rv):
                    too_old = rv_num if rv_num is not None else store.compacted_rv - 1
                    initial, pos, expired = [], store.rv, (too_old, store.compacted_rv)
                elif rv_num is not None and rv_num > store.rv:
                    initial, pos, expired = None, rv_num, None
                else:
                    expired = None
                    if rv_num is None:
                        initial, pos = store.list(resource, ns, pred)
                    else:
                        initial, pos = [], rv_num
            if expired:
                return error_event(410, "Expired", "too old resource version: %d (%d)"
                                   % expired)
            if initial is None:
                return error_event(504, "Timeout", "Too large resource version: %d, current: %d"
                                   % (rv_num, store.rv),
                                   {"causes": [{"reason": "ResourceVersionTooLarge",
                                                "message": "Too large resource version"}],
                                    "retryAfterSeconds": 1})
            for obj in initial:
                emit("ADDED", obj)
            if bookmarks and rv_str == "" and self.query.get("sendInitialEvents",
                                                             [""])[0] == "true":
                emit("BOOKMARK", {"kind": kind, "apiVersion": api_version, "metadata": {
                    "resourceVersion": str(pos),
                    "annotations": {"k8s.io/initial-events-end": "true"}}})
            next_bookmark = time.time() + srv.opts.bookmark_interval
            while True:
                now = time.time()
                if now >= deadline:
                    break
                with store.lock:
                    evs = store.events_after(pos)
                    if evs == []:
                        store.changed.wait(min(deadline - now, max(0.01, next_bookmark - now)
                                               if bookmarks else deadline - now, 1.0))
                        evs = store.events_after(pos)
                    cur_rv = store.rv
                if evs is None:
                    return error_event(410, "Expired", "too old resource version: %d (%d)"
                                       % (pos, store.compacted_rv))
                for ev in evs:
                    if ev.resource != resource or (ns is not None and ev.namespace != ns):
                        continue
                    new_ok = pred(ev.obj)
                    old_ok = ev.prev is not None and pred(ev.prev)
                    if ev.type == "DELETED":
                        if old_ok:
                            emit("DELETED", ev.obj)
                    elif new_ok and old_ok:
                        emit("MODIFIED", ev.obj)
                    elif new_ok:
                        emit("ADDED", ev.obj)
                    elif old_ok:
                        gone = copy.deepcopy(ev.prev)
                        gone["metadata"]["resourceVersion"] = str(ev.rv)
                        emit("DELETED", gone)
                pos = max(pos, cur_rv)
                if bookmarks and time.time() >= next_bookmark:
                    emit("BOOKMARK", {"kind": kind, "apiVersion": api_version,
                                      "metadata": {"resourceVersion": str(pos)}})
                    next_bookmark = time.time() + srv.opts.bookmark_interval
            if bookmarks:
                emit("BOOKMARK", {"kind": kind, "apiVersion": api_version,
                                  "metadata": {"resourceVersion": str(pos)}})
            self.end_chunked()
        finally:
            with srv.stats.lock:
                srv.stats.watches_active -= 1

    # ---- delete

    def _delete_options(self):
        opts = {}
        body = self.json_body(required=False)
        if isinstance(body, dict):
            opts.update(body)
        q = self.query
        if "propagationPolicy" in q:
            opts["propagationPolicy"] = q["propagationPolicy"][0]
        if "gracePeriodSeconds" in q:
            opts["gracePeriodSeconds"] = int_param(q, "gracePeriodSeconds")
        if "orphanDependents" in q:
            opts["orphanDependents"] = bool_param(q, "orphanDependents")
        dry = q.get("dryRun", [""])[0] == "All" or "All" in (opts.get("dryRun") or [])
        return opts, dry

    def _delete(self, info):
        opts, dry = self._delete_options()
        c = self.server.cluster
        if info.resource == "jobs":
            code, body, warnings = c.delete_job(info.namespace, info.name, opts, dry)
        elif info.resource == "pods":
            code, body, warnings = c.delete_pod(info.namespace, info.name, opts, dry)
        else:
            raise km.ApiError(405, "MethodNotAllowed", "the server does not allow this method "
                              "on the requested resource", {})
        self.send_json(code, body, warnings)

    def _delete_collection(self, info, kind):
        opts, dry = self._delete_options()
        pred = self._selectors(info, kind)
        items, _ = self.server.store.list(info.resource, info.namespace, pred)
        c = self.server.cluster
        deleted, warnings = [], []
        for it in items:
            md = it["metadata"]
            try:
                if info.resource == "jobs":
                    _, body, warnings = c.delete_job(md["namespace"], md["name"], opts, dry)
                else:
                    _, body, warnings = c.delete_pod(md["namespace"], md["name"], opts, dry)
            except km.ApiError as e:
                if e.code == 404:
                    continue
                raise
            deleted.append(it if body.get("kind") == "Status" else body)
        api_version = "batch/v1" if info.group == "batch" else "v1"
        self.send_json(200, {"kind": kind + "List", "apiVersion": api_version,
                             "metadata": {"resourceVersion": str(self.server.store.rv)},
                             "items": deleted}, warnings)

    # ---- patch (jobs: labels, annotations, parallelism, suspend, deadlines)

    def _patch_job(self, info):
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip()
        if ctype not in ("application/merge-patch+json",
                         "application/strategic-merge-patch+json"):
            raise km.ApiError(415, "UnsupportedMediaType", "the body of the request was in an "
                              "unknown format - fake-kube supports application/merge-patch+json "
                              "and application/strategic-merge-patch+json (got %s)" % ctype)
        patch = self.json_body()
        store = self.server.store
        mutable = {"parallelism", "suspend", "activeDeadlineSeconds", "ttlSecondsAfterFinished",
                   "backoffLimit", "completions"}
        result = {}

        def apply(obj):
            new = merge_patch(obj, patch)
            errors = []
            for k in set(obj["spec"]) | set(new.get("spec") or {}):
                if k not in mutable and obj["spec"].get(k) != (new.get("spec") or {}).get(k):
                    errors.append(km.invalid("spec." + k, (new.get("spec") or {}).get(k),
                                             "field is immutable"))
            for k in ("name", "namespace", "uid", "creationTimestamp"):
                if new["metadata"].get(k) != obj["metadata"].get(k):
                    errors.append(km.invalid("metadata." + k, new["metadata"].get(k),
                                             "field is immutable"))
            md = new.get("metadata") or {}
            api.validate_metadata(md, "metadata", errors)
            if errors:
                raise km.invalid_error("Job", "batch", info.name, errors)
            new["status"] = obj.get("status", {})  # status is ignored on the main resource
            if new["spec"] != obj["spec"]:
                new["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
            changed = new != obj
            obj.clear()
            obj.update(new)
            result["obj"] = obj
            return changed
        with store.lock:
            out = store.mutate("jobs", info.namespace, info.name, apply)
        if out is None:
            raise km.not_found("jobs", "batch", info.name)
        self.send_json(200, out)

    # ---- pods/log and eviction

    def _eviction(self, info):
        self.json_body(required=False)
        self.server.cluster.evict_api(info.namespace, info.name)
        self.send_json(201, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                             "status": "Success", "code": 201})

    def _pod_log(self, info):
        """Text log of a container (API-NOTES §1.8); `follow` streams until it ends."""
        srv = self.server
        store, cluster = srv.store, srv.cluster
        q = self.query
        follow = bool_param(q, "follow")
        previous = bool_param(q, "previous")
        timestamps = bool_param(q, "timestamps")
        tail = int_param(q, "tailLines")
        limit_bytes = int_param(q, "limitBytes")
        since_seconds = int_param(q, "sinceSeconds")
        since_time = q.get("sinceTime", [""])[0]
        if since_seconds is not None and since_time:
            raise km.bad_request("at most one of `sinceTime` or `sinceSeconds` may be "
                                 "specified")
        since = None
        if since_seconds is not None:
            since = time.time() - since_seconds
        elif since_time:
            try:
                since = km.parse_rfc3339(since_time)
            except ValueError:
                raise km.bad_request('sinceTime: Invalid value: "%s": must be RFC3339'
                                     % since_time)
        with store.lock:
            pod = store.get("pods", info.namespace, info.name)
            if pod is None:
                raise km.not_found("pods", "", info.name)
            names = [c["name"] for c in pod["spec"]["containers"]]
            container = q.get("container", [""])[0]
            if not container:
                if len(names) != 1:
                    raise km.bad_request("a container name must be specified for pod %s, "
                                         "choose one of: [%s]" % (info.name, " ".join(names)))
                container = names[0]
            if container not in names:
                raise km.bad_request("container %s is not valid for pod %s"
                                     % (container, info.name))
            if not pod["spec"].get("nodeName"):
                raise km.bad_request("pod %s does not have a host assigned" % info.name)
            rt = cluster.runtimes.get(pod["metadata"]["uid"])
            cr = rt.containers.get(container) if rt else None
            if previous:
                if cr is None or cr.restart_count == 0:
                    raise km.bad_request('previous terminated container "%s" in pod "%s" not '
                                         'found' % (container, info.name))
                path = os.path.join(rt.dir, "%s-%d.log" % (container, cr.restart_count - 1))
                closed = threading.Event()
                closed.set()
            else:
                if cr is None or cr.log_path is None or not os.path.exists(cr.log_path):
                    reason = "ContainerCreating"
                    for cs in pod["status"].get("containerStatuses") or []:
                        if cs["name"] == container:
                            reason = ((cs.get("state") or {}).get("waiting") or {}).get(
                                "reason", reason)
                    if reason in ("ErrImagePull", "ImagePullBackOff"):
                        reason = "trying and failing to pull image"
                    raise km.bad_request('container "%s" in pod "%s" is waiting to start: %s'
                                         % (container, info.name, reason))
                path, closed = cr.log_path, cr.log_closed

        def render(records):
            out = []
            for ts, tsf, full, text in records:
                if since is not None and tsf < since:
                    continue
                out.append(((ts + " ") if timestamps else "") + text + ("\n" if full else ""))
            return out

        records = list(cl.read_log_records(path))
        lines = render(records)
        if tail is not None and tail >= 0:
            lines = lines[-tail:] if tail else []
        body = "".join(lines).encode()
        if limit_bytes is not None and limit_bytes > 0:
            body = body[:limit_bytes]
        if not follow:
            return self.send_text(200, body)
        self.start_chunked("text/plain")
        self.write_chunk(body)
        sent_bytes = len(body)
        offset = os.path.getsize(path)
        while True:
            with store.lock:
                done = closed.is_set()
                size = os.path.getsize(path)
                if size == offset and not done:
                    store.changed.wait(0.5)
                gone = store.get("pods", info.namespace, info.name) is None
            size = os.path.getsize(path)
            if size > offset:
                with open(path, "rb") as f:
                    f.seek(offset)
                    data = f.read(size - offset)
                cut = data.rfind(b"\n") + 1  # only whole records
                offset += cut
                chunk = "".join(render(_parse_records(data[:cut]))).encode()
                if limit_bytes is not None and limit_bytes > 0:
                    chunk = chunk[:max(0, limit_bytes - sent_bytes)]
                sent_bytes += len(chunk)
                self.write_chunk(chunk)
            elif done or gone:
                break
        self.end_chunked()


def _parse_records(data):
    for raw in data.split(b"\n"):
        parts = raw.split(b" ", 3)
        if len(parts) < 4:
            continue
        ts = parts[0].decode()
        yield ts, km.parse_rfc3339(ts), parts[2] == b"F", parts[3].decode("utf-8", "replace")


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch (strategic merge treated alike: maps and scalars only)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def make_namespace(name):
    return {"kind": "Namespace", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": "", "uid": km.new_uid(),
                         "creationTimestamp": km.now_rfc3339(),
                         "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


class _NullWriter:
    """Swallows a response (fault "drop-response": the request took effect, the reply is
    lost)."""
    closed = False

    def write(self, data):
        return len(data)

    def flush(self):
        pass

    def close(self):
        self.closed = True


# ============================================================================================
# Control endpoints (/_fake/...), not part of the Kubernetes API


def _control(self, method, path):
    srv = self.server
    if path == "/_fake/stats" and method == "GET":
        return self.send_json(200, srv.stats.snapshot())
    if path == "/_fake/stats/reset" and method == "POST":
        srv.stats.reset()
        return self.send_json(200, srv.stats.snapshot())
    if path == "/_fake/faults":
        if method == "GET":
            return self.send_json(200, srv.faults.list())
        if method == "DELETE":
            srv.faults.clear()
            return self.send_json(200, [])
        if method == "POST":
            try:
                srv.faults.add(json.loads(self.read_body() or b"[]"))
            except (ValueError, re.error) as e:
                raise km.bad_request("fake-kube: bad fault rule: %s" % e)
            return self.send_json(200, srv.faults.list())
    if path == "/_fake/evict" and method == "POST":
        body = json.loads(self.read_body() or b"{}")
        pod = srv.cluster.evict(body.get("namespace", "default"), body.get("name", ""),
                                body.get("message"))
        return self.send_json(200, pod)
    if path == "/_fake/compact" and method == "POST":
        srv.store.compact()
        return self.send_json(200, {"compactedResourceVersion": str(srv.store.compacted_rv)})
    raise km.ApiError(404, "NotFound", "fake-kube: unknown control endpoint %s %s"
                      % (method, path))


Handler._control = _control


# ============================================================================================
# Server


class FakeKubeServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, opts):
        super().__init__(("127.0.0.1", opts.port), Handler)
        self.opts = opts
        self.ssl_context = None
        if opts.tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(opts.tls_cert, opts.tls_key)
            if opts.client_ca:
                ctx.load_verify_locations(opts.client_ca)
                ctx.verify_mode = ssl.CERT_OPTIONAL
            self.ssl_context = ctx

    def get_request(self):
        sock, addr = super().get_request()
        if self.ssl_context is not None:
            # The handshake runs in the request thread (finish_request), never in the
            # accept loop, so one stuck client cannot block the server.
            sock = self.ssl_context.wrap_socket(sock, server_side=True,
                                                do_handshake_on_connect=False)
        return sock, addr

    def finish_request(self, request, client_address):
        if isinstance(request, ssl.SSLSocket):
            try:
                request.settimeout(10)
                request.do_handshake()
                request.settimeout(None)
            except (ssl.SSLError, OSError) as e:
                self.handshake_errors += 1
                if self.request_log:
                    with self.log_lock:
                        self.request_log.write("%s TLS handshake failed from %s: %s\n"
                                               % (km.now_rfc3339(), client_address, e))
                        self.request_log.flush()
                return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = any free)")
    p.add_argument("--state-dir", required=True,
                   help="directory for the port file, request log and container logs")
    p.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate")
    p.add_argument("--tls-key", help="private key for --tls-cert")
    p.add_argument("--client-ca", help="accept client certificates signed by this CA")
    p.add_argument("--token", action="append", help="accepted bearer token (repeatable)")
    p.add_argument("--token-file", help="accepted bearer token, re-read on every request")
    p.add_argument("--user", default="mflow-test",
                   help="user name token holders authenticate as (shown in 403 messages)")
    p.add_argument("--node-cpu", default="8")
    p.add_argument("--node-memory", default="32Gi")
    p.add_argument("--node-ephemeral-storage", default="100Gi")
    p.add_argument("--node-resource", action="append", default=[],
                   help="extended resource on the node, e.g. nvidia.com/gpu=2")
    p.add_argument("--max-pods", type=int, default=110)
    p.add_argument("--bad-image", help="images matching this regex fail to pull")
    p.add_argument("--pvc", action="append", default=[],
                   help="NAME=HOSTDIR: a bound PersistentVolumeClaim backed by a host dir")
    p.add_argument("--namespace", action="append", default=[],
                   help="extra namespace that exists (default, kube-system, kube-public "
                        "always do); '*' = any namespace is created on first use")
    p.add_argument("--pass-env", action="append", default=[],
                   help="host environment variable passed into every container")
    p.add_argument("--faults", help="JSON file with a list of fault rules to arm at start")
    p.add_argument("--job-backoff", type=float, default=10.0,
                   help="seconds before re-creating a failed Job pod (doubles, capped at x36)")
    p.add_argument("--pod-backoff", type=float, default=10.0,
                   help="CrashLoopBackOff / ImagePullBackOff base delay in seconds")
    p.add_argument("--latency", action="append", default=[], metavar="VERB=SECONDS",
                   help="answer every request of a kubectl verb (create, get, list, delete, "
                        "...) after SECONDS, e.g. create=0.2 (repeatable)")
    p.add_argument("--start-delay", type=float, default=0.1,
                   help="seconds a container stays in ContainerCreating")
    p.add_argument("--bookmark-interval", type=float, default=60.0)
    p.add_argument("--min-request-timeout", type=float, default=1800.0,
                   help="watch timeout when timeoutSeconds is unset (x 1..2)")
    p.add_argument("--openapi-dir", default=openapi_check.DEFAULT_DIR,
                   help="shared/k8s folder with the OpenAPI v3 documents (served at "
                        "/openapi/v3 and used for fieldValidation); absent = not served")
    p.add_argument("--exit-with-pid", type=int,
                   help="shut down when this process is gone (or a zombie): a test process "
                        "that dies mid-test (a sanitizer abort) leaves no server behind")
    p.add_argument("--watch-history", type=int, default=10000,
                   help="events kept for watch resumption; older resourceVersions get 410")
    opts = p.parse_args(argv)
    if bool(opts.tls_cert) != bool(opts.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if opts.client_ca and not opts.tls_cert:
        p.error("--client-ca needs --tls-cert/--tls-key (client certificates need TLS)")
    opts.latency_by_verb = {}
    for spec in opts.latency:
        verb, sep, seconds = spec.partition("=")
        try:
            value = float(seconds)
        except ValueError:
            value = -1.0
        if not sep or not verb or value < 0:
            p.error("--latency wants VERB=SECONDS (e.g. create=0.2), got %r" % spec)
        opts.latency_by_verb[verb] = value
    return opts


def main(argv=None):
    opts = parse_args(argv if argv is not None else sys.argv[1:])
    os.makedirs(opts.state_dir, exist_ok=True)
    opts.any_namespace = "*" in opts.namespace
    cfg = cl.Config()
    try:
        alloc = {"cpu": km.Quantity.parse(opts.node_cpu).value,
                 "memory": km.Quantity.parse(opts.node_memory).value,
                 "ephemeral-storage": km.Quantity.parse(opts.node_ephemeral_storage).value,
                 "pods": opts.max_pods}
        for spec in opts.node_resource:
            name, _, qty = spec.partition("=")
            alloc[name] = km.Quantity.parse(qty).value
    except ValueError as e:
        sys.exit("fake-kube: bad node size: %s" % e)
    cfg.node_allocatable = alloc
    cfg.bad_image = re.compile(opts.bad_image) if opts.bad_image else None
    for spec in opts.pvc:
        name, sep, host = spec.partition("=")
        if not sep or not os.path.isabs(host):
            sys.exit("fake-kube: --pvc wants NAME=/absolute/host/dir, got %r" % spec)
        cfg.pvcs[name] = host
    cfg.pass_env = opts.pass_env
    cfg.state_dir = os.path.abspath(opts.state_dir)
    cfg.job_backoff = opts.job_backoff
    cfg.pod_backoff = opts.pod_backoff
    cfg.start_delay = opts.start_delay

    store = Store(history_limit=opts.watch_history)
    stats = Stats()
    store.listeners.append(stats.on_event)
    faults = Faults()
    if opts.faults:
        try:
            with open(opts.faults) as f:
                faults.add(json.load(f))
        except (OSError, ValueError, re.error) as e:
            sys.exit("fake-kube: --faults %s: %s" % (opts.faults, e))
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] + \
            [n for n in opts.namespace if n != "*"]:
        if store.get("namespaces", "", ns) is None:
            store.create("namespaces", make_namespace(ns))

    server = FakeKubeServer(opts)
    port = server.server_address[1]
    cfg.port = port
    cluster = cl.Cluster(store, cfg, stats)
    server.store, server.cluster, server.stats, server.faults = store, cluster, stats, faults
    server.pf_uids = (km.new_uid(), km.new_uid())
    server.log_lock = threading.Lock()
    server.handshake_errors = 0
    server.request_log = open(os.path.join(opts.state_dir, "requests.log"), "a")
    server.node = make_node(alloc)
    server.openapi = openapi_check.load_dir(opts.openapi_dir)
    server.openapi_raw = {}
    for gv, fname in openapi_check.DOCS.items():
        p = os.path.join(opts.openapi_dir, fname)
        if os.path.exists(p):
            with open(p, "rb") as f:
                data = f.read()
            server.openapi_raw["apis/batch/v1" if gv == "batch/v1" else "api/v1"] = (
                km.hashlib_sha(data), data)
    cluster.start()

    def stop(signum, frame):
        cluster.shutdown()
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if opts.exit_with_pid:
        def watch_owner(pid):
            while True:
                time.sleep(0.5)
                try:
                    with open("/proc/%d/stat" % pid) as f:
                        state = f.read().rpartition(")")[2].split()[0]
                except (OSError, IndexError):
                    state = "X"
                if state in ("Z", "X"):
                    stop(None, None)
                    return
        threading.Thread(target=watch_owner, args=(opts.exit_with_pid,), daemon=True).start()

    tmp = os.path.join(opts.state_dir, "port.tmp")
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, os.path.join(opts.state_dir, "port"))
    print(port, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        cluster.shutdown()
        server.server_close()


def make_node(alloc):
    def fmt(k, v):
        return str(v) if k == "pods" else km.Quantity(
            km.fractions.Fraction(v), "BinarySI" if k in ("memory", "ephemeral-storage")
            else "DecimalSI").canonical()
    res = {k: fmt(k, v) for k, v in alloc.items()}
    return {"kind": "Node", "apiVersion": "v1",
            "metadata": {"name": cl.NODE_NAME, "uid": km.new_uid(), "resourceVersion": "1",
                         "creationTimestamp": km.now_rfc3339(),
                         "labels": {"kubernetes.io/hostname": cl.NODE_NAME,
                                    "kubernetes.io/os": "linux"}},
            "spec": {},
            "status": {"capacity": res, "allocatable": res,
                       "conditions": [{"type": "Ready", "status": "True",
                                       "reason": "KubeletReady",
                                       "message": "kubelet is posting ready status",
                                       "lastHeartbeatTime": km.now_rfc3339(),
                                       "lastTransitionTime": km.now_rfc3339()}],
                       "addresses": [{"type": "InternalIP", "address": cl.HOST_IP},
                                     {"type": "Hostname", "address": cl.NODE_NAME}],
                       "nodeInfo": {"kubeletVersion": SERVER_VERSION["gitVersion"],
                                    "containerRuntimeVersion": "fake-kube://1",
                                    "operatingSystem": "linux", "architecture": "amd64",
                                    "machineID": "", "systemUUID": "", "bootID": "",
                                    "kernelVersion": "", "osImage": "fake-kube",
                                    "kubeProxyVersion": ""}}}


if __name__ == "__main__":
    main()
