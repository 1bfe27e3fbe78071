"""The simulated control plane and node behind the fake API: GC, Job controller, scheduler,
kubelet.

Owns: deletion with propagation policies (Orphan/Background/Foreground finalizers) and the
garbage collector; the Job controller (pods from the template, backoffLimit with exponential
back-off, podFailurePolicy, activeDeadlineSeconds, 1.31+ condition order, TTL after
finished); a one-node scheduler that accounts requests against the node size; and a kubelet
that really runs each container's command + args as a local process group, captures its
output in CRI log format, and reports phases, waiting/terminated reasons, OOMKilled and
evictions. Everything runs in one reconcile thread plus two threads per running container.

Container processes are host processes: there is no image and no filesystem isolation.
Volumes (hostPath, persistentVolumeClaim via --pvc) must be mounted at the path they have on
the host; the README documents this and the other simplifications.
"""

import ctypes
import hashlib
import os
import re
import signal
import subprocess
import threading
import time

import api
import kube_model as km

NODE_NAME = "fake-node"
HOST_IP = "127.0.0.1"

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    # Runs in the child between fork and exec: containers must not outlive the fake.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _condition(type_, status, reason=None, message=None, probe=True):
    c = {"type": type_, "status": status}
    if probe:
        c["lastProbeTime"] = km.now_rfc3339()
    c["lastTransitionTime"] = km.now_rfc3339()
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def _set_condition(conds, new):
    """Upserts a condition; keeps lastTransitionTime when the status does not change."""
    for i, c in enumerate(conds):
        if c["type"] == new["type"]:
            if c["status"] == new["status"] and c.get("reason") == new.get("reason") and \
                    c.get("message") == new.get("message"):
                return False
            if c["status"] == new["status"]:
                new["lastTransitionTime"] = c.get("lastTransitionTime", new["lastTransitionTime"])
            conds[i] = new
            return True
    conds.append(new)
    return True


def _has_condition(obj, type_):
    return any(c.get("type") == type_ and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def job_finished(job):
    return _has_condition(job, "Complete") or _has_condition(job, "Failed")


def pod_terminal(pod):
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def normalize_image(image):
    ref = image
    if "@" not in ref and ":" not in ref.rsplit("/", 1)[-1]:
        ref += ":latest"
    first = ref.split("/")[0]
    if "/" not in ref:
        ref = "docker.io/library/" + ref
    elif "." not in first and ":" not in first and first != "localhost":
        ref = "docker.io/" + ref
    return ref


def expand_vars(text, env):
    """Kubernetes $(VAR) expansion in command, args and env values; $$ escapes."""
    def repl(m):
        if m.group(0).startswith("$$"):
            return m.group(0)[1:]
        return env.get(m.group(1), m.group(0))
    return re.sub(r"\$\$\([A-Za-z_][-._A-Za-z0-9]*\)|\$\(([-._A-Za-z][-._A-Za-z0-9]*)\)",
                  repl, text)


class Config:
    def __init__(self):
        self.node_allocatable = {"cpu": km.Quantity.parse("8").value,
                                 "memory": km.Quantity.parse("32Gi").value,
                                 "ephemeral-storage": km.Quantity.parse("100Gi").value,
                                 "pods": 110}
        self.bad_image = None  # compiled regex
        self.pvcs = {}  # claim name -> host dir
        self.namespaces = ["default", "kube-system", "kube-public"]
        self.any_namespace = False
        self.pass_env = []
        self.state_dir = "."
        self.port = 0
        self.job_backoff = 10.0  # first pod re-creation delay after a failure (s)
        self.pod_backoff = 10.0  # CrashLoopBackOff / ImagePullBackOff base (s)
        self.start_delay = 0.1  # ContainerCreating duration (s)
        self.tick = 0.05  # reconcile period (s)


class ContainerRuntime:
    """Kubelet-side state of one container instance (not visible through the API)."""

    def __init__(self, name):
        self.name = name
        self.proc = None
        self.restart_count = 0
        self.started_at = None  # RFC3339
        self.start_time = 0.0
        self.exited = False
        self.exit_code = None
        self.oom = False
        self.log_path = None
        self.log_closed = threading.Event()
        self.next_start = 0.0  # CrashLoopBackOff deadline
        self.kill_reason = None


class PodRuntime:
    def __init__(self, uid):
        self.uid = uid
        self.admitted_at = time.time()
        self.containers = {}
        self.pull_failures = 0
        self.next_pull = 0.0
        self.config_error = None
        self.kill_deadline = None  # SIGKILL after grace period
        self.killing = False
        self.eviction_message = None
        self.deadline_exceeded = False
        self.dir = None


class Cluster:
    def __init__(self, store, config, stats):
        self.store = store
        self.cfg = config
        self.stats = stats
        self.runtimes = {}  # pod uid -> PodRuntime
        self.job_memory = {}  # job uid -> {"last_failure": t, "finished_at": t}
        self.stopping = False
        self._last_rss_scan = 0.0
        self._rss = None
        self._thread = threading.Thread(target=self._loop, name="controllers", daemon=True)
        self._pending_actions = []

    def start(self):
        self._thread.start()

    # ========================================================================================
    # Deletion (apiserver registry + DeleteOptions), API-NOTES §1.6

    def delete_job(self, ns, name, opts, dry_run=False, check_preconditions=True):
        """Returns (http_code, body, warnings)."""
        warnings = []
        policy = opts.get("propagationPolicy")
        orphan_deps = opts.get("orphanDependents")
        if policy is not None and orphan_deps is not None:
            raise km.invalid_error("DeleteOptions", "meta.k8s.io", "", [km.invalid(
                "propagationPolicy", policy,
                "orphanDependents and deletionPropagation cannot be both set")])
        if policy is not None and policy not in ("Orphan", "Background", "Foreground"):
            raise km.invalid_error("DeleteOptions", "meta.k8s.io", "", [km.not_supported(
                "propagationPolicy", policy, ["Foreground", "Background", "Orphan", "nil"])])
        if policy is None:
            if orphan_deps is not None:
                policy = "Orphan" if orphan_deps else "Background"
            else:
                # jobStrategy.DefaultGarbageCollectionPolicy: Orphan for batch/v1.
                policy = "Orphan"
                warnings.append("child pods are preserved by default when jobs are deleted; "
                                "set propagationPolicy=Background to remove them or set "
                                "propagationPolicy=Orphan to suppress this warning")
        with self.store.lock:
            job = self.store.get("jobs", ns, name)
            if job is None:
                raise km.not_found("jobs", "batch", name)
            if check_preconditions:
                self._check_preconditions("jobs", "batch", job, opts.get("preconditions"))
            md = job["metadata"]
            finalizers = list(md.get("finalizers") or [])
            if policy == "Orphan" and "orphan" not in finalizers:
                finalizers.append("orphan")
            if policy == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            if policy != "Orphan" and "orphan" in finalizers and md.get("deletionTimestamp"):
                finalizers.remove("orphan")
            if not finalizers:
                if dry_run:
                    return 200, self._success_status("jobs", "batch", job), warnings
                self.store.delete("jobs", ns, name)
                return 200, self._success_status("jobs", "batch", job), warnings
            if dry_run:
                md.setdefault("deletionTimestamp", km.now_rfc3339())
                md["finalizers"] = finalizers
                return 200, job, warnings

            def mark(obj):
                m = obj["metadata"]
                m.setdefault("deletionTimestamp", km.now_rfc3339())
                m.setdefault("deletionGracePeriodSeconds", 0)
                if m.get("finalizers") == finalizers:
                    return False
                m["finalizers"] = finalizers
                return True
            job = self.store.mutate("jobs", ns, name, mark)
            code = 202 if orphan_deps is False else 200
            return code, job, warnings

    def delete_pod(self, ns, name, opts, dry_run=False):
        """Graceful pod deletion. Returns (200, pod-as-deleted, warnings)."""
        with self.store.lock:
            pod = self.store.get("pods", ns, name)
            if pod is None:
                raise km.not_found("pods", "", name)
            self._check_preconditions("pods", "", pod, opts.get("preconditions"))
            grace = opts.get("gracePeriodSeconds")
            if grace is None:
                grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
            if dry_run:
                return 200, pod, []
            return 200, self._delete_pod_locked(pod, int(grace)), []

    def _delete_pod_locked(self, pod, grace):
        md = pod["metadata"]
        ns, name = md["namespace"], md["name"]
        rt = self.runtimes.get(md["uid"])
        running = rt is not None and any(c.proc is not None and not c.exited
                                         for c in rt.containers.values())
        if not running or grace == 0:
            if rt is not None and running:
                self._kill_pod(rt, signal.SIGKILL)
            if not md.get("finalizers") and not running:
                return self.store.delete("pods", ns, name) or pod

        def mark(obj):
            m = obj["metadata"]
            if m.get("deletionTimestamp"):
                cur = m.get("deletionGracePeriodSeconds", 30)
                if grace >= cur:
                    return False
            m["deletionTimestamp"] = km.now_rfc3339()
            m["deletionGracePeriodSeconds"] = grace
            return True
        return self.store.mutate("pods", ns, name, mark) or pod

    def _check_preconditions(self, resource, group, obj, pre):
        if not pre:
            return
        md = obj["metadata"]
        for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            want = pre.get(field)
            if want is not None and want != md.get(field):
                raise km.ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": '
                                  'Precondition failed: %s in precondition: %s, %s in object '
                                  'meta: %s' % (km.qualified(resource, group), md["name"],
                                                label, want, label, md.get(field)),
                                  {"name": md["name"], "group": group, "kind": resource})

    @staticmethod
    def _success_status(resource, group, obj):
        details = {"name": obj["metadata"]["name"], "kind": resource,
                   "uid": obj["metadata"]["uid"]}
        if group:
            details["group"] = group
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": details}

    # ========================================================================================
    # Test hooks

    def evict(self, ns, name, message=None):
        """Kubelet node-pressure eviction of a running pod: DisruptionTarget, SIGTERM, then
        phase Failed with reason Evicted."""
        message = message or ("The node was low on resource: memory. Threshold quantity: "
                              "100Mi, available: 50Mi. ")
        with self.store.lock:
            pod = self.store.get("pods", ns, name)
            if pod is None:
                raise km.not_found("pods", "", name)
            rt = self.runtimes.get(pod["metadata"]["uid"])
            if rt is None or pod_terminal(pod):
                raise km.bad_request('pod "%s" is not running on the node; only running pods '
                                     'can be evicted' % name)

            def add(obj):
                conds = obj["status"].setdefault("conditions", [])
                return _set_condition(conds, _condition(
                    "DisruptionTarget", "True", "TerminationByKubelet", message, probe=False))
            self.store.mutate("pods", ns, name, add)
            rt.eviction_message = message
            self._start_kill(rt, pod["spec"].get("terminationGracePeriodSeconds", 30))
            return self.store.get("pods", ns, name)

    def evict_api(self, ns, name):
        """pods/eviction (Eviction API): DisruptionTarget EvictionByEvictionAPI, then a
        graceful delete of the pod."""
        with self.store.lock:
            if self.store.get("pods", ns, name) is None:
                raise km.not_found("pods", "", name)

            def add(obj):
                conds = obj["status"].setdefault("conditions", [])
                return _set_condition(conds, _condition(
                    "DisruptionTarget", "True", "EvictionByEvictionAPI",
                    "Eviction API: evicting", probe=False))
            self.store.mutate("pods", ns, name, add)
            return self.delete_pod(ns, name, {})

    # ========================================================================================
    # Reconcile loop

    def _loop(self):
        while not self.stopping:
            actions = []
            with self.store.lock:
                self.store.changed.wait(self.cfg.tick)
                try:
                    self._reconcile(actions)
                except Exception:  # a controller bug must be visible, not silently fatal
                    import traceback
                    traceback.print_exc()
            for fn in actions:
                try:
                    fn()
                except Exception:
                    import traceback
                    traceback.print_exc()

    def _reconcile(self, actions):
        self._gc()
        jobs = [j for j in self.store.list_raw("jobs")]
        pods_by_owner = {}
        for p in self.store.list_raw("pods"):
            for ref in p["metadata"].get("ownerReferences") or []:
                if ref.get("controller"):
                    pods_by_owner.setdefault(ref["uid"], []).append(p)
        for job in jobs:
            self._sync_job(job["metadata"]["namespace"], job["metadata"]["name"],
                           pods_by_owner.get(job["metadata"]["uid"], []))
        self._remove_stale_tracking_finalizers()
        self._schedule()
        self._kubelet(actions)

    # ---- garbage collector

    def _gc(self):
        store = self.store
        jobs_by_uid = {j["metadata"]["uid"]: j for j in store.list_raw("jobs")}
        for pod in list(store.list_raw("pods")):
            md = pod["metadata"]
            for ref in md.get("ownerReferences") or []:
                owner = jobs_by_uid.get(ref["uid"])
                if owner is None and not md.get("deletionTimestamp"):
                    # Owner is gone (Background deletion or TTL): delete the dependent.
                    self._delete_pod_locked(store.get("pods", md["namespace"], md["name"]),
                                            pod["spec"].get("terminationGracePeriodSeconds",
                                                            30))
                    break
        for job in list(jobs_by_uid.values()):
            md = job["metadata"]
            if not md.get("deletionTimestamp"):
                continue
            ns, name, uid = md["namespace"], md["name"], md["uid"]
            deps = [p for p in store.list_raw("pods")
                    if any(r["uid"] == uid for r in p["metadata"].get("ownerReferences") or [])]
            fins = list(md.get("finalizers") or [])
            if "orphan" in fins:
                for p in deps:
                    def strip(obj, uid=uid):
                        refs = [r for r in obj["metadata"].get("ownerReferences") or []
                                if r["uid"] != uid]
                        if refs:
                            obj["metadata"]["ownerReferences"] = refs
                        else:
                            obj["metadata"].pop("ownerReferences", None)
                        return True
                    store.mutate("pods", p["metadata"]["namespace"], p["metadata"]["name"],
                                 strip)
                fins.remove("orphan")
            elif "foregroundDeletion" in fins:
                for p in deps:
                    if not p["metadata"].get("deletionTimestamp"):
                        self._delete_pod_locked(
                            store.get("pods", p["metadata"]["namespace"], p["metadata"]["name"]),
                            p["spec"].get("terminationGracePeriodSeconds", 30))
                if not deps:
                    fins.remove("foregroundDeletion")
            if fins != (md.get("finalizers") or []):
                if fins:
                    store.mutate("jobs", ns, name,
                                 lambda o, f=fins: o["metadata"].update(finalizers=f) or True)
                else:
                    store.delete("jobs", ns, name, uid)

    # ---- job controller

    def _sync_job(self, ns, name, pods):
        store = self.store
        job = store.get("jobs", ns, name)
        spec, status = job["spec"], job.get("status") or {}
        uid = job["metadata"]["uid"]
        mem = self.job_memory.setdefault(uid, {"last_failure": 0.0, "finished_at": None,
                                               "failures": 0})
        now = time.time()
        new = {k: v for k, v in status.items()}
        conds = [dict(c) for c in status.get("conditions") or []]
        new["conditions"] = conds

        if job_finished(job):
            self._finalize_counted(pods, new, spec, count=False)
            ttl = spec.get("ttlSecondsAfterFinished")
            if mem["finished_at"] is None:
                mem["finished_at"] = now
            if ttl is not None and now >= mem["finished_at"] + ttl and \
                    not job["metadata"].get("deletionTimestamp"):
                # TTL-after-finished controller: cascading (Background) delete.
                self.delete_job(ns, name, {"propagationPolicy": "Background",
                                           "preconditions": {"uid": uid}})
            return

        deleting = bool(job["metadata"].get("deletionTimestamp"))
        if "startTime" not in new and not spec.get("suspend"):
            new["startTime"] = km.now_rfc3339()
            mem["start"] = now
        mem.setdefault("start", now)

        fail_job = self._finalize_counted(pods, new, spec, count=True)
        if new.get("failed", 0) > mem["failures"]:
            mem["failures"] = new.get("failed", 0)
            mem["last_failure"] = now

        live = [p for p in pods if not pod_terminal(p)]
        terminating = [p for p in live if p["metadata"].get("deletionTimestamp")]
        active = [p for p in live if not p["metadata"].get("deletionTimestamp")]
        restarts = sum(cs.get("restartCount", 0) for p in active
                       for cs in (p.get("status") or {}).get("containerStatuses") or [])
        failed = new.get("failed", 0) + restarts
        succeeded = new.get("succeeded", 0)
        target = next((c for c in conds if c["type"] in ("FailureTarget", "SuccessCriteriaMet")
                       and c["status"] == "True"), None)

        if target is None and not deleting:
            completions = spec.get("completions")
            ads = spec.get("activeDeadlineSeconds")
            if fail_job:
                target = _condition("FailureTarget", "True", "PodFailurePolicy", fail_job)
            elif failed > spec.get("backoffLimit", 6):
                target = _condition("FailureTarget", "True", "BackoffLimitExceeded",
                                    "Job has reached the specified backoff limit")
            elif ads is not None and not spec.get("suspend") and now - mem["start"] >= ads:
                target = _condition("FailureTarget", "True", "DeadlineExceeded",
                                     "Job was active longer than specified deadline")
            elif (completions is not None and succeeded >= completions) or \
                    (completions is None and succeeded > 0 and not active):
                target = _condition("SuccessCriteriaMet", "True", "CompletionsReached",
                                    "Reached expected number of succeeded pods")
            if target is not None:
                conds.append(target)

        if target is not None:
            # Outcome decided: terminate what still runs, then add the terminal condition
            # only once every pod is terminal (1.31+ behaviour, API-NOTES §1.9).
            for p in active:
                self._delete_pod_locked(store.get("pods", ns, p["metadata"]["name"]),
                                        p["spec"].get("terminationGracePeriodSeconds", 30))
            if not live:
                term = "Complete" if target["type"] == "SuccessCriteriaMet" else "Failed"
                conds.append(_condition(term, "True", target.get("reason"),
                                        target.get("message")))
                if term == "Complete":
                    new["completionTime"] = km.now_rfc3339()
                mem["finished_at"] = now
        elif spec.get("suspend"):
            for p in active:
                self._delete_pod_locked(store.get("pods", ns, p["metadata"]["name"]),
                                        p["spec"].get("terminationGracePeriodSeconds", 30))
            _set_condition(conds, _condition("Suspended", "True", "JobSuspended",
                                             "Job suspended"))
            new.pop("startTime", None)
            mem.pop("start", None)
        elif not deleting:
            if any(c["type"] == "Suspended" and c["status"] == "True" for c in conds):
                _set_condition(conds, _condition("Suspended", "False", "JobResumed",
                                                 "Job resumed"))
            completions = spec.get("completions")
            parallelism = spec.get("parallelism", 1)
            wanted = parallelism if completions is None else \
                min(parallelism, completions - succeeded)
            occupying = len(active)
            if spec.get("podReplacementPolicy") == "Failed":
                occupying += len(terminating)
            if occupying < wanted:
                delay = 0.0
                if mem["failures"] > 0:
                    delay = min(self.cfg.job_backoff * 2 ** (mem["failures"] - 1),
                                self.cfg.job_backoff * 36)
                if now >= mem["last_failure"] + delay:
                    for _ in range(wanted - occupying):
                        self._create_job_pod(job)
                        self.stats.count("jobcontroller", "create pods")

        pods_now = [store.get("pods", ns, p["metadata"]["name"]) for p in pods]
        pods_now = [p for p in pods_now if p is not None]
        # The controller creates pods after this sync pass reads them; count those too.
        for p in store.list_raw("pods"):
            if p["metadata"]["labels"].get(api.CONTROLLER_UID_LABEL) == uid and \
                    all(p["metadata"]["uid"] != q["metadata"]["uid"] for q in pods_now):
                pods_now.append(p)
        live = [p for p in pods_now if not pod_terminal(p)]
        n_active = len([p for p in live if not p["metadata"].get("deletionTimestamp")])
        if n_active:
            new["active"] = n_active
        else:
            new.pop("active", None)
        new["ready"] = len([p for p in live if _has_condition(p, "Ready")])
        new["terminating"] = len([p for p in live if p["metadata"].get("deletionTimestamp")])
        new["uncountedTerminatedPods"] = {}
        if not conds:
            new.pop("conditions")
        if new != status:
            def write(obj):
                obj["status"] = new
                return True
            store.mutate("jobs", ns, name, write, uid=uid)

    def _finalize_counted(self, pods, new, spec, count):
        """Counts terminal pods that still carry the job-tracking finalizer, applies the
        podFailurePolicy, removes the finalizer. Returns a FailJob message or None."""
        fail_job = None
        for p in pods:
            md = p["metadata"]
            if not pod_terminal(p) or api.JOB_TRACKING_FINALIZER not in (md.get("finalizers")
                                                                          or []):
                continue
            if count:
                if p["status"]["phase"] == "Succeeded":
                    new["succeeded"] = new.get("succeeded", 0) + 1
                else:
                    action, msg = self._pod_failure_action(spec, p)
                    if action == "FailJob" and fail_job is None:
                        fail_job = msg
                    if action in ("FailJob", "Count", "FailIndex"):
                        new["failed"] = new.get("failed", 0) + 1

            def drop(obj):
                fins = [f for f in obj["metadata"].get("finalizers") or []
                        if f != api.JOB_TRACKING_FINALIZER]
                if fins:
                    obj["metadata"]["finalizers"] = fins
                else:
                    obj["metadata"].pop("finalizers", None)
                return True
            self.store.mutate("pods", md["namespace"], md["name"], drop, uid=md["uid"])
        return fail_job

    @staticmethod
    def _pod_failure_action(spec, pod):
        """podFailurePolicy evaluation: first matching rule wins; no match = Count."""
        pfp = spec.get("podFailurePolicy")
        if not pfp:
            return "Count", None
        md = pod["metadata"]
        for i, rule in enumerate(pfp.get("rules") or []):
            oc = rule.get("onExitCodes")
            if oc:
                for cs in (pod.get("status") or {}).get("containerStatuses") or []:
                    term = (cs.get("state") or {}).get("terminated")
                    if not term or term.get("exitCode", 0) == 0:
                        continue  # containers that succeeded are excluded
                    if oc.get("containerName") and oc["containerName"] != cs["name"]:
                        continue
                    code = term["exitCode"]
                    if (oc["operator"] == "In") == (code in oc.get("values", [])):
                        return rule["action"], (
                            "Container %s for pod %s/%s failed with exit code %d matching %s "
                            "rule at index %d" % (cs["name"], md["namespace"], md["name"],
                                                  code, rule["action"], i))
            for pc in rule.get("onPodConditions") or []:
                for c in (pod.get("status") or {}).get("conditions") or []:
                    if c.get("type") == pc.get("type") and c.get("status") == \
                            pc.get("status", "True"):
                        return rule["action"], (
                            "Pod %s/%s has condition %s matching %s rule at index %d"
                            % (md["namespace"], md["name"], c["type"], rule["action"], i))
        return "Count", None

    def _remove_stale_tracking_finalizers(self):
        """Pods whose Job is gone (orphaned or deleted) lose the job-tracking finalizer."""
        uids = {j["metadata"]["uid"] for j in self.store.list_raw("jobs")}
        for p in list(self.store.list_raw("pods")):
            md = p["metadata"]
            if api.JOB_TRACKING_FINALIZER in (md.get("finalizers") or []) and \
                    md["labels"].get(api.CONTROLLER_UID_LABEL) not in uids:
                def drop(obj):
                    fins = [f for f in obj["metadata"]["finalizers"]
                            if f != api.JOB_TRACKING_FINALIZER]
                    if fins:
                        obj["metadata"]["finalizers"] = fins
                    else:
                        obj["metadata"].pop("finalizers")
                    return True
                self.store.mutate("pods", md["namespace"], md["name"], drop, uid=md["uid"])

    def _create_job_pod(self, job):
        md, spec = job["metadata"], job["spec"]
        tmpl = spec["template"]
        tmeta = tmpl.get("metadata") or {}
        body = {"metadata": {"generateName": md["name"] + "-",
                             "labels": dict(tmeta.get("labels") or {}),
                             "finalizers": [api.JOB_TRACKING_FINALIZER],
                             "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job",
                                                  "name": md["name"], "uid": md["uid"],
                                                  "controller": True,
                                                  "blockOwnerDeletion": True}]},
                "spec": tmpl["spec"]}
        if tmeta.get("annotations"):
            body["metadata"]["annotations"] = dict(tmeta["annotations"])
        pod = api.prepare_pod(body, md["namespace"])
        for _ in range(8):  # RetryGenerateName
            name = km.generate_name(md["name"] + "-")
            p = dict(pod)
            p["metadata"] = dict(pod["metadata"])
            api.stamp_metadata(p, md["namespace"])
            p["metadata"]["name"] = name
            p["metadata"].pop("generateName", None)
            p["metadata"]["generateName"] = md["name"] + "-"
            if self.store.create("pods", p) is not None:
                return

    # ---- scheduler

    def _requests(self, pod):
        total = {}
        for c in pod["spec"].get("containers") or []:
            for k, v in ((c.get("resources") or {}).get("requests") or {}).items():
                total[k] = total.get(k, 0) + km.Quantity.parse(v).value
        return total

    def _schedule(self):
        store = self.store
        used, count = {}, 0
        pods = store.list_raw("pods")
        for p in pods:
            if p["spec"].get("nodeName") and not pod_terminal(p):
                count += 1
                for k, v in self._requests(p).items():
                    used[k] = used.get(k, 0) + v
        for p in sorted(pods, key=lambda p: int(p["metadata"]["resourceVersion"])):
            md = p["metadata"]
            if p["spec"].get("nodeName") or pod_terminal(p):
                continue
            if md.get("deletionTimestamp"):
                if not md.get("finalizers"):
                    store.delete("pods", md["namespace"], md["name"], md["uid"])
                continue
            reasons = []
            for v in p["spec"].get("volumes") or []:
                claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
                if claim is not None and claim not in self.cfg.pvcs:
                    reasons.append('persistentvolumeclaim "%s" not found' % claim)
            req = self._requests(p)
            if not reasons:
                for k in sorted(req):
                    alloc = self.cfg.node_allocatable.get(k, 0)
                    if req[k] > alloc - used.get(k, 0):
                        reasons.append("1 Insufficient " + k)
                if count + 1 > self.cfg.node_allocatable["pods"]:
                    reasons.append("1 Too many pods")
            if reasons:
                msg = "0/1 nodes are available: %s. preemption: 0/1 nodes are available: 1 " \
                      "No preemption victims found for incoming pod." % ", ".join(reasons)
                if reasons[0].startswith("persistentvolumeclaim"):
                    msg = "0/1 nodes are available: %s. preemption: 0/1 nodes are " \
                          "available: 1 Preemption is not helpful for scheduling." % reasons[0]

                def unsched(obj, msg=msg):
                    conds = obj["status"].setdefault("conditions", [])
                    return _set_condition(conds, _condition("PodScheduled", "False",
                                                            "Unschedulable", msg))
                store.mutate("pods", md["namespace"], md["name"], unsched)
                continue
            for k, v in req.items():
                used[k] = used.get(k, 0) + v
            count += 1

            def bind(obj):
                obj["spec"]["nodeName"] = NODE_NAME
                conds = obj["status"].setdefault("conditions", [])
                c = _condition("PodScheduled", "True")
                c["lastProbeTime"] = None
                _set_condition(conds, c)
                return True
            store.mutate("pods", md["namespace"], md["name"], bind)

    # ========================================================================================
    # Kubelet

    def _kubelet(self, actions):
        store = self.store
        now = time.time()
        scan_due = now - self._last_rss_scan >= 0.2
        self._rss = None
        if scan_due:
            self._last_rss_scan = now
        for p in list(store.list_raw("pods")):
            md, spec = p["metadata"], p["spec"]
            if spec.get("nodeName") != NODE_NAME:
                continue
            uid = md["uid"]
            rt = self.runtimes.get(uid)
            if rt is None:
                if pod_terminal(p):
                    continue
                rt = self._admit(p)
                if rt is None:
                    continue
            running = [c for c in rt.containers.values() if c.proc is not None and not c.exited]
            # Deletion: SIGTERM, SIGKILL after the grace period, then remove the object.
            if md.get("deletionTimestamp"):
                if running and not rt.killing:
                    self._start_kill(rt, md.get("deletionGracePeriodSeconds", 30))
                if not running:
                    self._finish_pod(p, rt, deleted=True)
                    if not md.get("finalizers"):
                        store.delete("pods", md["namespace"], md["name"], uid)
                        self.runtimes.pop(uid, None)
                        continue
            if rt.killing and rt.kill_deadline is not None and now >= rt.kill_deadline and \
                    running:
                self._kill_pod(rt, signal.SIGKILL)
                rt.kill_deadline = None
            if pod_terminal(p):
                continue
            # Pod-level activeDeadlineSeconds.
            ads = spec.get("activeDeadlineSeconds")
            if ads is not None and now - rt.admitted_at >= ads and not rt.deadline_exceeded:
                rt.deadline_exceeded = True
                self._start_kill(rt, 0)
            self._check_memory(p, rt, now, scan_due)
            self._step_containers(p, rt, now, actions)
            if rt.eviction_message or rt.deadline_exceeded:
                if not any(c.proc is not None and not c.exited for c in rt.containers.values()):
                    self._finish_pod(p, rt, deleted=True)

    def _admit(self, pod):
        md = pod["metadata"]
        rt = PodRuntime(md["uid"])
        rt.dir = os.path.join(self.cfg.state_dir, "pods",
                              "%s_%s_%s" % (md["namespace"], md["name"], md["uid"]))
        os.makedirs(os.path.join(rt.dir, "root"), exist_ok=True)
        for c in pod["spec"]["containers"]:
            rt.containers[c["name"]] = ContainerRuntime(c["name"])
        rt.next_pull = time.time() + self.cfg.start_delay
        self.runtimes[md["uid"]] = rt
        pod_ip = "10.244.0.%d" % (2 + len(self.runtimes) % 250)

        def admit(obj):
            st = obj["status"]
            st["hostIP"] = HOST_IP
            st["hostIPs"] = [{"ip": HOST_IP}]
            st["podIP"] = pod_ip
            st["podIPs"] = [{"ip": pod_ip}]
            st["startTime"] = km.now_rfc3339()
            conds = st.setdefault("conditions", [])
            for t, s in (("PodReadyToStartContainers", "True"), ("Initialized", "True"),
                         ("Ready", "False"), ("ContainersReady", "False")):
                c = _condition(t, s, "ContainersNotReady" if s == "False" else None,
                               "containers with unready status: [%s]" % " ".join(
                                   x["name"] for x in obj["spec"]["containers"])
                               if s == "False" else None)
                c["lastProbeTime"] = None
                _set_condition(conds, c)
            order = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                     "PodScheduled"]
            conds.sort(key=lambda c: order.index(c["type"]) if c["type"] in order else 99)
            st["containerStatuses"] = [self._waiting_status(c, "ContainerCreating", None)
                                       for c in obj["spec"]["containers"]]
            return True
        self.store.mutate("pods", md["namespace"], md["name"], admit)
        return rt

    @staticmethod
    def _waiting_status(c, reason, message, restart_count=0, last_state=None):
        image = normalize_image(c["image"])
        w = {"reason": reason}
        if message:
            w["message"] = message
        return {"name": c["name"], "state": {"waiting": w}, "lastState": last_state or {},
                "ready": False, "restartCount": restart_count, "image": image, "imageID": "",
                "started": False}

    def _set_container_status(self, pod, name, status):
        md = pod["metadata"]

        def put(obj):
            lst = obj["status"].setdefault("containerStatuses", [])
            for i, cs in enumerate(lst):
                if cs["name"] == name:
                    if cs == status:
                        return False
                    lst[i] = status
                    return True
            lst.append(status)
            return True
        self.store.mutate("pods", md["namespace"], md["name"], put, uid=md["uid"])

    def _current_status(self, pod, name):
        pod = self.store.get("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
        for cs in (pod or {}).get("status", {}).get("containerStatuses") or []:
            if cs["name"] == name:
                return cs
        return None

    def _step_containers(self, pod, rt, now, actions):
        """Advance each container: image pull, config errors, start, CrashLoopBackOff."""
        if rt.killing or pod["metadata"].get("deletionTimestamp"):
            return
        for c in pod["spec"]["containers"]:
            cr = rt.containers[c["name"]]
            if cr.proc is not None and not cr.exited:
                continue
            if cr.exited:
                continue  # restarts are decided when the container exits
            if now < max(rt.next_pull, cr.next_start):
                continue
            if self.cfg.bad_image is not None and self.cfg.bad_image.search(c["image"]):
                rt.pull_failures += 1
                image = normalize_image(c["image"])
                if rt.pull_failures % 2 == 1:
                    reason = "ErrImagePull"
                    msg = ('failed to pull and unpack image "%s": failed to resolve reference '
                           '"%s": %s: not found' % (image, image, image))
                else:
                    reason = "ImagePullBackOff"
                    msg = 'Back-off pulling image "%s"' % c["image"]
                self._set_container_status(pod, c["name"], self._waiting_status(
                    c, reason, msg, cr.restart_count))
                rt.next_pull = now + min(self.cfg.pod_backoff * 2 ** (rt.pull_failures // 2),
                                         self.cfg.pod_backoff * 30) / (
                    4 if reason == "ErrImagePull" else 1)
                continue
            try:
                argv, env, cwd = self._container_process_spec(pod, c, rt)
            except ValueError as e:
                reason, msg = e.args
                self._set_container_status(pod, c["name"], self._waiting_status(
                    c, reason, msg, cr.restart_count))
                rt.next_pull = now + self.cfg.pod_backoff
                continue
            cr.proc = "starting"
            actions.append(lambda p=pod, c=c, cr=cr, a=argv, e=env, d=cwd:
                           self._start_container(p, c, cr, a, e, d))

    def _container_process_spec(self, pod, c, rt):
        """argv, env, cwd for a container. Raises ValueError((reason, message)) for
        CreateContainerConfigError / CreateContainerError conditions."""
        md = pod["metadata"]
        env = {"PATH": os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                               "/usr/bin:/sbin:/bin"),
               "HOSTNAME": md["name"], "HOME": os.environ.get("HOME", "/root"),
               "KUBERNETES_SERVICE_HOST": HOST_IP,
               "KUBERNETES_SERVICE_PORT": str(self.cfg.port),
               "KUBERNETES_SERVICE_PORT_HTTPS": str(self.cfg.port),
               "KUBERNETES_PORT": "tcp://%s:%d" % (HOST_IP, self.cfg.port)}
        for name in self.cfg.pass_env:
            if name in os.environ:
                env[name] = os.environ[name]
        status = pod.get("status") or {}
        fields = {"metadata.name": md["name"], "metadata.namespace": md["namespace"],
                  "metadata.uid": md["uid"], "spec.nodeName": NODE_NAME,
                  "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
                  "status.hostIP": HOST_IP, "status.hostIPs": HOST_IP,
                  "status.podIP": status.get("podIP", ""),
                  "status.podIPs": status.get("podIP", "")}
        res = c.get("resources") or {}
        for item in c.get("env") or []:
            name = item["name"]
            if "value" in item or not item.get("valueFrom"):
                env[name] = expand_vars(str(item.get("value", "")), env)
                continue
            vf = item["valueFrom"]
            if vf.get("fieldRef"):
                path = vf["fieldRef"].get("fieldPath", "")
                m = re.match(r"^metadata\.(labels|annotations)\['(.+)'\]$", path)
                if m:
                    env[name] = (md.get(m.group(1)) or {}).get(m.group(2), "")
                elif path in fields:
                    env[name] = fields[path]
                else:
                    raise ValueError(("CreateContainerConfigError",
                                      'unsupported fieldPath "%s"' % path))
            elif vf.get("resourceFieldRef"):
                r = vf["resourceFieldRef"].get("resource", "")
                kind, _, rname = r.partition(".")
                val = (res.get(kind) or {}).get(rname)
                if val is None:
                    val = "%d" % (self.cfg.node_allocatable.get(rname, 0))
                q = km.Quantity.parse(val).value
                div = km.Quantity.parse(vf["resourceFieldRef"].get("divisor", "1")).value or 1
                env[name] = str(-(-q // div))
            elif vf.get("secretKeyRef"):
                raise ValueError(("CreateContainerConfigError", 'secret "%s" not found'
                                  % vf["secretKeyRef"].get("name")))
            elif vf.get("configMapKeyRef"):
                raise ValueError(("CreateContainerConfigError", 'configmap "%s" not found'
                                  % vf["configMapKeyRef"].get("name")))
        if c.get("envFrom"):
            raise ValueError(("CreateContainerConfigError",
                              "envFrom is not simulated by fake-kube (no ConfigMaps/Secrets)"))
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        for vm in c.get("volumeMounts") or []:
            v = volumes.get(vm["name"], {})
            if "hostPath" in v:
                host = v["hostPath"].get("path", "")
            elif "persistentVolumeClaim" in v:
                host = self.cfg.pvcs.get(v["persistentVolumeClaim"].get("claimName"), "")
            else:
                kinds = [k for k in v if k != "name"]
                raise ValueError(("CreateContainerConfigError",
                                  'fake-kube runs containers as host processes and simulates '
                                  'only hostPath and persistentVolumeClaim volumes; volume "%s"'
                                  ' is %s' % (vm["name"], kinds[0] if kinds else "empty")))
            if vm.get("subPath"):
                host = os.path.join(host, vm["subPath"])
            if os.path.normpath(host) != os.path.normpath(vm["mountPath"]):
                raise ValueError(("CreateContainerError",
                                  'fake-kube runs containers as host processes: volume "%s" '
                                  'must be mounted at its host path %s, not at %s'
                                  % (vm["name"], host, vm["mountPath"])))
            if not os.path.isdir(host):
                raise ValueError(("CreateContainerError",
                                  'volume "%s": host path %s does not exist'
                                  % (vm["name"], host)))
        cmd = [expand_vars(str(a), env) for a in c.get("command") or []]
        args = [expand_vars(str(a), env) for a in c.get("args") or []]
        # No image exists: a container without command runs as if its entrypoint exited
        # at once with status 0 (like busybox's default `sh` without a terminal).
        argv = cmd + args if cmd else (args if args else ["true"])
        cwd = c.get("workingDir") or os.path.join(rt.dir, "root")
        if not os.path.isdir(cwd):
            raise ValueError(("CreateContainerError", "fake-kube: workingDir %s does not exist "
                              "on the host" % cwd))
        return argv, env, cwd

    def _start_container(self, pod, c, cr, argv, env, cwd):
        """Runs outside the store lock: spawn, then report Running (or StartError)."""
        rt = self.runtimes.get(pod["metadata"]["uid"])
        cr.log_path = os.path.join(rt.dir, "%s-%d.log" % (c["name"], cr.restart_count))
        cr.log_closed = threading.Event()
        cr.exited = False
        cr.oom = False
        cr.kill_reason = None
        cid = "containerd://" + hashlib.sha256(
            ("%s/%s/%d" % (pod["metadata"]["uid"], c["name"], cr.restart_count)).encode()
        ).hexdigest()
        image = normalize_image(c["image"])
        image_id = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
        image_id += "@sha256:" + hashlib.sha256(image.encode()).hexdigest()
        cr.started_at = km.now_rfc3339()
        cr.start_time = time.time()
        cr.cid, cr.image, cr.image_id = cid, image, image_id
        open(cr.log_path, "wb").close()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                    start_new_session=True, preexec_fn=_die_with_parent)
        except OSError as e:
            with self.store.lock:
                cr.proc = None
                cr.exited = True
                cr.exit_code = 128
                cr.log_closed.set()
                msg = ('failed to create containerd task: failed to create shim task: OCI '
                       'runtime create failed: runc create failed: unable to start container '
                       'process: exec: "%s": %s: unknown'
                       % (argv[0], "executable file not found in $PATH"
                          if isinstance(e, FileNotFoundError) else e.strerror))
                self._container_exited(pod, c, cr, "StartError", msg)
            return
        with self.store.lock:
            cr.proc = proc
            self.stats.container_started()
            if rt.killing:
                self._kill_pod(rt, signal.SIGTERM)
            last = (self._current_status(pod, c["name"]) or {}).get("lastState") or {}
            self._set_container_status(pod, c["name"], {
                "name": c["name"], "state": {"running": {"startedAt": cr.started_at}},
                "lastState": last, "ready": True, "restartCount": cr.restart_count,
                "image": image, "imageID": image_id, "containerID": cid, "started": True})
            self._update_pod_readiness(pod, rt)
        threading.Thread(target=self._pump_log, args=(proc, cr), daemon=True,
                         name="log-" + pod["metadata"]["name"]).start()
        threading.Thread(target=self._wait_container, args=(pod, c, cr, proc), daemon=True,
                         name="wait-" + pod["metadata"]["name"]).start()

    def _pump_log(self, proc, cr):
        """Copies container output into a CRI-format log: '<RFC3339Nano> stdout F|P <text>'."""
        fd = proc.stdout.fileno()
        with open(cr.log_path, "ab") as out:
            while True:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                ts = km.now_rfc3339_nano().encode()
                lines = data.split(b"\n")
                for i, line in enumerate(lines):
                    last = i == len(lines) - 1
                    if last and not line:
                        break
                    tag = b"P" if last else b"F"
                    out.write(ts + b" stdout " + tag + b" " + line + b"\n")
                out.flush()
                self.store.notify()
        proc.stdout.close()
        cr.log_closed.set()
        self.store.notify()

    def _wait_container(self, pod, c, cr, proc):
        code = proc.wait()
        # PID 1 of a container exiting tears the whole container down.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        cr.log_closed.wait(5)
        with self.store.lock:
            self.stats.container_stopped()
            cr.exit_code = 128 - code if code < 0 else code  # killed by signal N -> 128+N
            cr.exited = True
            if cr.oom:
                reason = "OOMKilled"
            else:
                reason = "Completed" if cr.exit_code == 0 else "Error"
            self._container_exited(pod, c, cr, reason, None)

    def _container_exited(self, pod, c, cr, reason, message):
        """Records the terminated state; restarts for OnFailure; finishes the pod."""
        md = pod["metadata"]
        rt = self.runtimes.get(md["uid"])
        cur = self.store.get("pods", md["namespace"], md["name"])
        if rt is None or cur is None or cur["metadata"]["uid"] != md["uid"]:
            return
        term = {"exitCode": cr.exit_code, "reason": reason, "startedAt": cr.started_at,
                "finishedAt": km.now_rfc3339(),
                "containerID": getattr(cr, "cid", "")}
        if message:
            term["message"] = message
        elif cr.exit_code != 0 and c.get("terminationMessagePolicy") == \
                "FallbackToLogsOnError":
            tail = "".join(l + ("\n" if full else "") for _, _, full, l in
                           read_log_records(cr.log_path))[-2048:]
            tail = "\n".join(tail.split("\n")[-80:])
            if tail:
                term["message"] = tail
        state = {"terminated": term}
        restart = cur["spec"].get("restartPolicy") in ("OnFailure", "Always") and \
            cr.exit_code != 0 and not rt.killing and not cur["metadata"].get("deletionTimestamp")
        if restart:
            cr.restart_count += 1
            cr.exited = False
            cr.proc = None
            delay = min(self.cfg.pod_backoff * 2 ** (cr.restart_count - 1),
                        self.cfg.pod_backoff * 30)
            cr.next_start = time.time() + delay
            st = self._waiting_status(c, "CrashLoopBackOff",
                                      "back-off %ds restarting failed container=%s pod=%s_%s(%s)"
                                      % (delay, c["name"], md["name"], md["namespace"],
                                         md["uid"]), cr.restart_count, state)
            st["image"], st["imageID"] = getattr(cr, "image", st["image"]), \
                getattr(cr, "image_id", "")
            st["containerID"] = getattr(cr, "cid", "")
            self._set_container_status(cur, c["name"], st)
        else:
            last = (self._current_status(cur, c["name"]) or {}).get("lastState") or {}
            self._set_container_status(cur, c["name"], {
                "name": c["name"], "state": state, "lastState": last, "ready": False,
                "restartCount": cr.restart_count,
                "image": getattr(cr, "image", normalize_image(c["image"])),
                "imageID": getattr(cr, "image_id", ""),
                "containerID": getattr(cr, "cid", ""), "started": False})
        cur = self.store.get("pods", md["namespace"], md["name"])
        self._update_pod_readiness(cur, rt)
        if all(x.exited for x in rt.containers.values()):
            self._finish_pod(cur, rt, deleted=False)

    def _finish_pod(self, pod, rt, deleted):
        """All containers stopped: set the terminal phase (Failed for evictions, deadline,
        any non-zero exit; Succeeded when all exited 0)."""
        if pod_terminal(pod):
            return
        md = pod["metadata"]
        statuses = {cs["name"]: cs for cs in (pod.get("status") or {}).get(
            "containerStatuses") or []}
        for c in pod["spec"]["containers"]:
            cs = statuses.get(c["name"])
            if cs is None or "terminated" not in (cs.get("state") or {}):
                # Never started (pending, pulling): terminated with 137 on deletion.
                statuses[c["name"]] = {
                    "name": c["name"], "ready": False, "restartCount":
                        rt.containers[c["name"]].restart_count,
                    "image": normalize_image(c["image"]), "imageID": "", "started": False,
                    "lastState": {}, "state": {"terminated": {
                        "exitCode": 137, "reason": "ContainerStatusUnknown",
                        "message": "The container could not be located when the pod was "
                                   "terminated", "startedAt": None, "finishedAt": None}}}
        ok = all(cs["state"]["terminated"].get("exitCode") == 0 for cs in statuses.values())
        phase = "Succeeded" if ok and not rt.eviction_message and not rt.deadline_exceeded \
            else "Failed"

        def finish(obj):
            st = obj["status"]
            st["phase"] = phase
            st["containerStatuses"] = [statuses[c["name"]] for c in obj["spec"]["containers"]]
            if rt.eviction_message:
                st["reason"] = "Evicted"
                st["message"] = rt.eviction_message
            elif rt.deadline_exceeded:
                st["reason"] = "DeadlineExceeded"
                st["message"] = "Pod was active on the node longer than the specified deadline"
            conds = st.setdefault("conditions", [])
            for t in ("Ready", "ContainersReady"):
                _set_condition(conds, dict(_condition(t, "False", "PodCompleted"),
                                           lastProbeTime=None))
            _set_condition(conds, dict(_condition("PodReadyToStartContainers", "False"),
                                       lastProbeTime=None))
            return True
        self.store.mutate("pods", md["namespace"], md["name"], finish, uid=md["uid"])

    def _update_pod_readiness(self, pod, rt):
        if pod is None or pod_terminal(pod):
            return
        md = pod["metadata"]
        all_running = all(c.proc not in (None, "starting") and not c.exited
                          for c in rt.containers.values())

        def ready(obj):
            st = obj["status"]
            changed = False
            if all_running and st.get("phase") != "Running":
                st["phase"] = "Running"
                changed = True
            conds = st.setdefault("conditions", [])
            for t in ("Ready", "ContainersReady"):
                c = _condition(t, "True" if all_running else "False",
                               None if all_running else "ContainersNotReady",
                               None if all_running else "containers with unready status: "
                               "[%s]" % " ".join(n for n, c in rt.containers.items()
                                                 if c.exited or c.proc is None))
                c["lastProbeTime"] = None
                changed |= _set_condition(conds, c)
            return changed
        self.store.mutate("pods", md["namespace"], md["name"], ready, uid=md["uid"])

    def _start_kill(self, rt, grace):
        rt.killing = True
        rt.kill_deadline = time.time() + max(0, grace)
        self._kill_pod(rt, signal.SIGTERM if grace > 0 else signal.SIGKILL)

    @staticmethod
    def _kill_pod(rt, sig):
        for c in rt.containers.values():
            if c.proc not in (None, "starting") and not c.exited:
                try:
                    os.killpg(c.proc.pid, sig)
                except OSError:
                    pass

    def _check_memory(self, pod, rt, now, scan_due):
        """OOM: a container whose process group's RSS exceeds its memory limit is SIGKILLed
        and reported OOMKilled; annotation fake.mflow.dev/oom-after: '<seconds>s' forces it."""
        oom_after = (pod["metadata"].get("annotations") or {}).get("fake.mflow.dev/oom-after")
        limits = {}
        for c in pod["spec"]["containers"]:
            lim = ((c.get("resources") or {}).get("limits") or {}).get("memory")
            if lim is not None:
                limits[c["name"]] = km.Quantity.parse(lim).value
        for name, cr in rt.containers.items():
            if cr.proc in (None, "starting") or cr.exited or cr.oom:
                continue
            kill = False
            if oom_after is not None:
                secs = float(str(oom_after).rstrip("s") or 0)
                kill = now - cr.start_time >= secs
            if not kill and name in limits and scan_due:
                if self._rss is None:
                    self._rss = _rss_by_pgid()
                kill = self._rss.get(cr.proc.pid, 0) > limits[name]
            if kill:
                cr.oom = True
                try:
                    os.killpg(cr.proc.pid, signal.SIGKILL)
                except OSError:
                    pass

    def shutdown(self):
        self.stopping = True
        with self.store.lock:
            for rt in self.runtimes.values():
                self._kill_pod(rt, signal.SIGKILL)


def _rss_by_pgid():
    """Resident memory (bytes) summed per process group, from /proc/<pid>/stat."""
    totals = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            pgid = int(fields[2])
            totals[pgid] = totals.get(pgid, 0) + int(fields[21]) * page
        except (OSError, IndexError, ValueError):
            continue
    return totals


def read_log_records(path):
    """Yields (timestamp_str, timestamp_float, full_line, text) from a CRI log file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return
    for raw in data.split(b"\n"):
        if not raw:
            continue
        parts = raw.split(b" ", 3)
        if len(parts) < 4:
            continue
        ts = parts[0].decode()
        yield ts, km.parse_rfc3339(ts), parts[2] == b"F", parts[3].decode("utf-8", "replace")
