#!/usr/bin/env python3
"""Checks Kubernetes objects against the official OpenAPI v3 documents in shared/k8s/.

Owns: a small structural validator for the OpenAPI 3.0 schema dialect Kubernetes publishes
($ref into components.schemas, allOf wrappers, oneOf for Quantity/IntOrString, `required`,
JSON types, maps via additionalProperties, date-time strings) that reports type errors,
missing required fields and unknown fields. The fake server uses it for
fieldValidation=Strict/Warn; the e2e tests use it to prove the objects the fake returns have
the real shapes.

CLI: openapi_check.py --openapi-dir DIR SCHEMA FILE.json...   (exit 1 on findings)
     SCHEMA e.g. io.k8s.api.batch.v1.Job; a FILE may hold one object or a List (items are
     checked; their kind/apiVersion may be absent, as on the real server).
"""

import argparse
import json
import os
import re
import sys

DEFAULT_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                            "..", "..", "..", "..", "shared", "k8s"))
DOCS = {"batch/v1": "apis__batch__v1_openapi.json", "v1": "api__v1_openapi.json"}
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


class Schemas:
    def __init__(self, doc):
        self.doc = doc
        self.schemas = doc["components"]["schemas"]

    @staticmethod
    def load(path):
        with open(path) as f:
            return Schemas(json.load(f))

    def resolve(self, s):
        while True:
            if "$ref" in s:
                s = self.schemas[s["$ref"].rsplit("/", 1)[1]]
            elif "allOf" in s and len(s["allOf"]) == 1 and "properties" not in s:
                extra = {k: v for k, v in s.items() if k != "allOf"}
                s = dict(self.resolve(s["allOf"][0]), **extra)
            else:
                return s

    def check(self, obj, name, path=""):
        """Returns (errors, unknown_fields) for obj against schema `name`."""
        errors, unknown = [], []
        self._check(obj, {"$ref": "#/components/schemas/" + name}, path, errors, unknown)
        return errors, unknown

    def _check(self, v, s, path, errors, unknown):
        s = self.resolve(s)
        where = path or "<root>"
        if "oneOf" in s:
            if not any(self._type_ok(v, self.resolve(o)) for o in s["oneOf"]):
                errors.append("%s: %r matches none of %s" % (where, v, [
                    self.resolve(o).get("type") for o in s["oneOf"]]))
            return
        if v is None:
            return  # nullable in practice (e.g. lastProbeTime: null)
        t = s.get("type")
        if t and not self._type_ok(v, s):
            errors.append("%s: expected %s, got %s" % (where, t, type(v).__name__))
            return
        if t == "string" and s.get("format") == "date-time" and not DATE_TIME.match(v):
            errors.append("%s: %r is not an RFC3339 date-time" % (where, v))
        if t == "array":
            for i, item in enumerate(v):
                self._check(item, s.get("items", {}), "%s[%d]" % (path, i), errors, unknown)
        if isinstance(v, dict) and (t == "object" or "properties" in s or
                                    "additionalProperties" in s):
            props = s.get("properties")
            if props is not None:
                for req in s.get("required", []):
                    if req not in v:
                        errors.append("%s: missing required field %r" % (where, req))
                for k, item in v.items():
                    sub = (path + "." + k) if path else k
                    if k in props:
                        self._check(item, props[k], sub, errors, unknown)
                    elif not s.get("x-kubernetes-preserve-unknown-fields"):
                        unknown.append(sub)
            elif "additionalProperties" in s:
                for k, item in v.items():
                    self._check(item, s["additionalProperties"], "%s[%s]" % (path, k),
                                errors, unknown)

    @staticmethod
    def _type_ok(v, s):
        t = s.get("type")
        if t is None:
            return True
        if t == "string":
            return isinstance(v, str)
        if t == "integer":
            return isinstance(v, int) and not isinstance(v, bool)
        if t == "number":
            return isinstance(v, (int, float)) and not isinstance(v, bool)
        if t == "boolean":
            return isinstance(v, bool)
        if t == "array":
            return isinstance(v, list)
        if t == "object":
            return isinstance(v, dict)
        return True


def load_dir(d):
    """{"batch/v1": Schemas, "v1": Schemas} for the documents present in d."""
    out = {}
    for gv, fname in DOCS.items():
        p = os.path.join(d, fname)
        if os.path.exists(p):
            out[gv] = Schemas.load(p)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--openapi-dir", default=DEFAULT_DIR)
    ap.add_argument("schema", help="e.g. io.k8s.api.batch.v1.Job or io.k8s.api.core.v1.Pod")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args(argv)
    docs = load_dir(a.openapi_dir)
    gv = "batch/v1" if ".batch." in a.schema else "v1"
    if gv not in docs:
        print("openapi_check: %s not found in %s" % (DOCS[gv], a.openapi_dir), file=sys.stderr)
        return 2
    sch = docs[gv]
    if a.schema not in sch.schemas:
        print("openapi_check: no schema %s in %s" % (a.schema, DOCS[gv]), file=sys.stderr)
        return 2
    bad = 0
    checked = 0
    for f in a.files:
        with open(f) as fh:
            obj = json.load(fh)
        objs = obj["items"] if isinstance(obj, dict) and "items" in obj and \
            obj.get("kind", "").endswith("List") else [obj]
        for i, o in enumerate(objs):
            errors, unknown = sch.check(o, a.schema)
            checked += 1
            for e in errors:
                print("%s[%d]: %s" % (f, i, e))
            for u in unknown:
                print("%s[%d]: unknown field %s" % (f, i, u))
            bad += len(errors) + len(unknown)
    print("openapi_check: %d object(s) against %s, %d finding(s)" % (checked, a.schema, bad))
    return 1 if bad or not checked else 0


if __name__ == "__main__":
    sys.exit(main())
