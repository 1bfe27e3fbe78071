"""In-memory etcd stand-in: objects, one global revision, and the watch event history.

Owns: the strictly increasing integer resourceVersion (every write bumps it and stamps the
object), a bounded event history that watches replay from (older history is "compacted", so
a watch from a too-old resourceVersion gets 410 Expired), and the condition variable that
wakes watchers, log followers and the controllers. All state lives under one lock; objects
handed out are deep copies, so callers may mutate what they get.
"""

import bisect
import collections
import copy
import itertools
import threading

# Resource key = (resource, namespace, name); resource is "jobs" or "pods".


class Event:
    __slots__ = ("rv", "resource", "namespace", "type", "obj", "prev")

    def __init__(self, rv, resource, namespace, type_, obj, prev):
        self.rv = rv
        self.resource = resource
        self.namespace = namespace
        self.type = type_  # ADDED | MODIFIED | DELETED
        self.obj = obj  # state after the write (DELETED: last state, stamped with rv)
        self.prev = prev  # state before the write (None for ADDED)


class Store:
    def __init__(self, history_limit=10000):
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.rv = 1  # a fresh etcd is never at 0; "0" means "any" to clients
        self.objects = {}  # (resource, ns, name) -> obj
        self.history = collections.deque()  # Event, ascending rv
        self.history_rvs = collections.deque()
        self.history_limit = history_limit
        self.compacted_rv = 1  # watches must start at rv >= this
        self.listeners = []  # callables(event) run under the lock (stats)

    # ---- reads

    def get(self, resource, ns, name):
        with self.lock:
            obj = self.objects.get((resource, ns, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, resource, ns=None, pred=None):
        """Returns (items, rv) consistently: the items as of revision rv."""
        with self.lock:
            items = [copy.deepcopy(o) for (r, n, _), o in sorted(self.objects.items())
                     if r == resource and (ns is None or n == ns) and (pred is None or pred(o))]
            return items, self.rv

    def list_raw(self, resource):
        """Objects without copying, for controllers that only read (hold self.lock)."""
        return [o for (r, _, _), o in self.objects.items() if r == resource]

    # ---- writes

    def _record(self, resource, ns, type_, obj, prev):
        ev = Event(self.rv, resource, ns, type_, copy.deepcopy(obj),
                   copy.deepcopy(prev) if prev is not None else None)
        self.history.append(ev)
        self.history_rvs.append(ev.rv)
        while len(self.history) > self.history_limit:
            old = self.history.popleft()
            self.history_rvs.popleft()
            self.compacted_rv = old.rv
        for fn in self.listeners:
            fn(ev)
        self.changed.notify_all()

    def create(self, resource, obj):
        md = obj["metadata"]
        with self.lock:
            key = (resource, md["namespace"], md["name"])
            if key in self.objects:
                return None
            self.rv += 1
            md["resourceVersion"] = str(self.rv)
            self.objects[key] = copy.deepcopy(obj)
            self._record(resource, md["namespace"], "ADDED", obj, None)
            return copy.deepcopy(obj)

    def update(self, resource, obj):
        """Replaces the stored object (same key). Returns the new copy, or None if gone."""
        md = obj["metadata"]
        with self.lock:
            key = (resource, md["namespace"], md["name"])
            prev = self.objects.get(key)
            if prev is None or prev["metadata"]["uid"] != md["uid"]:
                return None
            self.rv += 1
            md["resourceVersion"] = str(self.rv)
            self.objects[key] = copy.deepcopy(obj)
            self._record(resource, md["namespace"], "MODIFIED", obj, prev)
            return copy.deepcopy(obj)

    def mutate(self, resource, ns, name, fn, uid=None):
        """Read-modify-write under the lock: fn(obj) edits a copy and returns True to save.
        Returns the saved copy, the unchanged copy, or None when the object is gone."""
        with self.lock:
            cur = self.objects.get((resource, ns, name))
            if cur is None or (uid is not None and cur["metadata"]["uid"] != uid):
                return None
            obj = copy.deepcopy(cur)
            if not fn(obj):
                return obj
            return self.update(resource, obj)

    def delete(self, resource, ns, name, uid=None):
        """Removes the object; the DELETED event carries its last state at the new rv."""
        with self.lock:
            key = (resource, ns, name)
            prev = self.objects.get(key)
            if prev is None or (uid is not None and prev["metadata"]["uid"] != uid):
                return None
            del self.objects[key]
            self.rv += 1
            obj = copy.deepcopy(prev)
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self._record(resource, ns, "DELETED", obj, prev)
            return obj

    def compact(self):
        """Drops all history (like etcd compaction): older watch starts get 410 Expired."""
        with self.lock:
            self.history.clear()
            self.history_rvs.clear()
            self.compacted_rv = self.rv

    # ---- watch support

    def events_after(self, rv):
        """Events with rv > `rv` (call with the lock held). None if `rv` is compacted away."""
        if rv < self.compacted_rv:
            return None
        i = bisect.bisect_right(self.history_rvs, rv)
        return list(itertools.islice(self.history, i, None))

    def notify(self):
        with self.lock:
            self.changed.notify_all()
