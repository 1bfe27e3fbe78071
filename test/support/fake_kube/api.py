"""What kube-apiserver does to a Job or Pod between decoding the request and storing it.

Owns: defaulting (batch/v1 SetDefaults_Job, core/v1 pod defaults), the Job registry's
PrepareForCreate (generated selector and the four job labels, status cleared, generation 1),
metadata stamping (uid, creationTimestamp, namespace, generateName) and the validation
subset that answers 422 Invalid with field causes. API-NOTES.md §1.2 and §5 are the spec;
messages follow apimachinery's field.Error rendering so clients see the real texts.
"""

import copy

import kube_model as km

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_JOB_NAME_LABEL = "job-name"
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
JOB_TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"

# Known fields, for fieldValidation=Strict/Warn (the subset mflow and kubectl send; an
# unknown field is reported exactly like the server's strict decoder does).
_OBJECT_META = {"name", "generateName", "namespace", "labels", "annotations", "uid",
                "resourceVersion", "creationTimestamp", "generation", "finalizers",
                "ownerReferences", "managedFields", "deletionTimestamp",
                "deletionGracePeriodSeconds", "selfLink"}
_CONTAINER = {"name", "image", "command", "args", "workingDir", "ports", "envFrom", "env",
              "resources", "resizePolicy", "restartPolicy", "volumeMounts", "volumeDevices",
              "livenessProbe", "readinessProbe", "startupProbe", "lifecycle",
              "terminationMessagePath", "terminationMessagePolicy", "imagePullPolicy",
              "securityContext", "stdin", "stdinOnce", "tty"}
_POD_SPEC = {"volumes", "initContainers", "containers", "ephemeralContainers", "restartPolicy",
             "terminationGracePeriodSeconds", "activeDeadlineSeconds", "dnsPolicy",
             "nodeSelector", "serviceAccountName", "serviceAccount",
             "automountServiceAccountToken", "nodeName", "hostNetwork", "hostPID", "hostIPC",
             "shareProcessNamespace", "securityContext", "imagePullSecrets", "hostname",
             "subdomain", "affinity", "schedulerName", "tolerations", "hostAliases",
             "priorityClassName", "priority", "dnsConfig", "readinessGates", "runtimeClassName",
             "enableServiceLinks", "preemptionPolicy", "overhead",
             "topologySpreadConstraints", "setHostnameAsFQDN", "os", "hostUsers",
             "schedulingGates", "resourceClaims", "resources"}
_JOB_SPEC = {"parallelism", "completions", "activeDeadlineSeconds", "podFailurePolicy",
             "successPolicy", "backoffLimit", "backoffLimitPerIndex", "maxFailedIndexes",
             "selector", "manualSelector", "template", "ttlSecondsAfterFinished",
             "completionMode", "suspend", "podReplacementPolicy", "managedBy"}


def unknown_fields(job):
    """Paths of fields the Job schema does not know (top levels mflow writes)."""
    out = []

    def check(obj, known, path):
        if isinstance(obj, dict):
            out.extend(path + "." + k if path else k for k in obj if k not in known)

    check(job, {"apiVersion", "kind", "metadata", "spec", "status"}, "")
    check(job.get("metadata"), _OBJECT_META, "metadata")
    spec = job.get("spec") or {}
    check(spec, _JOB_SPEC, "spec")
    tmpl = spec.get("template") or {}
    check(tmpl, {"metadata", "spec"}, "spec.template")
    check(tmpl.get("metadata"), _OBJECT_META, "spec.template.metadata")
    pspec = tmpl.get("spec") or {}
    check(pspec, _POD_SPEC, "spec.template.spec")
    for i, c in enumerate(pspec.get("containers") or []):
        check(c, _CONTAINER, "spec.template.spec.containers[%d]" % i)
    return out


# --------------------------------------------------------------------------------------------
# Defaults


def _image_pull_policy(image):
    """Always for :latest or untagged images, IfNotPresent otherwise (core/v1 defaults)."""
    ref = image.split("@")[0]
    last = ref.rsplit("/", 1)[-1]
    if "@" in image:
        return "IfNotPresent"
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def default_pod_spec(spec):
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", 30)
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        if not isinstance(c, dict):
            continue
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        if isinstance(c.get("image"), str) and c["image"]:
            c.setdefault("imagePullPolicy", _image_pull_policy(c["image"]))
        c.setdefault("resources", {})
        res = c["resources"]
        # requests default to limits when omitted (core/v1 SetDefaults_Container)
        if isinstance(res, dict) and isinstance(res.get("limits"), dict):
            req = res.setdefault("requests", {})
            if isinstance(req, dict):
                for k, v in res["limits"].items():
                    req.setdefault(k, v)
        for env in c.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("fieldRef") if isinstance(env, dict) else None
            if isinstance(ref, dict):
                ref.setdefault("apiVersion", "v1")
    for v in spec.get("volumes") or []:
        if isinstance(v, dict) and isinstance(v.get("hostPath"), dict):
            v["hostPath"].setdefault("type", "")


def canonicalize_resources(spec, path, errors):
    """Validates quantities and rewrites them in canonical form (1.5 -> 1500m)."""
    for i, c in enumerate(spec.get("containers") or []):
        res = c.get("resources") if isinstance(c, dict) else None
        if not isinstance(res, dict):
            continue
        base = "%s.containers[%d].resources" % (path, i)
        parsed = {}
        for kind in ("limits", "requests"):
            m = res.get(kind)
            if m is None:
                continue
            if not isinstance(m, dict):
                errors.append(km.invalid(base + "." + kind, m, "must be a map"))
                continue
            for name, val in m.items():
                try:
                    q = km.Quantity.parse(val)
                except ValueError as e:
                    errors.append(km.invalid("%s.%s[%s]" % (base, kind, name), val, str(e)))
                    continue
                if q.value < 0:
                    errors.append(km.invalid("%s.%s[%s]" % (base, kind, name), val,
                                             "must be greater than or equal to 0"))
                extended = "/" in name and not name.startswith("kubernetes.io/") and \
                    not name.startswith("requests.")
                if extended and q.value.denominator != 1:
                    errors.append(km.invalid("%s.%s[%s]" % (base, kind, name), val,
                                             "must be an integer"))
                m[name] = q.canonical()
                parsed[(kind, name)] = q
        for (kind, name), q in parsed.items():
            if kind != "requests":
                continue
            lim = parsed.get(("limits", name))
            extended = "/" in name and not name.startswith("kubernetes.io/")
            if extended and lim is None:
                errors.append(km.FieldError("FieldValueForbidden", "%s.limits" % base,
                                            "Limit must be set for non overcommitable "
                                            "resources"))
            elif extended and lim.value != q.value:
                errors.append(km.invalid("%s.requests[%s]" % (base, name), q.canonical(),
                                         "must be equal to %s limit of %s"
                                         % (name, lim.canonical())))
            elif lim is not None and q.value > lim.value:
                errors.append(km.invalid("%s.requests" % base, q.canonical(),
                                         "must be less than or equal to %s limit of %s"
                                         % (name, lim.canonical())))


def default_job(job):
    """batch/v1 SetDefaults_Job plus pod-template defaults (API-NOTES §1.2 step 3)."""
    spec = job.setdefault("spec", {})
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy",
                    "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed")
    spec.setdefault("manualSelector", False)
    pfp = spec.get("podFailurePolicy")
    if isinstance(pfp, dict):
        for rule in pfp.get("rules") or []:
            for cond in (rule.get("onPodConditions") or []) if isinstance(rule, dict) else []:
                if isinstance(cond, dict):
                    cond.setdefault("status", "True")
    tmpl = spec.get("template")
    if isinstance(tmpl, dict):
        tmeta = tmpl.setdefault("metadata", {})
        md = job.setdefault("metadata", {})
        if not md.get("labels") and isinstance(tmeta, dict) and tmeta.get("labels"):
            md["labels"] = dict(tmeta["labels"])
        if isinstance(tmpl.get("spec"), dict):
            default_pod_spec(tmpl["spec"])


# --------------------------------------------------------------------------------------------
# Validation


def _nonneg(spec, field, path, errors, positive=False):
    v = spec.get(field)
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int):
        errors.append(km.invalid(path + "." + field, v, "must be an integer"))
    elif positive and v <= 0:
        errors.append(km.invalid(path + "." + field, v, "must be greater than 0"))
    elif v < 0:
        errors.append(km.invalid(path + "." + field, v, "must be greater than or equal to 0"))


def validate_metadata(md, path, errors, name_rule=km.dns1123_subdomain_errors):
    name = md.get("name") or ""
    if not name and not md.get("generateName"):
        errors.append(km.required(path + ".name", "name or generateName is required"))
    elif name:
        for e in name_rule(name):
            errors.append(km.invalid(path + ".name", name, e))
    for key, val in (md.get("labels") or {}).items():
        for e in km.label_key_errors(key):
            errors.append(km.invalid(path + ".labels", key, e))
        if not isinstance(val, str):
            errors.append(km.invalid(path + ".labels", val, "must be a string"))
            continue
        for e in km.label_value_errors(val):
            errors.append(km.invalid(path + ".labels", val, e))
    for key in (md.get("annotations") or {}):
        for e in km.label_key_errors(key):
            errors.append(km.invalid(path + ".annotations", key, e))


def validate_pod_spec(spec, path, errors, job_restart=True):
    containers = spec.get("containers")
    if not containers:
        errors.append(km.required(path + ".containers"))
    names = set()
    for i, c in enumerate(containers or []):
        cpath = "%s.containers[%d]" % (path, i)
        if not isinstance(c, dict):
            errors.append(km.invalid(cpath, c, "must be an object"))
            continue
        name = c.get("name") or ""
        if not name:
            errors.append(km.required(cpath + ".name"))
        else:
            for e in km.dns1123_label_errors(name):
                errors.append(km.invalid(cpath + ".name", name, e))
            if name in names:
                errors.append(km.FieldError("FieldValueDuplicate", cpath + ".name", "",
                                            name, True))
            names.add(name)
        if not c.get("image"):
            errors.append(km.required(cpath + ".image"))
        for j, env in enumerate(c.get("env") or []):
            ename = env.get("name", "") if isinstance(env, dict) else ""
            if not ename:
                errors.append(km.required("%s.env[%d].name" % (cpath, j)))
            elif not km.ENV_VAR_NAME.match(ename):
                errors.append(km.invalid("%s.env[%d].name" % (cpath, j), ename,
                                         "a valid environment variable name must consist of "
                                         "alphabetic characters, digits, '_', '-', or '.', "
                                         "and must not start with a digit"))
        for j, vm in enumerate(c.get("volumeMounts") or []):
            vol_names = {v.get("name") for v in spec.get("volumes") or []}
            if vm.get("name") not in vol_names:
                errors.append(km.FieldError("FieldValueNotFound",
                                            "%s.volumeMounts[%d].name" % (cpath, j), "",
                                            vm.get("name"), True))
            if not vm.get("mountPath"):
                errors.append(km.required("%s.volumeMounts[%d].mountPath" % (cpath, j)))
    rp = spec.get("restartPolicy")
    allowed = ["OnFailure", "Never"] if job_restart else ["Always", "OnFailure", "Never"]
    if not rp:
        if job_restart:
            errors.append(km.required(path + ".restartPolicy",
                                      "valid values: " + ", ".join('"%s"' % a for a in allowed)))
    elif rp not in allowed:
        errors.append(km.not_supported(path + ".restartPolicy", rp, allowed))
    _nonneg(spec, "activeDeadlineSeconds", path, errors, positive=True)
    _nonneg(spec, "terminationGracePeriodSeconds", path, errors)
    canonicalize_resources(spec, path, errors)


def validate_job(job):
    errors = []
    md = job.get("metadata") or {}
    validate_metadata(md, "metadata", errors)
    spec = job.get("spec")
    if not isinstance(spec, dict):
        return errors + [km.required("spec")]
    for f in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
              "ttlSecondsAfterFinished"):
        _nonneg(spec, f, "spec", errors)
    mode = spec.get("completionMode")
    if mode == "Indexed":
        # The fake's controller simulates NonIndexed Jobs only: refuse instead of lying.
        errors.append(km.not_supported("spec.completionMode", mode, ["NonIndexed"]))
    elif mode != "NonIndexed":
        errors.append(km.not_supported("spec.completionMode", mode, ["NonIndexed", "Indexed"]))
    tmpl = spec.get("template")
    if not isinstance(tmpl, dict) or not isinstance(tmpl.get("spec"), dict):
        errors.append(km.required("spec.template"))
        return errors
    tmd = tmpl.get("metadata") or {}
    for key, val in (tmd.get("labels") or {}).items():
        for e in km.label_key_errors(key):
            errors.append(km.invalid("spec.template.metadata.labels", key, e))
        for e in km.label_value_errors(str(val)):
            errors.append(km.invalid("spec.template.metadata.labels", val, e))
    validate_pod_spec(tmpl["spec"], "spec.template.spec", errors)
    pfp = spec.get("podFailurePolicy")
    if pfp is not None:
        rp = tmpl["spec"].get("restartPolicy")
        if rp != "Never":
            errors.append(km.invalid("spec.template.spec.restartPolicy", rp,
                                     'only "Never" is supported when podFailurePolicy is '
                                     'specified'))
        for i, rule in enumerate(pfp.get("rules") or []):
            rpath = "spec.podFailurePolicy.rules[%d]" % i
            action = rule.get("action")
            if action not in ("FailJob", "FailIndex", "Ignore", "Count"):
                errors.append(km.not_supported(rpath + ".action", action,
                                               ["Count", "FailIndex", "FailJob", "Ignore"]))
            has_codes = rule.get("onExitCodes") is not None
            has_conds = rule.get("onPodConditions") is not None
            if has_codes == has_conds:
                errors.append(km.invalid(rpath, "", "specifying one of OnExitCodes and "
                                         "OnPodConditions is required"))
            if has_codes:
                oc = rule["onExitCodes"]
                if oc.get("operator") not in ("In", "NotIn"):
                    errors.append(km.not_supported(rpath + ".onExitCodes.operator",
                                                   oc.get("operator"), ["In", "NotIn"]))
                vals = oc.get("values") or []
                if not vals:
                    errors.append(km.required(rpath + ".onExitCodes.values"))
                if vals != sorted(set(vals)):
                    errors.append(km.invalid(rpath + ".onExitCodes.values", vals,
                                             "must be ordered and without duplicates"))
                if oc.get("operator") == "In" and 0 in vals:
                    errors.append(km.invalid(rpath + ".onExitCodes.values", 0,
                                             "must not be 0 for the In operator"))
    # The generated job-name labels make the name a label value: <= 63 characters.
    name = md.get("name") or ""
    if name and len(name) > 63:
        errors.append(km.invalid("spec.template.labels", name,
                                 "must be no more than 63 characters"))
    return errors


# --------------------------------------------------------------------------------------------
# Create-time stamping


def stamp_metadata(obj, ns):
    md = obj.setdefault("metadata", {})
    md["namespace"] = ns
    md["uid"] = km.new_uid()
    md["creationTimestamp"] = km.now_rfc3339()
    for drop in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds",
                 "selfLink", "managedFields"):
        md.pop(drop, None)
    return md


def prepare_job(body, ns):
    """Decode-time defaults + PrepareForCreate + validation. Returns the object to store
    (name not yet generated when only generateName is set) or raises ApiError."""
    job = copy.deepcopy(body)
    md = job.setdefault("metadata", {})
    if not isinstance(md, dict):
        raise km.bad_request("metadata must be an object")
    default_job(job)
    errors = validate_job(job)
    if errors:
        raise km.invalid_error("Job", "batch", md.get("name") or md.get("generateName") or "",
                               errors)
    job["apiVersion"] = "batch/v1"
    job["kind"] = "Job"
    job["status"] = {}
    md["generation"] = 1
    return job


def finish_job_create(job, ns, name):
    """Name is known: stamp metadata and generate the selector + job labels (strategy.go)."""
    md = stamp_metadata(job, ns)
    md["name"] = name
    uid = md["uid"]
    spec = job["spec"]
    tmeta = spec["template"].setdefault("metadata", {})
    labels = tmeta.setdefault("labels", {})
    if not spec.get("manualSelector"):
        labels[CONTROLLER_UID_LABEL] = uid
        labels[LEGACY_CONTROLLER_UID_LABEL] = uid
        spec["selector"] = {"matchLabels": {CONTROLLER_UID_LABEL: uid}}
    labels[JOB_NAME_LABEL] = name
    labels[LEGACY_JOB_NAME_LABEL] = name
    if not md.get("labels"):
        md.pop("labels", None)
    return job


def prepare_pod(body, ns):
    pod = copy.deepcopy(body)
    md = pod.setdefault("metadata", {})
    spec = pod.get("spec")
    errors = []
    validate_metadata(md, "metadata", errors)
    if not isinstance(spec, dict):
        errors.append(km.required("spec"))
    else:
        spec.setdefault("restartPolicy", "Always")
        default_pod_spec(spec)
        validate_pod_spec(spec, "spec", errors, job_restart=False)
    if errors:
        raise km.invalid_error("Pod", "", md.get("name") or md.get("generateName") or "",
                               errors)
    pod["apiVersion"] = "v1"
    pod["kind"] = "Pod"
    spec.setdefault("serviceAccountName", "default")
    spec["serviceAccount"] = spec["serviceAccountName"]
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("tolerations", [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300}])
    pod["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}
    return pod


def qos_class(spec):
    """Guaranteed / Burstable / BestEffort from cpu and memory requests and limits."""
    any_set, guaranteed = False, True
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        for r in ("cpu", "memory"):
            if r in req or r in lim:
                any_set = True
            if r not in lim or req.get(r, lim.get(r)) != lim.get(r):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"
