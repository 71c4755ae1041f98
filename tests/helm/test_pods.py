"""The rendered Deployments run: docq-server and docq-worker (build/bin) started with the command
and environment helm template renders for them, changing only what must change on one machine
(listen ports to free loopback ports, the Redis host to a throwaway redis-server that requires
the rendered password, the AI host to docq-fake-ai, mounted files to a temporary directory),
then probed the way the kubelet probes them: grpc.health.v1.Health/Check on the port the gRPC
probes name, HTTP GET on the worker's probe paths and port, GET /metrics where Prometheus is
told to scrape. With TLS values the server gets certificates made by openssl (the operator's
kubernetes.io/tls Secret). The bundled Redis's own command and readiness probe run too, with
redis-server and redis-cli of this machine.

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
from certs import Pki  # noqa: E402
from stack import Proc, free_port, wait_for  # noqa: E402

# The value sets started: the defaults (bundled Redis with a generated password) and one with
# API keys (the kubelet sends no key: probes must not need one), other settings and a password
# from values.
VALUE_SETS = ([], ["api-keys-lag"])
API_KEY = "foo"  # api-keys-lag.yaml lists its SHA-256 for caller acme.


class Pod:
    """The server and worker of one rendering, started as the kubelet would start them."""

    def __init__(self, values, external_secrets=None):
        """external_secrets: {name: {key: value}} of the Secrets the values name and the chart
        does not render."""
        self.values = values
        self.external_secrets = external_secrets or {}
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
        self.password = chart.redis_password(self.objs, self.server, self.external_secrets)
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

        self.server_env = chart.local_env(self.objs, self.server, self.dir, self.ports, self.redis_port,
                                          external_secrets=self.external_secrets)
        self.worker_env = chart.local_env(self.objs, self.worker, self.dir, self.ports, self.redis_port,
                                          ai_base="http://127.0.0.1:%d" % ai_port,
                                          external_secrets=self.external_secrets)
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


def health_check(channel, timeout=5):
    """Health/Check of the whole server over channel: (ok, what was seen)."""
    try:
        r = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
    except grpc.RpcError as e:
        return False, "%s: %s" % (e.code().name, e.details())
    return r.status == health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)


class Pods(unittest.TestCase):
    def start(self, values, external_secrets=None):
        pod = Pod(values, external_secrets)
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
        """the rendered server and worker finish a task through the rendered Redis URL and
        password"""
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
                # Besides the deployment's shape, which the server records.
                self.assertIn(prefix + ":shape", keys)
                self.assertEqual(pod.redis_cli("GET", prefix + ":shape"), "shards=%d group=%s"
                                 % (shards, pod.server_env.get("DOCQ_GROUP", "workers")))
                keys.remove(prefix + ":shape")
                self.assertTrue(keys, pod.logs())
                self.assertTrue(all("{s" in k and int(k.split("{s")[1].split("}")[0]) < shards for k in keys), keys)

    def test_the_server_answers_the_kubelets_grpc_probes_on_the_port_the_chart_names(self):
        """the server answers the kubelet's gRPC probes and serves /metrics on the ports the
        chart names"""
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
        """the worker answers the kubelet's HTTP probes and serves /metrics on the port the chart
        names"""
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

    def test_with_tls_the_server_serves_tls_and_answers_the_kubelets_probes_on_the_plaintext_port(self):
        """with TLS and mutual TLS the rendered server serves TLS on its port, answers the
        kubelet's probes on the plaintext port, and the worker reads the Redis password from
        its mounted file"""
        pki = Pki(tempfile.mkdtemp(prefix="docq-helm-pki-"))
        self.addCleanup(subprocess.run, ["rm", "-rf", os.path.dirname(pki.dir)])
        client = pki.client("acme")
        # The operator's kubernetes.io/tls Secret (tls-mtls.yaml names it), as cert-manager
        # writes it: the certificate, its key and the CA.
        secret = {"tls.crt": Pki.read(pki.server.cert).decode(), "tls.key": Pki.read(pki.server.key).decode(),
                  "ca.crt": Pki.read(pki.ca_cert).decode()}
        pod = self.start(["tls-mtls"], {"docq-tls": secret})
        tls_port = pod.local_port(pod.server, "grpc")
        health_port = pod.local_port(pod.server, "health")
        # The kubelet's probes: plaintext Health/Check on the port they name, the health port.
        c = container(pod.server)
        for name in ("readinessProbe", "livenessProbe"):
            probe = c[name]
            port = pod.local_port(pod.server, probe["grpc"]["port"])
            self.assertEqual(port, health_port, name)
            self.eventually(lambda: grpc_probe(port, probe["grpc"].get("service", ""), probe["timeoutSeconds"]),
                            "the server's %s (plaintext gRPC Health/Check on the health port)" % name, pod)
        # The gRPC port speaks TLS only, and wants a client certificate signed by the CA.
        ok, seen = grpc_probe(tls_port, "", 5)
        self.assertFalse(ok, "plaintext Health/Check on the TLS port answered %s" % seen)
        ca, key, cert = Pki.read(pki.ca_cert), Pki.read(client.key), Pki.read(client.cert)
        with grpc.secure_channel("127.0.0.1:%d" % tls_port, grpc.ssl_channel_credentials(ca, key, cert)) as ch:
            self.assertEqual(health_check(ch), (True, "SERVING"))
        with grpc.secure_channel("127.0.0.1:%d" % tls_port, grpc.ssl_channel_credentials(ca)) as ch:
            ok, seen = health_check(ch)
            self.assertFalse(ok, "a TLS client without a certificate was answered %s" % seen)
        # The plaintext port serves health only.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        out = subprocess.run([os.path.join(chart.BIN_DIR, "docq"), "--server", "127.0.0.1:%d" % health_port,
                              "status", "00000000000000000000000000000000"], capture_output=True, text=True,
                             env=env, timeout=30)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("PERMISSION_DENIED", out.stdout + out.stderr)
        # A task submitted over mutual TLS finishes: the worker reached this Redis, which requires
        # the password, with the URL that holds none and the file mounted from the Secret.
        cli = [os.path.join(chart.BIN_DIR, "docq"), "--server", "127.0.0.1:%d" % tls_port, "--cacert", pki.ca_cert,
               "--cert", client.cert, "--key", client.key]
        out = subprocess.run(cli + ["submit", "doc_1"], capture_output=True, text=True, env=env, timeout=30)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr + pod.logs())
        task_id = out.stdout.split()[0]

        def finished():
            st = subprocess.run(cli + ["status", task_id], capture_output=True, text=True, env=env, timeout=30)
            return ("SUCCESS" in st.stdout or "FAILURE" in st.stdout) and st.stdout
        try:
            self.assertIn("SUCCESS", wait_for(finished, timeout=30, interval=0.2, what="the task to end"))
        except AssertionError as e:
            self.fail("%s\n%s" % (e, pod.logs()))
        self.assertNotIn("@", pod.worker_env["DOCQ_REDIS_URL"])
        path = pod.worker_env["DOCQ_REDIS_PASSWORD_FILE"]
        self.assertTrue(path.startswith(pod.dir + "/"), path)
        with open(path) as f:
            self.assertEqual(f.read(), pod.password)
        self.assertNotIn(pod.password, "".join(pod.worker_env.values()))

    def test_the_bundled_redis_starts_with_the_password_from_its_mounted_file_and_answers_its_probe(self):
        """the bundled Redis starts with the password from its mounted file, in neither its
        environment nor its command line, and its readiness probe passes"""
        # A password that a shell or redis.conf would mangle, with the trailing newline of a
        # Secret made from a file (dropped, as docq drops it).
        password = "p@ss w/\"q\\$x`y'#"
        objs = chart.render(sets=["redis.bundled.existingSecret=redis-auth", "redis.bundled.existingSecretKey=pw"])
        redis = find(objs, "StatefulSet", "redis")
        secrets = {"redis-auth": {"pw": password + "\n"}}
        self.assertEqual(chart.redis_password(objs, find(objs, "Deployment", "worker"), secrets), password)
        root = tempfile.mkdtemp(prefix="docq-helm-redis-")
        self.addCleanup(subprocess.run, ["rm", "-rf", root])
        files = chart.mounted_files(objs, redis, secrets)
        for path, data in files.items():
            os.makedirs(os.path.dirname(root + path), exist_ok=True)
            with open(root + path, "w") as f:
                f.write(data)
        mounts = [m["mountPath"] for m in container(redis)["volumeMounts"]]

        def local(text):
            """text with the container's mount paths moved under root."""
            for m in mounts:
                text = text.replace(m, root + m)
            return text
        os.makedirs(root + "/data")
        c = container(redis)
        port = free_port()
        args = list(c["args"])
        self.assertEqual(args[args.index("--port") + 1], "6379")
        args[args.index("--port") + 1] = str(port)
        args[args.index("--dir") + 1] = root + "/data"
        argv = [local(a) for a in c["command"]] + args + ["--bind", "127.0.0.1"]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        proc = Proc("redis", argv, env, os.path.join(root, "redis.log"))
        self.addCleanup(lambda: proc.kill())

        def cli(auth, *args):
            e = dict(env, **({"REDISCLI_AUTH": auth} if auth is not None else {}))
            return subprocess.run(["redis-cli", "-p", str(port)] + list(args), capture_output=True, text=True,
                                  env=e, timeout=10).stdout.strip()
        wait_for(lambda: cli(password, "PING") == "PONG" or not proc.alive(), timeout=15, what="redis-server")
        self.assertEqual(cli(password, "PING"), "PONG", proc.text())
        self.assertIn("NOAUTH", cli(None, "PING"))
        self.assertNotEqual(cli("wrong", "PING"), "PONG")
        self.assertEqual(cli(password, "CONFIG", "GET", "appendonly").split(), ["appendonly", "yes"])
        # The password is in neither the environment nor the command line of redis-server.
        pid = proc.p.pid
        for what in ("environ", "cmdline"):
            with open("/proc/%d/%s" % (pid, what), "rb") as f:
                self.assertNotIn(password.encode(), f.read(), what)
        # The readiness probe, as the kubelet runs it in the container (redis-cli pointed at
        # this port), passes; with another password in the file it fails.
        probe = [local(a).replace("redis-cli ", "redis-cli -p %d " % port) for a in c["readinessProbe"]["exec"]["command"]]
        self.assertEqual(subprocess.run(probe, env=env, timeout=10).returncode, 0)
        [path] = files
        with open(root + path, "w") as f:
            f.write("not-the-password")
        self.assertNotEqual(subprocess.run(probe, env=env, timeout=10).returncode, 0)


if __name__ == "__main__":
    unittest.main()
