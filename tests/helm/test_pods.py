"""The rendered Deployments run: docq-server and docq-worker (build/bin) started with the command
and environment helm template renders for them, changing only what must change on one machine
(listen ports to free loopback ports, the Redis host to a throwaway redis-server that requires
the rendered password, the AI host to docq-fake-ai, mounted files to a temporary directory),
then probed the way the kubelet probes them: grpc.health.v1.Health/Check on the port the gRPC
probes name, HTTP GET on the worker's probe paths and port, GET /metrics where Prometheus is
told to scrape.

The probe tests need the server's health service and the endpoints on DOCQ_METRICS_LISTEN
(issue 6).
"""
import os
import signal
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.request

import chart
from chart import container, find

sys.path.insert(0, os.path.join(chart.HERE, "..", "integration"))
sys.path.insert(0, os.environ.get("DOCQ_HELM_PYGEN", os.path.join(chart.BIN_DIR, "..", "gen", "helm-python")))
import grpc  # noqa: E402
import health_pb2  # noqa: E402
import health_pb2_grpc  # noqa: E402
from stack import Proc, free_port, wait_for  # noqa: E402

# The value sets started: the defaults (bundled Redis with a generated password) and one with
# API keys (the kubelet sends no key: probes must not need one), other settings and a password
# from values.
VALUE_SETS = ([], ["api-keys-lag"])
API_KEY = "foo"  # api-keys-lag.yaml lists its SHA-256 for caller acme.


class Pod:
    """The server and worker of one rendering, started as the kubelet would start them."""

    def __init__(self, values):
        self.values = values
        self.dir = tempfile.mkdtemp(prefix="docq-helm-pods-")
        self.procs = []
        self.objs = chart.render(values)
        self.server = find(self.objs, "Deployment", "server")
        self.worker = find(self.objs, "Deployment", "worker")
        self.ports = {}
        for w in (self.server, self.worker):
            for p in container(w)["ports"]:
                self.ports[p["containerPort"]] = free_port()

    def start(self):
        self.password = chart.redis_password(self.objs, self.server)
        self.redis_port = free_port()
        argv = ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", self.dir]
        if self.password:
            argv += ["--requirepass", self.password]
        self.redis = self._start("redis", argv, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        wait_for(lambda: self.redis_cli("PING") == "PONG", what="redis-server to answer")

        port_file = os.path.join(self.dir, "ai.port")
        self.ai = self._start("fake-ai", [os.path.join(chart.BIN_DIR, "docq-fake-ai"), "--listen", "127.0.0.1:0",
                                          "--port-file", port_file], {})
        def ai_port_written():
            if os.path.exists(port_file):
                with open(port_file) as f:
                    return f.read().strip()
        ai_port = int(wait_for(ai_port_written, what="docq-fake-ai to listen"))

        self.server_env = chart.local_env(self.objs, self.server, self.dir, self.ports, self.redis_port)
        self.worker_env = chart.local_env(self.objs, self.worker, self.dir, self.ports, self.redis_port,
                                          ai_base="http://127.0.0.1:%d" % ai_port)
        self.server_proc = self._start("server", self.argv(self.server), self.server_env)
        wait_for(lambda: "listening on" in self.server_proc.text() or not self.server_proc.alive(),
                 timeout=30, what="the server to listen")
        if not self.server_proc.alive():
            raise AssertionError("the server exited:\n" + self.server_proc.text())
        self.worker_proc = self._start("worker", self.argv(self.worker), self.worker_env)
        return self

    def argv(self, workload):
        c = container(workload)
        binary = c["command"][0]
        if binary not in ("docq-server", "docq-worker", "docq"):
            raise AssertionError("%s runs %s, which the image does not hold" % (workload["metadata"]["name"], binary))
        return [os.path.join(chart.BIN_DIR, binary)] + c["command"][1:] + (c.get("args") or [])

    def _start(self, name, argv, env):
        p = Proc(name, argv, env, os.path.join(self.dir, name + ".log"))
        self.procs.append(p)
        return p

    def redis_cli(self, *args):
        argv = ["redis-cli", "-p", str(self.redis_port)]
        env = dict(os.environ)
        if self.password:
            env["REDISCLI_AUTH"] = self.password
        r = subprocess.run(argv + [str(a) for a in args], capture_output=True, text=True, env=env)
        return r.stdout.strip()

    def local_port(self, workload, port):
        """The local port standing for a rendered port (a number or a container port name)."""
        return self.ports[chart.named_port(workload, port)]

    def logs(self):
        return "\n".join("== %s ==\n%s" % (p.name, p.text()[-3000:]) for p in self.procs)

    def stop(self):
        for p in reversed(self.procs):
            if p.alive():
                p.signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
        subprocess.run(["rm", "-rf", self.dir])


def grpc_probe(port, service, timeout):
    """What the kubelet's gRPC probe does: Health/Check over plaintext with no metadata; success
    only for SERVING. Returns (ok, what was seen)."""
    with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
        try:
            r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as e:
            return False, "%s: %s" % (e.code().name, e.details())
        return r.status == health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)


def http_get(port, path, timeout):
    """What the kubelet's HTTP probe does: GET; success for a status from 200 to 399. Returns
    (ok, status or error, body)."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
            return 200 <= r.status < 400, r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return False, e.code, ""
    except OSError as e:
        return False, str(e), ""


class Pods(unittest.TestCase):
    def start(self, values):
        pod = Pod(values)
        self.addCleanup(pod.stop)
        try:
            return pod.start()
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, pod.logs()))

    def eventually(self, probe, what, pod, timeout=30):
        """Probe until it succeeds, as the kubelet keeps probing; fail with the last answer."""
        last = [None]

        def once():
            ok, seen = probe()[:2]
            last[0] = seen
            return ok
        try:
            wait_for(once, timeout=timeout, interval=0.2, what=what)
        except AssertionError:
            self.fail("%s: last answer %r\n%s" % (what, last[0], pod.logs()))

    def test_the_rendered_server_and_worker_finish_a_task_through_the_rendered_redis_url(self):
        for values in VALUE_SETS:
            with self.subTest(values=values):
                pod = self.start(values)
                env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
                if pod.server_env["DOCQ_API_KEYS_FILE"]:
                    env["DOCQ_API_KEY"] = API_KEY
                cli = [os.path.join(chart.BIN_DIR, "docq"), "--server",
                       "127.0.0.1:%d" % pod.local_port(pod.server, "grpc")]
                # submit, then status until the end (not submit --wait: the CLI's watch sends no
                # API key yet).
                out = subprocess.run(cli + ["submit", "doc_1"], capture_output=True, text=True, env=env, timeout=30)
                self.assertEqual(out.returncode, 0, out.stdout + out.stderr + pod.logs())
                task_id = out.stdout.split()[0]

                def finished():
                    st = subprocess.run(cli + ["status", task_id], capture_output=True, text=True, env=env,
                                        timeout=30)
                    return ("SUCCESS" in st.stdout or "FAILURE" in st.stdout) and st.stdout
                self.assertIn("SUCCESS", wait_for(finished, timeout=30, interval=0.2, what="the task to end"))
                # The keys are under the rendered DOCQ_KEY_PREFIX, in the rendered number of shards.
                prefix, shards = pod.server_env["DOCQ_KEY_PREFIX"], int(pod.server_env["DOCQ_SHARDS"])
                keys = pod.redis_cli("--scan", "--pattern", prefix + ":*").split()
                self.assertTrue(keys, pod.logs())
                self.assertTrue(all(int(k.split("{s")[1].split("}")[0]) < shards for k in keys), keys)

    def test_the_server_answers_the_kubelets_grpc_probes_on_the_port_the_chart_names(self):
        # Needs grpc.health.v1.Health in docq-server (issue 6).
        for values in VALUE_SETS:
            with self.subTest(values=values):
                pod = self.start(values)
                c = container(pod.server)
                for name in ("readinessProbe", "livenessProbe"):
                    probe = c[name]
                    port = pod.local_port(pod.server, probe["grpc"]["port"])
                    self.eventually(lambda: grpc_probe(port, probe["grpc"].get("service", ""), probe["timeoutSeconds"]),
                                    "the server's %s (gRPC Health/Check, no API key)" % name, pod)
                ann = pod.server["spec"]["template"]["metadata"]["annotations"]
                port = pod.ports[int(ann["prometheus.io/port"])]
                self.eventually(lambda: http_get(port, ann["prometheus.io/path"], 5),
                                "the server's /metrics on the annotated port", pod)
                self.assertIn("docq_", http_get(port, ann["prometheus.io/path"], 5)[2])

    def test_the_worker_answers_the_kubelets_http_probes_on_the_port_the_chart_names(self):
        # Needs GET /healthz, /readyz and /metrics on the worker's DOCQ_METRICS_LISTEN (issue 6).
        for values in VALUE_SETS:
            with self.subTest(values=values):
                pod = self.start(values)
                c = container(pod.worker)
                for name in ("livenessProbe", "readinessProbe"):
                    probe = c[name]["httpGet"]
                    port = pod.local_port(pod.worker, probe["port"])
                    self.eventually(lambda: http_get(port, probe["path"], c[name]["timeoutSeconds"]),
                                    "the worker's %s (GET %s)" % (name, probe["path"]), pod)
                ann = pod.worker["spec"]["template"]["metadata"]["annotations"]
                port = pod.ports[int(ann["prometheus.io/port"])]
                self.eventually(lambda: http_get(port, ann["prometheus.io/path"], 5),
                                "the worker's /metrics on the annotated port", pod)
                self.assertIn("docq_", http_get(port, ann["prometheus.io/path"], 5)[2])


if __name__ == "__main__":
    unittest.main()
