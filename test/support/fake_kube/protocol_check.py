#!/usr/bin/env python3
"""Protocol checks for fake-kube with a raw HTTP client (run by test/e2e/fake_kube_protocol.sh).

Owns the assertions kubectl cannot make easily: watch framing and resourceVersion semantics
(replay, exact resume, 410 Expired as an ERROR event, bookmarks, timeoutSeconds, selector
enter/leave), Status errors (404/409/422 causes/401/403), generateName, delete propagation
(default Orphan + warning, Foreground), the Job controller (podFailurePolicy FailJob/Ignore,
activeDeadlineSeconds, TTL), kubelet (OOMKilled, eviction, follow logs) and fault injection
(429 text/plain + Retry-After, 500, reset, drop-response, drop-watch, expire-watch), stats.
Usage: protocol_check.py PORT TOKEN
"""

import http.client
import json
import socket
import sys
import time

PORT = int(sys.argv[1])
TOKEN = sys.argv[2]
NS = "default"
JOBS = "/apis/batch/v1/namespaces/%s/jobs" % NS
PODS = "/api/v1/namespaces/%s/pods" % NS


def req(method, path, body=None, token=TOKEN, headers=None, ctype="application/json"):
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    h = {"Accept": "application/json", "User-Agent": "mflow-protocol-check"}
    if token:
        h["Authorization"] = "Bearer " + token
    if body is not None:
        h["Content-Type"] = ctype
    h.update(headers or {})
    c.request(method, path, json.dumps(body) if body is not None else None, h)
    r = c.getresponse()
    data = r.read()
    c.close()
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = data.decode()
    return r.status, parsed, r


def check(cond, what, detail=""):
    if not cond:
        print("FAIL: %s %s" % (what, detail))
        sys.exit(1)
    print("ok   %s" % what)


def job(name=None, cmd="true", gen=None, **spec):
    md = {"generateName": gen} if gen else {"name": name}
    md["labels"] = {"suite": "protocol"}
    s = {"backoffLimit": 0, "template": {"metadata": {"labels": {"suite": "protocol"}},
         "spec": {"restartPolicy": "Never", "containers": [
             {"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", cmd]}]}}}
    s.update(spec)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": md, "spec": s}


def create(j):
    code, obj, _ = req("POST", JOBS, j)
    check(code == 201, "create %s" % (j["metadata"].get("name") or "generated"), obj)
    return obj


def wait_job(name, cond, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        code, obj, _ = req("GET", JOBS + "/" + name)
        if code == 200 and any(c["type"] == cond and c["status"] == "True"
                               for c in obj["status"].get("conditions", [])):
            return obj
        time.sleep(0.1)
    check(False, "job %s reaches %s" % (name, cond), obj)


def pods_of(name):
    _, lst, _ = req("GET", PODS + "?labelSelector=batch.kubernetes.io%2Fjob-name%3D" + name)
    return lst["items"]


def wait_pod(name, pred, what, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        for p in pods_of(name):
            if pred(p):
                return p
        time.sleep(0.1)
    check(False, what, pods_of(name))


class Watch:
    """A raw watch stream: reads chunked, newline-delimited JSON events."""

    def __init__(self, path):
        self.c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
        self.c.request("GET", path, headers={"Authorization": "Bearer " + TOKEN})
        self.r = self.c.getresponse()
        self.status = self.r.status
        self.ctype = self.r.getheader("Content-Type")
        self.te = self.r.getheader("Transfer-Encoding")

    def next(self):
        line = self.r.readline()
        if not line:
            return None
        check(line.endswith(b"\n"), "event ends with newline", line)
        return json.loads(line)

    def until(self, pred, limit=200):
        for _ in range(limit):
            ev = self.next()
            if ev is None or pred(ev):
                return ev
        return None

    def close(self):
        self.c.close()


def main():
    # ---- auth, discovery, errors
    code, obj, _ = req("GET", JOBS, token="nope")
    check(code == 401 and obj["reason"] == "Unauthorized" and obj["kind"] == "Status", "401")
    code, obj, _ = req("GET", "/apis/batch/v1")
    check(code == 200 and any(r["name"] == "jobs" for r in obj["resources"]), "discovery")
    code, obj, _ = req("GET", JOBS + "/missing")
    check(code == 404 and obj["message"] == 'jobs.batch "missing" not found' and
          obj["details"] == {"name": "missing", "group": "batch", "kind": "jobs"}, "404 Status")
    bad = job("Bad_Name")
    bad["spec"]["backoffLimit"] = -1
    code, obj, _ = req("POST", JOBS, bad)
    fields = sorted(c["field"] for c in obj.get("details", {}).get("causes", []))
    check(code == 422 and obj["reason"] == "Invalid" and
          fields == ["metadata.name", "spec.backoffLimit"] and
          obj["message"].startswith('Job.batch "Bad_Name" is invalid: ['), "422 causes", obj)
    code, obj, _ = req("POST", "/apis/batch/v1/namespaces/nope/jobs", job("x"))
    check(code == 404 and obj["message"] == 'namespaces "nope" not found', "missing namespace")

    # ---- generateName and defaults
    g = create(job(gen="gen-"))
    name = g["metadata"]["name"]
    check(name.startswith("gen-") and len(name) == 9 and
          all(ch in "bcdfghjklmnpqrstvwxz2456789" for ch in name[4:]), "generateName", name)
    check(g["spec"]["completions"] == 1 and g["spec"]["parallelism"] == 1 and
          g["metadata"]["generation"] == 1 and g["status"] == {} and
          g["spec"]["template"]["metadata"]["labels"]["controller-uid"] ==
          g["metadata"]["uid"], "job defaults")
    wait_job(name, "Complete")

    # ---- list + watch semantics
    code, lst, _ = req("GET", JOBS + "?labelSelector=suite%3Dprotocol")
    rv0 = int(lst["metadata"]["resourceVersion"])
    check(lst["kind"] == "JobList" and "kind" not in lst["items"][0], "list shape")
    w = Watch(JOBS + "?watch=true&labelSelector=suite%3Dprotocol")
    check(w.status == 200 and w.te == "chunked" and w.ctype.startswith("application/json"),
          "watch framing")
    ev = w.next()
    check(ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == name,
          "RV-unset watch replays ADDED")
    w.close()
    w = Watch(JOBS + "?watch=true&resourceVersion=%d&allowWatchBookmarks=true"
              "&timeoutSeconds=20" % rv0)
    create(job("watched", "echo hi"))
    ev = w.next()
    check(ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == "watched" and
          int(ev["object"]["metadata"]["resourceVersion"]) > rv0, "exact-RV watch: only new")
    ev = w.until(lambda e: e["type"] == "MODIFIED" and any(
        c["type"] == "Complete" for c in e["object"]["status"].get("conditions", [])))
    types = [c["type"] for c in ev["object"]["status"]["conditions"]]
    check(types == ["SuccessCriteriaMet", "Complete"], "1.31+ condition order", types)
    w.close()
    # selector enter/leave: patch the label away -> DELETED for a label-selected watch
    w = Watch(JOBS + "?watch=true&labelSelector=flag%3Don&resourceVersion=" +
              ev["object"]["metadata"]["resourceVersion"])
    for val in ("on", "off"):
        code, _, _ = req("PATCH", JOBS + "/watched", {"metadata": {"labels": {"flag": val}}},
                         ctype="application/merge-patch+json")
    e1, e2 = w.next(), w.next()
    check((e1["type"], e2["type"]) == ("ADDED", "DELETED"), "selector enter/leave", (e1, e2))
    w.close()
    # bookmarks and timeoutSeconds
    t0 = time.time()
    w = Watch(JOBS + "?watch=true&resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=2"
              % lst["metadata"]["resourceVersion"])
    evs = []
    while True:
        ev = w.next()
        if ev is None:
            break
        evs.append(ev)
    check(1.5 < time.time() - t0 < 5 and evs and evs[-1]["type"] == "BOOKMARK" and
          set(evs[-1]["object"]["metadata"]) == {"resourceVersion"},
          "timeoutSeconds ends cleanly after a bookmark")
    # too old RV -> HTTP 200 + ERROR 410 Expired
    req("POST", "/_fake/compact")
    w = Watch(JOBS + "?watch=true&resourceVersion=%d" % rv0)
    ev = w.next()
    check(w.status == 200 and ev["type"] == "ERROR" and ev["object"]["code"] == 410 and
          ev["object"]["reason"] == "Expired", "410 Expired as ERROR event", ev)
    check(w.next() is None, "stream ends after ERROR")
    code, obj, _ = req("GET", JOBS + "?watch=true&resourceVersion=abc")
    check(code == 400, "malformed RV is 400")

    # ---- delete propagation
    create(job("orph", "sleep 30"))
    wait_pod("orph", lambda p: p["status"]["phase"] == "Running", "orph pod running")
    code, obj, r = req("DELETE", JOBS + "/orph")
    check(code == 200 and "child pods are preserved by default" in (r.getheader("Warning")
                                                                    or ""),
          "default delete warns (Orphan)", r.getheader("Warning"))
    time.sleep(0.5)
    p = pods_of("orph")[0]
    check(p["status"]["phase"] == "Running" and "ownerReferences" not in p["metadata"],
          "orphaned pod keeps running without owner")
    req("DELETE", PODS + "/" + p["metadata"]["name"] + "?gracePeriodSeconds=0")
    create(job("fg", "sleep 30"))
    wait_pod("fg", lambda p: p["status"]["phase"] == "Running", "fg pod running")
    code, obj, _ = req("DELETE", JOBS + "/fg", {"propagationPolicy": "Foreground"})
    check(code == 200 and obj["metadata"]["finalizers"] == ["foregroundDeletion"] and
          obj["metadata"].get("deletionTimestamp"), "Foreground keeps the Job with finalizer")
    end = time.time() + 40
    while time.time() < end and req("GET", JOBS + "/fg")[0] == 200:
        time.sleep(0.1)
    check(req("GET", JOBS + "/fg")[0] == 404 and not pods_of("fg"),
          "Foreground: pods gone, then Job gone")

    # ---- Job controller: podFailurePolicy, deadline, TTL, backoff retries
    pfp = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
                     {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}
    create(job("pfp", "exit 42", backoffLimit=5, podFailurePolicy=pfp))
    j = wait_job("pfp", "Failed")
    c = j["status"]["conditions"][-1]
    check(c["reason"] == "PodFailurePolicy" and "exit code 42 matching FailJob rule at index 0"
          in c["message"], "podFailurePolicy FailJob", c)
    create(job("evict", "sleep 30", backoffLimit=0, podFailurePolicy=pfp))
    p = wait_pod("evict", lambda p: p["status"]["phase"] == "Running", "evict pod running")
    code, _, _ = req("POST", "/_fake/evict", {"namespace": NS, "name": p["metadata"]["name"]})
    check(code == 200, "evict hook")
    p = wait_pod("evict", lambda p: p["status"]["phase"] == "Failed", "evicted pod fails")
    check(p["status"]["reason"] == "Evicted" and any(
        c["type"] == "DisruptionTarget" for c in p["status"]["conditions"]), "Evicted + "
        "DisruptionTarget")
    end = time.time() + 10
    while time.time() < end and len(pods_of("evict")) < 2:
        time.sleep(0.1)
    code, j, _ = req("GET", JOBS + "/evict")
    check(len(pods_of("evict")) == 2 and not j["status"].get("failed"),
          "eviction ignored by policy: replacement pod, no failure counted")
    req("DELETE", JOBS + "/evict", {"propagationPolicy": "Background"})
    create(job("deadline", "sleep 30", activeDeadlineSeconds=1))
    j = wait_job("deadline", "Failed")
    check(j["status"]["conditions"][0]["type"] == "FailureTarget" and
          j["status"]["conditions"][-1]["reason"] == "DeadlineExceeded" and
          "completionTime" not in j["status"], "activeDeadlineSeconds")
    create(job("retry", "exit 1", backoffLimit=2))
    j = wait_job("retry", "Failed")
    check(j["status"]["failed"] == 3 and len(pods_of("retry")) == 3, "backoffLimit retries")
    create(job("ttl", "true", ttlSecondsAfterFinished=1))
    wait_job("ttl", "Complete")
    end = time.time() + 10
    while time.time() < end and req("GET", JOBS + "/ttl")[0] == 200:
        time.sleep(0.1)
    time.sleep(0.5)
    check(req("GET", JOBS + "/ttl")[0] == 404 and not pods_of("ttl"), "TTL deletes cascading")

    # ---- kubelet: OOM (real RSS over the limit), logs follow
    oom = job("oom", "python3 -c 'x = bytearray(200 * 1024 * 1024); import time; "
              "time.sleep(20)'")
    oom["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "limits": {"memory": "50Mi"}}
    create(oom)
    wait_job("oom", "Failed")
    t = pods_of("oom")[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    check(t["reason"] == "OOMKilled" and t["exitCode"] == 137, "OOMKilled", t)
    create(job("follow", "for i in 1 2 3; do echo line $i; sleep 0.3; done"))
    p = wait_pod("follow", lambda p: p["status"]["phase"] in ("Running", "Succeeded"),
                 "follow pod started")
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    c.request("GET", PODS + "/%s/log?follow=true" % p["metadata"]["name"],
              headers={"Authorization": "Bearer " + TOKEN})
    r = c.getresponse()
    body = r.read().decode()
    check(r.status == 200 and body == "line 1\nline 2\nline 3\n", "follow log to the end",
          repr(body))
    code, obj, _ = req("GET", PODS + "/%s/log?timestamps=true&tailLines=1"
                       % p["metadata"]["name"])
    check(isinstance(obj, str) and obj.endswith("Z line 3\n") and obj.count("\n") == 1,
          "log timestamps + tailLines", obj)

    # ---- fault injection
    req("POST", "/_fake/faults", [{"verb": "list", "resource": "jobs", "action": "429",
                                   "retryAfter": 2},
                                  {"verb": "create", "resource": "jobs", "action": "500"}])
    code, body, r = req("GET", JOBS)
    check(code == 429 and r.getheader("Retry-After") == "2" and
          r.getheader("Content-Type").startswith("text/plain"), "429 text/plain Retry-After")
    code, body, _ = req("POST", JOBS, job("f500"))
    check(code == 500 and body["reason"] == "InternalError", "500 InternalError")
    check(req("GET", JOBS + "/f500")[0] == 404, "faulted create stored nothing")
    req("POST", "/_fake/faults", {"verb": "create", "resource": "jobs",
                                  "action": "drop-response"})
    try:
        req("POST", JOBS, job("lost"))
        check(False, "drop-response drops")
    except (http.client.HTTPException, ConnectionError, socket.timeout):
        pass
    code, body, _ = req("POST", JOBS, job("lost"))
    check(code == 409 and body["reason"] == "AlreadyExists", "lost response: retry gives 409")
    req("POST", "/_fake/faults", {"verb": "get", "action": "reset"})
    try:
        req("GET", JOBS + "/lost")
        check(False, "reset drops")
    except (http.client.HTTPException, ConnectionError):
        pass
    req("POST", "/_fake/faults", {"verb": "watch", "action": "drop-watch", "afterEvents": 1})
    w = Watch(JOBS + "?watch=true")
    check(w.next() is not None, "drop-watch: first event")
    try:
        ev = w.next()
    except http.client.IncompleteRead:
        ev = None
    check(ev is None, "drop-watch: connection dropped mid-stream")
    req("POST", "/_fake/faults", {"verb": "watch", "action": "expire-watch"})
    w = Watch(JOBS + "?watch=true&resourceVersion=" + lst["metadata"]["resourceVersion"])
    ev = w.next()
    check(ev["type"] == "ERROR" and ev["object"]["code"] == 410, "expire-watch")
    req("POST", "/_fake/faults", {"verb": "create", "resource": "jobs", "action": "403"})
    code, body, _ = req("POST", JOBS, job("nope"))
    check(code == 403 and body["message"] == 'jobs.batch is forbidden: User "mflow-test" '
          'cannot create resource "jobs" in API group "batch" in the namespace "default"',
          "403 message", body)

    # ---- peak concurrency is tracked (the Kubernetes e2e tests bound it)
    end = time.time() + 30
    while time.time() < end and req("GET", "/_fake/stats")[1]["jobs"]["active"]:
        time.sleep(0.1)
    req("POST", "/_fake/stats/reset")
    for i in range(3):
        create(job("par-%d" % i, "sleep 1"))
    for i in range(3):
        wait_job("par-%d" % i, "Complete")
    code, s, _ = req("GET", "/_fake/stats")
    check(s["jobs"]["max_active"] == 3 and s["containers"]["max_running"] == 3 and
          s["requests"]["create jobs"] == 3 and s["jobs"]["active"] == 0, "stats", s)
    print("protocol checks passed")


if __name__ == "__main__":
    main()
