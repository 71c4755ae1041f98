"""A throwaway docq stack for integration tests: a private redis-server on a
free port, docq-fake-ai, docq-server and docq-workers, all real binaries.

Everything a Stack starts is stopped by Stack.stop() (tests call it from
tearDown/addCleanup), and its files live in a temporary directory that is
removed afterwards unless DOCQ_TEST_KEEP=1.
"""
import calendar
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN_DIR = os.environ.get("DOCQ_BIN_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build", "bin"))
PYGEN = os.environ.get("DOCQ_PYGEN", os.path.join(BIN_DIR, "..", "gen", "python"))
sys.path.insert(0, PYGEN)

import grpc  # noqa: E402
from docq.v1 import docq_pb2 as pb  # noqa: E402,F401
from docq.v1 import docq_pb2_grpc as pb_grpc  # noqa: E402


# The sanitizer settings of a DOCQ_SANITIZE build (tests/CMakeLists.txt) go
# to every process a Stack starts; what they report fails the test.
SANITIZER_VARS = ("ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS")
SANITIZER_REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error: ")
# RSS after free is the allocator's business (a fresh Debian 12 root kept
# 4 MB more than a warm machine after the same 3,000 watches; under
# AddressSanitizer it grows by megabytes a round): no test asserts on it.
# Tests assert on what the server accounts for itself (open watches, held
# bytes on /metrics), a generous peak at most, and leaks are what
# LeakSanitizer checks, exactly, when each process exits.
SANITIZED = "ASAN_OPTIONS" in os.environ


def labels(*names):
    """Decorator: the test method's ctest test also carries these labels (e.g.
    "valgrind"). tests/discover.py reads it from the source; at run time it
    changes nothing."""
    return lambda method: method


def needs(variable):
    """Decorator: the test method is registered with ctest only where the
    CMake variable is true (tests/discover.py reads it from the source)."""
    return lambda method: method


def rss_env():
    """Settings for a process whose RSS a test measures: under
    AddressSanitizer a small quarantine of freed blocks (256 MB by default),
    so that memory freed after the server's last trim does not show as
    held; nothing without sanitizers."""
    return {"ASAN_OPTIONS": os.environ["ASAN_OPTIONS"] + ":quarantine_size_mb=8"} if SANITIZED else {}


def free_port():
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shard_for(caller, shards):
    """docq_shard_for: the shard of a caller id, FNV-1a (64 bits) of it mod shards."""
    h = 14695981039346656037
    for b in caller.encode():
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h % shards


def wait_for(cond, timeout=10.0, interval=0.05, what="condition"):
    """Poll cond() until it returns a truthy value; return it or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def read_pty(argv, timeout=30):
    """Run argv with its stdout on a new pseudo-terminal; returns (exit
    status, bytes written to the terminal, stderr text)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError:  # The child closed the terminal.
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return p.wait(timeout=10), out, p.stderr.read().decode()


class Proc:
    """A started process whose stderr goes to a log file."""

    def __init__(self, name, argv, env, log_path, wrap=None):
        self.name, self.log_path = name, log_path
        self.log = open(log_path, "wb")
        full = list(wrap or []) + argv
        self.p = subprocess.Popen(full, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.p.poll() is None

    def signal(self, sig):
        if self.alive():
            self.p.send_signal(sig)

    def wait(self, timeout=30):
        try:
            return self.p.wait(timeout=timeout)
        finally:
            self.log.close()

    def kill(self):
        if self.alive():
            self.p.kill()
        self.wait()


class Stack:
    """Starts and stops the parts of a docq deployment for one test."""

    def __init__(self, shards=4, result_ttl_s=86400):
        self.dir = tempfile.mkdtemp(prefix="docq-test-")
        self.procs = []
        self.shards = shards
        self.result_ttl_s = result_ttl_s
        self.redis = None
        self.redis_port = free_port()
        self.redis_password = None
        self.ai = None
        self.ai_port = None
        self.server = None
        self.server_port = None
        self.workers = []
        self._channel = None

    # -- processes ---------------------------------------------------------
    def _start(self, name, argv, env=None, wrap=None):
        e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        e.update({k: v for k, v in os.environ.items() if k in SANITIZER_VARS})
        e.update(env or {})
        p = Proc(name, argv, e, os.path.join(self.dir, name + ".log"), wrap)
        self.procs.append(p)
        return p

    def common_env(self):
        return {
            "DOCQ_REDIS_URL": "redis://127.0.0.1:%d" % self.redis_port,
            "DOCQ_SHARDS": str(self.shards),
            "DOCQ_LOG_LEVEL": "debug",
            "DOCQ_REDIS_TIMEOUT_MS": "1000",
            # /metrics and probes on a port of their own per process.
            "DOCQ_METRICS_LISTEN": "127.0.0.1:0",
        }

    def start_redis(self, persist=False, password=None):
        """Start (or restart, on the same port) a redis-server with no
        persistence, so that a restart loses every key and group; with
        persist=True, an append-only file synced at every write, so that a
        restart (even after SIGKILL) keeps everything. With password, Redis
        requires it (the processes must then be given it: common_env does
        not)."""
        aof = ["--appendonly", "yes", "--appendfsync", "always"] if persist else ["--appendonly", "no"]
        self.redis_password = password
        auth = ["--requirepass", password] if password else []
        self.redis = self._start("redis-%d" % len(self.procs), [
            "redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
            "--save", "", "--dir", self.dir] + aof + auth)
        wait_for(lambda: self.redis_cli("PING") == "PONG", what="redis-server to answer")
        return self

    def stop_redis(self):
        self.redis.signal(signal.SIGKILL)
        self.redis.wait()

    def redis_target(self):
        """redis-cli's arguments that name the Redis to ask."""
        return ["-p", str(self.redis_port)]

    def redis_cli(self, *args):
        # The password goes in the environment, not on a command line.
        env = dict(os.environ, REDISCLI_AUTH=self.redis_password) if self.redis_password else None
        r = subprocess.run(["redis-cli"] + self.redis_target() + [str(a) for a in args],
                           capture_output=True, text=True, env=env)
        return r.stdout.strip()

    def all_keys(self):
        """Every key in Redis (SCAN)."""
        return self.redis_cli("--scan").split()

    def task_keys(self):
        """Every key in Redis but the deployment's shape record and the registry
        of deployments, which a server writes when it starts: what requests left."""
        return sorted(k for k in self.all_keys() if k != "docq-deployments" and not k.endswith(":shape"))

    def start_ai(self, *extra, port=0):
        port_file = os.path.join(self.dir, "ai.port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        self.ai = self._start("fake-ai", [os.path.join(BIN_DIR, "docq-fake-ai"), "--listen",
                                          "127.0.0.1:%d" % port, "--port-file", port_file] + list(extra))
        self.ai_port = int(wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(),
                                    what="docq-fake-ai to listen"))
        return self

    def ai_stats(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/stats" % self.ai_port, timeout=5) as r:
            return json.loads(r.read())

    def start_server(self, wrap=None, **env):
        self.server, self.server_port = self.start_replica("server", wrap, **env)
        return self

    def start_replica(self, name, wrap=None, **env):
        """Start a docq-server named name; returns (Proc, port)."""
        e = self.common_env()
        e["DOCQ_LISTEN"] = "127.0.0.1:0"
        # Most tests submit many documents from 127.0.0.1: lift the rate
        # limits (default 5 per 60 s) unless a test sets its own.
        e["DOCQ_RATE_LIMIT"] = "1000000"
        e["DOCQ_READ_RATE_LIMIT"] = "1000000"
        e.update(env)
        proc = self._start(name, [os.path.join(BIN_DIR, "docq-server")], e, wrap)
        m = wait_for(lambda: re.search(r"listening on \S+ \(port (\d+)\)", proc.text()),
                     timeout=30, what="%s to listen" % name)
        return proc, int(m.group(1))

    def start_worker(self, wrap=None, **env):
        e = self.common_env()
        e["DOCQ_AI_URL"] = "http://127.0.0.1:%d/process" % self.ai_port
        e["DOCQ_RESULT_TTL_S"] = str(self.result_ttl_s)
        e.update(env)
        w = self._start("worker-%d" % len(self.workers), [os.path.join(BIN_DIR, "docq-worker")], e, wrap)
        self.workers.append(w)
        return w

    def start_all(self, workers=2, ai_args=(), **worker_env):
        self.start_redis().start_ai(*ai_args).start_server()
        for _ in range(workers):
            self.start_worker(**worker_env)
        return self

    def stop(self):
        if self._channel:
            self._channel.close()
        for p in reversed(self.procs):
            if p.alive():
                p.signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        reports = ["== %s ==\n%s" % (p.name, p.text()[-6000:]) for p in self.procs
                   if SANITIZER_REPORT.search(p.text())]
        if os.environ.get("DOCQ_TEST_KEEP") == "1":
            print("kept test files in", self.dir, file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if reports:
            raise AssertionError("a sanitizer reported an error:\n" + "\n".join(reports))

    def logs(self):
        """Every process log, for a failing test's message."""
        return "\n".join("== %s ==\n%s" % (p.name, p.text()[-4000:]) for p in self.procs)

    # -- clients -------------------------------------------------------------
    def address(self):
        return "127.0.0.1:%d" % self.server_port

    def stub(self, new_channel=False):
        """A generated docq.v1.DocQueue client (Python grpcio)."""
        if new_channel:
            return pb_grpc.DocQueueStub(grpc.insecure_channel(self.address()))
        if not self._channel:
            self._channel = grpc.insecure_channel(self.address())
        return pb_grpc.DocQueueStub(self._channel)

    def rss_kib(self, proc=None):
        """Resident memory of a process (the server by default), in KiB."""
        with open("/proc/%d/status" % (proc or self.server).p.pid) as f:
            return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))

    def open_watches(self):
        """The server's open-watch gauge, as its last debug line about
        watches says (0 before any)."""
        counts = re.findall(r"watch [a-z]+[^\n]*?\((\d+) open\)", self.server.text())
        return int(counts[-1]) if counts else 0

    def cli(self, *args, timeout=30):
        """Run the docq CLI against this stack; returns CompletedProcess."""
        return subprocess.run([os.path.join(BIN_DIR, "docq"), "--server", self.address()] + list(args),
                              capture_output=True, text=True, timeout=timeout)

    def task(self, task_id):
        """The task as GetStatus returns it now."""
        return self.stub().GetStatus(pb.GetStatusRequest(task_id=task_id), timeout=5)

    def wait_task(self, task_id, cond, timeout=30, what="the task"):
        """Poll GetStatus until cond(task) holds; return the task."""
        def check():
            t = self.task(task_id)
            return t if cond(t) else None
        return wait_for(check, timeout=timeout, interval=0.05, what=what)

    # -- Redis and AI inspection ---------------------------------------------
    def stream_key(self, shard, name="tasks"):
        return "docq:{s%d}:%s" % (shard, name)

    def shard_of(self, task_id):
        return int(task_id.split("-")[0][1:])

    def pending_count(self):
        """Entries pending in the workers' group, over every shard."""
        total = 0
        for shard in range(self.shards):
            out = self.redis_cli("XPENDING", self.stream_key(shard), "workers")
            first = out.splitlines()[0] if out else "0"
            total += int(first) if first.isdigit() else 0
        return total

    def queued_count(self, name="tasks"):
        """Entries in the queue streams (or another per-shard stream), over every shard."""
        return sum(int(self.redis_cli("XLEN", self.stream_key(shard, name)) or 0)
                   for shard in range(self.shards))

    def ai_answers(self):
        """The answers docq-fake-ai logged (start it with --log-requests 1), in order:
        [(unix seconds, task_id, status, the task's request count)]."""
        out = []
        for line in self.ai.text().splitlines():
            m = re.search(r'"ts":"([^"]+)".*answered POST task_id=(\S*) status=(\d+) task_requests=(\d+)', line)
            if m:
                ts = calendar.timegm(time.strptime(m.group(1)[:19], "%Y-%m-%dT%H:%M:%S"))
                out.append((ts + float("0" + m.group(1)[19:-1]), m.group(2), int(m.group(3)), int(m.group(4))))
        return out

    def wait_terminal(self, task_id, timeout=30):
        """Poll GetStatus until the task has ended (SUCCESS, FAILURE or CANCELLED); return it."""
        stub = self.stub()

        def done():
            t = stub.GetStatus(pb.GetStatusRequest(task_id=task_id), timeout=5)
            return t if t.state in (pb.Task.SUCCESS, pb.Task.FAILURE, pb.Task.CANCELLED) else None
        return wait_for(done, timeout=timeout, interval=0.1, what="task %s to finish" % task_id)
