"""What operators point at docq besides its own API: the HTTP endpoint
(/metrics, /healthz, /readyz) of the server and the worker, and the gRPC
health service. Helpers for the tests that check them.

parse_prometheus is a strict reader of the Prometheus text format 0.0.4: it
fails on anything a Prometheus server would reject, and on the conventions
docq promises (HELP and TYPE for every family, _total counters, cumulative
histograms ending at +Inf), so a page that merely looks right does not pass.
"""
import http.client
import math
import queue
import re
import threading
import time

import grpc

import stack  # noqa: F401  (puts the generated modules on sys.path)
from health.v1 import health_pb2  # noqa: E402

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


# -- The HTTP endpoint ----------------------------------------------------------

def metrics_port(proc):
    """The port a server's or worker's metrics endpoint bound, from its log."""
    m = stack.wait_for(lambda: re.search(r"metrics on \S+ \(port (\d+)\)", proc.text()),
                       timeout=30, what="%s to log its metrics port" % proc.name)
    return int(m.group(1))


def http_get(port, path, timeout=5):
    """GET path on 127.0.0.1:port: (status, content type, body text)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type"), r.read().decode("utf-8")
    finally:
        conn.close()


def scrape(port):
    """GET /metrics and parse it strictly: {family: Family}."""
    status, ctype, body = http_get(port, "/metrics")
    if status != 200:
        raise AssertionError("/metrics answered %d: %s" % (status, body))
    if not ctype.startswith("text/plain; version=0.0.4"):
        raise AssertionError("/metrics content type %r" % ctype)
    return parse_prometheus(body)


# -- The strict parser --------------------------------------------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class ParseError(AssertionError):
    pass


class Family:
    def __init__(self, name):
        self.name, self.help, self.type, self.samples = name, None, None, []

    def value(self, suffix="", **labels):
        """The value of the sample name+suffix with exactly these labels."""
        want = {k: str(v) for k, v in labels.items()}
        for name, got, value in self.samples:
            if name == self.name + suffix and got == want:
                return value
        raise KeyError("%s%s%s not on the page" % (self.name, suffix, want))

    def get(self, default=0.0, suffix="", **labels):
        try:
            return self.value(suffix, **labels)
        except KeyError:
            return default


def _labels(text, where):
    """Parse the inside of {...}: name="value" pairs with \\\\, \\" and \\n escapes."""
    out, i = {}, 0
    while i < len(text):
        m = re.compile(r"(%s)=\"" % LABEL).match(text, i)
        if not m:
            raise ParseError("%s: bad label at %r" % (where, text[i:]))
        i, value = m.end(), []
        while True:
            if i >= len(text):
                raise ParseError("%s: unterminated label value" % where)
            c = text[i]
            if c == "\\":
                nxt = text[i + 1:i + 2]
                if nxt not in ("\\", '"', "n"):
                    raise ParseError("%s: bad escape \\%s" % (where, nxt))
                value.append("\n" if nxt == "n" else nxt)
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise ParseError("%s: raw newline in a label value" % where)
            else:
                value.append(c)
                i += 1
        if m.group(1) in out:
            raise ParseError("%s: label %s twice" % (where, m.group(1)))
        out[m.group(1)] = "".join(value)
        if i < len(text):
            if text[i] != ",":
                raise ParseError("%s: expected ',' between labels" % where)
            i += 1
    return out


def _value(text, where):
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text):
        raise ParseError("%s: bad value %r" % (where, text))
    return float(text)


def _family_of(name, families):
    """The declared family a sample name belongs to (histogram suffixes)."""
    if name in families:
        return families[name]
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[:-len(suffix)]
        if name.endswith(suffix) and base in families and families[base].type in ("histogram", "summary"):
            return families[base]
    return None


def _check_histogram(f):
    series = {}
    for name, labels, value in f.samples:
        key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        s = series.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if name == f.name + "_bucket":
            if "le" not in labels:
                raise ParseError("%s: a bucket without le" % f.name)
            s["buckets"].append((_value(labels["le"], f.name), value))
        elif name == f.name + "_sum":
            s["sum"] = value
        elif name == f.name + "_count":
            s["count"] = value
        else:
            raise ParseError("%s: sample %s in a histogram" % (f.name, name))
    for key, s in series.items():
        bounds = [b for b, _ in s["buckets"]]
        counts = [c for _, c in s["buckets"]]
        if not bounds or bounds[-1] != math.inf or bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise ParseError("%s%s: buckets must rise to +Inf" % (f.name, dict(key)))
        if counts != sorted(counts):
            raise ParseError("%s%s: bucket counts must be cumulative" % (f.name, dict(key)))
        if s["count"] is None or s["sum"] is None or s["count"] != counts[-1]:
            raise ParseError("%s%s: _count must equal the +Inf bucket, with a _sum" % (f.name, dict(key)))


def parse_prometheus(text):
    """Parse an exposition; raise ParseError at the first thing wrong."""
    if not text.endswith("\n"):
        raise ParseError("the page must end with a newline")
    families, seen, current = {}, set(), None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = "line %d" % n
        if line.startswith("#"):
            m = re.fullmatch(r"# (HELP|TYPE) (%s) (.*)" % NAME, line)
            if not m:
                raise ParseError("%s: bad comment line %r" % (where, line))
            kind, name, rest = m.groups()
            f = families.get(name)
            if f is None:
                f = families[name] = Family(name)
            elif f.samples:
                raise ParseError("%s: %s for %s after its samples" % (where, kind, name))
            if kind == "HELP":
                if f.help is not None or not rest.strip():
                    raise ParseError("%s: HELP of %s missing or twice" % (where, name))
                f.help = rest
            else:
                if f.type is not None or rest not in TYPES:
                    raise ParseError("%s: TYPE of %s bad or twice: %r" % (where, name, rest))
                f.type = rest
            current = f
            continue
        m = re.fullmatch(r"(%s)(?:\{(.*)\})? (\S+)(?: (-?\d+))?" % NAME, line)
        if not m:
            raise ParseError("%s: bad sample line %r" % (where, line))
        name, labels, value = m.group(1), _labels(m.group(2) or "", where), _value(m.group(3), where)
        f = _family_of(name, families)
        if f is None or f.help is None or f.type is None:
            raise ParseError("%s: sample %s without HELP and TYPE before it" % (where, name))
        if f is not current:
            raise ParseError("%s: samples of %s are not together" % (where, f.name))
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            raise ParseError("%s: series %s%s twice" % (where, name, labels))
        seen.add(key)
        f.samples.append((name, labels, value))
    for f in families.values():
        if f.type is None or f.help is None:
            raise ParseError("family %s lacks HELP or TYPE" % f.name)
        if f.type == "counter":
            if not f.name.endswith("_total"):
                raise ParseError("counter %s must end in _total" % f.name)
            if any(v < 0 or math.isnan(v) for _, _, v in f.samples):
                raise ParseError("counter %s below zero" % f.name)
        if f.type == "histogram":
            _check_histogram(f)
        if not f.name.startswith("docq_") and not f.name.startswith("process_"):
            raise ParseError("family %s is neither docq_ nor process_" % f.name)
    return families


# -- grpc.health.v1 -------------------------------------------------------------------

def _health_method(channel, name, stream):
    kind = channel.unary_stream if stream else channel.unary_unary
    return kind("/grpc.health.v1.Health/" + name,
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString)


def health_check(channel, service="", timeout=5, metadata=None):
    """The status Check answers (raises grpc.RpcError on an error status)."""
    return _health_method(channel, "Check", False)(health_pb2.HealthCheckRequest(service=service),
                                                   timeout=timeout, metadata=metadata).status


class HealthWatch(threading.Thread):
    """One Health.Watch stream read to its end in a thread of its own: every
    status received (in order, with its arrival time) and how it ended."""

    def __init__(self, channel, service="", timeout=120):
        super().__init__(daemon=True)
        self.call = _health_method(channel, "Watch", True)(health_pb2.HealthCheckRequest(service=service),
                                                            timeout=timeout)
        self.statuses, self.times = [], []
        self.code = self.details = None
        self.start()

    def run(self):
        try:
            for m in self.call:
                self.statuses.append(m.status)
                self.times.append(time.monotonic())
            self.code = grpc.StatusCode.OK
        except grpc.RpcError as e:
            self.code, self.details = e.code(), e.details()

    def wait_statuses(self, want, timeout=30):
        """Wait until the statuses received are exactly want (a list)."""
        stack.wait_for(lambda: self.statuses == want or (len(self.statuses) > len(want) and "extra"),
                       timeout=timeout, what="health statuses %s (have %s)" % (want, self.statuses))
        if self.statuses != want:
            raise AssertionError("health statuses %s, expected %s" % (self.statuses, want))

    def finish(self, timeout=60):
        self.join(timeout)
        if self.is_alive():
            raise AssertionError("health watch still open after %ss: %s" % (timeout, self.statuses))
        return self


class RequestQueue:
    """Requests for a bidirectional stream, sent as they are put (None
    half-closes)."""

    def __init__(self):
        self.q = queue.Queue()

    def put(self, item):
        self.q.put(item)

    def __iter__(self):
        while True:
            item = self.q.get()
            if item is None:
                return
            yield item
