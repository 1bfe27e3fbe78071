"""Kubernetes value rules the fake shares between the API layer and the controllers.

Owns: name/label validation regexes (apimachinery util/validation), label and field
selectors (apimachinery labels/selector.go grammar), resource Quantities (parse + canonical
form), metav1.Status error construction, timestamps and generated names. Every rule here is
one that mflow's client can observe through the API; API-NOTES.md sections are cited.
"""

import datetime
import fractions
import hashlib
import json
import random
import re
import uuid

# --------------------------------------------------------------------------------------------
# Names (API-NOTES §5)

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
ENV_VAR_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")

# apimachinery pkg/util/rand: consonants and digits that cannot spell words.
GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
MAX_GENERATED_NAME_BASE = 58  # maxNameLength 63 - randomLength 5


def generate_name(base):
    """SimpleNameGenerator.GenerateName: base cut to 58 chars + 5 random characters."""
    return base[:MAX_GENERATED_NAME_BASE] + "".join(
        random.choice(GENERATE_ALPHABET) for _ in range(5))


def dns1123_label_errors(value):
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not DNS1123_LABEL.match(value):
        errs.append("a lowercase RFC 1123 label must consist of lower case alphanumeric "
                    "characters or '-', and must start and end with an alphanumeric character "
                    "(e.g. 'my-name',  or '123-abc', regex used for validation is "
                    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
    return errs


def dns1123_subdomain_errors(value):
    errs = []
    if len(value) > 253:
        errs.append("must be no more than 253 characters")
    if not DNS1123_SUBDOMAIN.match(value):
        errs.append("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                    "characters, '-' or '.', and must start and end with an alphanumeric "
                    "character (e.g. 'example.com', regex used for validation is "
                    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
    return errs


def label_key_errors(key):
    errs = []
    prefix, _, name = key.rpartition("/")
    if prefix:
        errs += ["prefix part " + e for e in dns1123_subdomain_errors(prefix)]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    elif not QUALIFIED_NAME.match(name):
        errs.append("name part must consist of alphanumeric characters, '-', '_' or '.', and "
                    "must start and end with an alphanumeric character (e.g. 'MyName',  or "
                    "'my.name',  or '123-abc', regex used for validation is "
                    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
    return errs


def label_value_errors(value):
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not LABEL_VALUE.match(value):
        errs.append("a valid label must be an empty string or consist of alphanumeric "
                    "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                    "character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
                    "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
    return errs


# --------------------------------------------------------------------------------------------
# Time and ids


def now_rfc3339():
    """creationTimestamp / condition times: RFC3339, second precision, UTC 'Z'."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_rfc3339_nano():
    """Log line timestamps (kubelet's CRI log format uses RFC3339Nano)."""
    t = datetime.datetime.now(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%06d000Z" % t.microsecond


def parse_rfc3339(text):
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python 3.11 fromisoformat accepts at most microseconds; cut nanoseconds.
    m = re.match(r"^(.*\.\d{6})\d+(.*)$", text)
    if m:
        text = m.group(1) + m.group(2)
    return datetime.datetime.fromisoformat(text).timestamp()


def hashlib_sha(data):
    return hashlib.sha512(data).hexdigest()[:128].upper()


def new_uid():
    return str(uuid.uuid4())


# --------------------------------------------------------------------------------------------
# metav1.Status errors (API-NOTES §2.1)


class ApiError(Exception):
    """An error the API answers with a Status object (JSON, code, reason)."""

    def __init__(self, code, reason, message, details=None, retry_after=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.retry_after = retry_after

    def status(self):
        s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": self.message, "reason": self.reason}
        if self.details:
            s["details"] = self.details
        s["code"] = self.code
        return s


# group-qualified resource names as they appear in messages: jobs.batch, pods
def qualified(resource, group):
    return resource + "." + group if group else resource


def not_found(resource, group, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (qualified(resource, group), name),
                    {"name": name, "group": group, "kind": resource} if group else
                    {"name": name, "kind": resource})


def already_exists(resource, group, name, generated=False):
    msg = '%s "%s" already exists' % (qualified(resource, group), name)
    details = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    if generated:
        msg += ", the server was not able to generate a unique name for the object"
        details["retryAfterSeconds"] = 1
    return ApiError(409, "AlreadyExists", msg, dict(sorted(details.items())))


def bad_request(message):
    return ApiError(400, "BadRequest", message)


class FieldError:
    """One field.Error: rendered '<field>: <Type>: <detail>' like apimachinery."""

    TYPES = {"FieldValueRequired": "Required value", "FieldValueInvalid": "Invalid value",
             "FieldValueNotSupported": "Unsupported value",
             "FieldValueForbidden": "Forbidden", "FieldValueTooLong": "Too long",
             "FieldValueDuplicate": "Duplicate value", "FieldValueNotFound": "Not found"}

    def __init__(self, reason, field, detail="", value=None, has_value=False):
        self.reason = reason
        self.field = field
        self.detail = detail
        self.value = value
        self.has_value = has_value

    def body(self):
        text = self.TYPES[self.reason]
        if self.has_value:
            v = self.value
            text += ": " + (json.dumps(v) if isinstance(v, str) else
                            json.dumps(v, separators=(",", ":")) if isinstance(v, (dict, list))
                            else str(v).lower() if isinstance(v, bool) else str(v))
        if self.detail:
            text += ": " + self.detail
        return text

    def __str__(self):
        return self.field + ": " + self.body()


def required(field, detail=""):
    return FieldError("FieldValueRequired", field, detail)


def invalid(field, value, detail):
    return FieldError("FieldValueInvalid", field, detail, value, True)


def not_supported(field, value, supported):
    return FieldError("FieldValueNotSupported", field,
                      "supported values: " + ", ".join('"%s"' % s for s in supported),
                      value, True)


def invalid_error(kind, group, name, errors):
    """422 Invalid: 'Job.batch "x" is invalid: <errs>' with details.causes (kind = Kind)."""
    errs = "; ".join(str(e) for e in errors)
    if len(errors) > 1:
        errs = "[" + ", ".join(str(e) for e in errors) + "]"
    gk = kind + "." + group if group else kind
    details = {"name": name, "kind": kind,
               "causes": [{"reason": e.reason, "message": e.body(), "field": e.field}
                          for e in errors]}
    if group:
        details["group"] = group
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (gk, name, errs), details)


# --------------------------------------------------------------------------------------------
# Quantities (API-NOTES §3)

QUANTITY_RE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
BINARY = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50,
          "Ei": 2 ** 60}
DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15,
           "E": 18}


class Quantity:
    """resource.Quantity: exact value (Fraction) plus the format it was written in."""

    def __init__(self, value, fmt):
        self.value = value  # fractions.Fraction
        self.fmt = fmt  # "BinarySI" | "DecimalSI" | "DecimalExponent"

    @staticmethod
    def parse(text):
        """Returns a Quantity, or raises ValueError with the apimachinery message."""
        if isinstance(text, bool):
            raise ValueError("quantities must match the regular expression "
                             "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
        if isinstance(text, (int, float)):
            text = repr(text) if isinstance(text, float) else str(text)
        m = QUANTITY_RE.match(text)
        if not m or m.group(1).count(".") > 1 or m.group(1) in (".", "+.", "-."):
            raise ValueError("quantities must match the regular expression "
                             "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
        number, suffix = m.group(1), m.group(2)
        value = fractions.Fraction(number)
        if suffix in BINARY:
            return Quantity(value * BINARY[suffix], "BinarySI")
        if suffix in DECIMAL:
            return Quantity(value * fractions.Fraction(10) ** DECIMAL[suffix], "DecimalSI")
        em = re.match(r"^[eE]([-+]?[0-9]+)$", suffix)
        if em:
            return Quantity(value * fractions.Fraction(10) ** int(em.group(1)),
                            "DecimalExponent")
        raise ValueError("unable to parse quantity's suffix")

    def canonical(self):
        """String form the API server re-emits (1.5 -> 1500m, 1.5Gi -> 1536Mi)."""
        # Values are rounded up to nano precision, then to whole milli units for output
        # when they are not integral (the server's canonical form keeps at most 3 decimals
        # through the m suffix; smaller values stay in n/u).
        v = self.value
        neg = v < 0
        v = abs(v)
        fmt = self.fmt
        if fmt == "BinarySI" and (v < 1024 or v.denominator != 1):
            fmt = "DecimalSI"
        if fmt == "BinarySI":
            n = int(v)
            for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
                if n % BINARY[suffix] == 0:
                    return ("-" if neg else "") + str(n // BINARY[suffix]) + suffix
            return ("-" if neg else "") + str(n)
        # Decimal: smallest exponent (multiple of 3, >= -9) making the mantissa integral,
        # then grow the exponent while the mantissa stays integral.
        exp = -9
        nano = v * 10 ** 9
        mant = -(-nano.numerator // nano.denominator)  # round up
        while exp < 18 and mant % 1000 == 0 and mant != 0:
            mant //= 1000
            exp += 3
        if mant == 0:
            return "0"
        sign = "-" if neg else ""
        if fmt == "DecimalExponent":
            return sign + str(mant) + ("e%d" % exp if exp else "")
        suffix = {v2: k for k, v2 in DECIMAL.items()}[exp]
        return sign + str(mant) + suffix


def format_quantity_for_message(q):
    return q.canonical()


# --------------------------------------------------------------------------------------------
# Label selectors (apimachinery labels.Parse, API-NOTES §1.4)


class Selector:
    """A parsed label selector: list of (key, op, values). Empty selector matches all."""

    def __init__(self, reqs):
        self.reqs = reqs

    def matches(self, labels):
        labels = labels or {}
        for key, op, values in self.reqs:
            present = key in labels
            val = labels.get(key)
            if op == "exists" and not present:
                return False
            if op == "!" and present:
                return False
            if op in ("=", "==", "in") and (not present or val not in values):
                return False
            if op in ("!=", "notin") and present and val in values:
                return False
            if op in (">", "<"):
                try:
                    iv, bound = int(val), int(values[0])
                except (TypeError, ValueError):
                    return False
                if (op == ">" and not iv > bound) or (op == "<" and not iv < bound):
                    return False
        return True

    @staticmethod
    def from_match_labels(match_labels):
        return Selector([(k, "=", [v]) for k, v in (match_labels or {}).items()])


def _split_top_level(text):
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def parse_label_selector(text):
    """Parses a labelSelector query value; raises ApiError 400 like the real server."""
    text = (text or "").strip()
    if not text:
        return Selector([])
    reqs = []
    for part in _split_top_level(text):
        part = part.strip()
        if not part:
            raise bad_request("unable to parse requirement: found '', expected: identifier")
        m = re.match(r"^(\S+?)\s+(in|notin)\s*\((.*)\)$", part)
        if m:
            key, op = m.group(1), m.group(2)
            values = [v.strip() for v in m.group(3).split(",")] if m.group(3).strip() else []
        elif part.startswith("!"):
            key, op, values = part[1:].strip(), "!", []
        else:
            m = re.match(r"^([^=!<>\s]+)\s*(==|=|!=|>|<)\s*(\S*)$", part)
            if m:
                key, op, values = m.group(1), m.group(2), [m.group(3)]
            elif re.match(r"^[^=!<>()\s,]+$", part):
                key, op, values = part, "exists", []
            else:
                raise bad_request("unable to parse requirement: invalid label selector: %r"
                                  % part)
        errs = label_key_errors(key)
        if errs:
            raise bad_request('unable to parse requirement: values[0][%s]: Invalid value: '
                              '"%s": %s' % (key, key, "; ".join(errs)))
        if op in ("in", "notin") and not values:
            raise bad_request("unable to parse requirement: for 'in', 'notin' operators, "
                              "values set can't be empty")
        for v in values:
            verrs = label_value_errors(v) if op not in (">", "<") else (
                [] if re.match(r"^-?\d+$", v) else ["must be an integer"])
            if verrs:
                raise bad_request('unable to parse requirement: values[0][%s]: Invalid value: '
                                  '"%s": %s' % (key, v, "; ".join(verrs)))
        reqs.append((key, op, values))
    return Selector(reqs)


def parse_field_selector(text, getters):
    """fieldSelector: comma-separated field=value / field==value / field!=value terms over
    the fields in `getters` (name -> function(obj) -> str). Returns a predicate."""
    text = (text or "").strip()
    if not text:
        return lambda obj: True
    terms = []
    for part in text.split(","):
        m = re.match(r"^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise bad_request("invalid selector: '%s'; can't understand '%s'" % (text, part))
        field, op, value = m.groups()
        if field not in getters:
            raise bad_request('field label not supported: %s' % field)
        terms.append((getters[field], op != "!=", value))
    return lambda obj: all((get(obj) == value) == want for get, want, value in terms)
