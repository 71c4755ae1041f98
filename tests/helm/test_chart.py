"""helm/docq rendered with each value set of tests/helm/values: helm lint --strict passes, every
object helm template renders passes its Kubernetes schema (kubernetes-models), and the objects
say what the value set asks for. The values schema refuses bad values, and the rendered
Deployments agree with the binaries (ports, grace periods, settings and their defaults,
security contexts).
"""
import base64
import collections
import json
import os
import subprocess
import sys
import tempfile
import unittest

import chart
import fakekube
from chart import find, kinds, container, pod_spec


def probe_port(workload, probe):
    """The port a probe of the workload's container targets, as a number."""
    p = container(workload)[probe]
    action = p.get("grpc") or p.get("httpGet") or p.get("tcpSocket")
    return chart.named_port(workload, action["port"])


def listen_port(address):
    return int(address.rsplit(":", 1)[1])


# What a Secret the chart expects the operator to provide holds, in the checks that do not look
# at the values themselves: every key a value set names.
OPERATOR_SECRET = {"password": "pw", "redis-password": "pw", "pw": "pw",
                   "tls.crt": "certificate", "tls.key": "key", "ca.crt": "client CA"}


def mounted_volume(workload, mount_path):
    """The volume of a workload's pod that its first container mounts at mount_path."""
    [m] = [m for m in container(workload).get("volumeMounts") or [] if m["mountPath"] == mount_path]
    [v] = [v for v in pod_spec(workload)["volumes"] if v["name"] == m["name"]]
    return m, v


def assert_redis_password_is_a_mounted_file(test, objs, workload, secret, key, password,
                                            external_secrets=None):
    """The workload reads the Redis password from the file DOCQ_REDIS_PASSWORD_FILE names,
    item key of Secret secret mounted read-only, and from nowhere else: not in its URL, its
    environment, its command or its arguments."""
    env = chart.container_env(objs, workload, external_secrets)
    c = container(workload)
    mount, vol = mounted_volume(workload, os.path.dirname(env["DOCQ_REDIS_PASSWORD_FILE"]))
    test.assertTrue(mount["readOnly"])
    test.assertEqual(vol["secret"], {"secretName": secret, "items": [
        {"key": key, "path": os.path.basename(env["DOCQ_REDIS_PASSWORD_FILE"])}]})
    test.assertEqual(chart.redis_password(objs, workload, external_secrets), password)
    test.assertNotIn("@", env["DOCQ_REDIS_URL"])
    test.assertNotIn(password, json.dumps([c.get("env"), c.get("command"), c.get("args"), env]))


class Common:
    """Checks that hold for every value set."""

    def check_common(self, objs, external_secrets=()):
        names = [(o["kind"], o["metadata"]["name"]) for o in objs]
        self.assertEqual(len(names), len(set(names)), "an object is rendered twice: %s" % names)
        for o in objs:
            labels = o["metadata"].get("labels") or {}
            self.assertEqual(labels.get("app.kubernetes.io/instance"), chart.RELEASE, o["metadata"]["name"])
            self.assertLessEqual(len(o["metadata"]["name"]), 63, o["metadata"]["name"])
        server = find(objs, "Deployment", "server")
        worker = find(objs, "Deployment", "worker")
        service = find(objs, "Service", "server")
        for w in (server, worker):
            # Every workload's selector matches its pod labels.
            pod_labels = w["spec"]["template"]["metadata"]["labels"]
            for k, v in w["spec"]["selector"]["matchLabels"].items():
                self.assertEqual(pod_labels.get(k), v)
            # The environment resolves: every Secret and ConfigMap it names is rendered or is
            # one the value set says the operator provides.
            operator = {s: OPERATOR_SECRET for s in external_secrets}
            env = chart.container_env(objs, w, operator)
            self.assertTrue(env["DOCQ_REDIS_URL"].startswith("redis://"), env["DOCQ_REDIS_URL"])
            self.assertNotIn("$(", env["DOCQ_REDIS_URL"])
            # Every file it mounts is there (Secrets rendered or the operator's, with the keys
            # named), and every file a setting names is mounted.
            files = chart.mounted_files(objs, w, operator)
            for setting in ("DOCQ_REDIS_PASSWORD_FILE", "DOCQ_API_KEYS_FILE", "DOCQ_TLS_CERT", "DOCQ_TLS_KEY",
                            "DOCQ_TLS_CLIENT_CA"):
                if env.get(setting):
                    self.assertIn(env[setting], files, setting)
        # The Service sends gRPC to the server pods' grpc port.
        for k, v in service["spec"]["selector"].items():
            self.assertEqual(server["spec"]["template"]["metadata"]["labels"].get(k), v)
        self.assertEqual([(p["name"], p["targetPort"], p.get("appProtocol")) for p in service["spec"]["ports"]],
                         [("grpc", "grpc", "grpc")])
        return server, worker, service


class ValueSets(unittest.TestCase, Common):
    def lint_and_render(self, values=(), sets=()):
        lint = chart.lint(values, sets)
        self.assertEqual(lint.returncode, 0, lint.stdout + lint.stderr)
        return chart.render(values, sets)

    def test_default_values(self):
        """helm lint passes and every rendered object is a valid Kubernetes object with the
        default values"""
        objs = self.lint_and_render()
        server, worker, _ = self.check_common(objs)
        # Bundled Redis: one pod, AOF on a PersistentVolumeClaim, a generated password.
        redis = find(objs, "StatefulSet", "redis")
        self.assertEqual(redis["spec"]["replicas"], 1)
        args = container(redis)["args"]
        self.assertEqual(args[args.index("--appendonly") + 1], "yes")
        self.assertEqual(args[args.index("--appendfsync") + 1], "everysec")
        self.assertEqual(args[args.index("--maxmemory-policy") + 1], "noeviction")
        self.assertEqual([m["mountPath"] for m in container(redis)["volumeMounts"]], ["/data", "/etc/docq/redis"])
        self.assertEqual([t["metadata"]["name"] for t in redis["spec"]["volumeClaimTemplates"]], ["data"])
        password = chart.secret_data(find(objs, "Secret", "redis"))["redis-password"]
        self.assertRegex(password, r"^[A-Za-z0-9]{32}$")
        env = chart.container_env(objs, server)
        self.assertEqual(env["DOCQ_REDIS_URL"], "redis://docq-redis:6379/0")
        self.assertEqual(chart.container_env(objs, worker)["DOCQ_REDIS_URL"], env["DOCQ_REDIS_URL"])
        # Servers, workers and Redis itself read the password from the Secret mounted as a file.
        for w in (server, worker):
            assert_redis_password_is_a_mounted_file(self, objs, w, "docq-redis", "redis-password", password)
        self.assertEqual(chart.mounted_files(objs, redis)["/etc/docq/redis/password"], password)
        self.assertNotIn("env", container(redis))
        self.assertNotIn(password, str(kinds(objs, "ConfigMap")))
        # Workers scale on CPU; servers and workers have disruption budgets.
        hpa = find(objs, "HorizontalPodAutoscaler", "worker")
        self.assertEqual(hpa["spec"]["scaleTargetRef"]["name"], worker["metadata"]["name"])
        self.assertEqual([m["type"] for m in hpa["spec"]["metrics"]], ["Resource"])
        self.assertNotIn("replicas", worker["spec"])
        self.assertEqual(server["spec"]["replicas"], 2)
        self.assertEqual(len(kinds(objs, "PodDisruptionBudget")), 2)
        # Servers spread over zones and nodes.
        keys = [t["topologyKey"] for t in pod_spec(server)["topologySpreadConstraints"]]
        self.assertEqual(keys, ["topology.kubernetes.io/zone", "kubernetes.io/hostname"])
        # Off by default: API keys, NetworkPolicy, ServiceMonitor.
        self.assertEqual(chart.container_env(objs, server)["DOCQ_API_KEYS_FILE"], "")
        self.assertEqual(kinds(objs, "NetworkPolicy") + kinds(objs, "ServiceMonitor"), [])

    def test_external_redis(self):
        """helm lint passes and every rendered object is valid with an external Redis whose
        password is in an existing Secret"""
        objs = self.lint_and_render(["external-redis"])
        server, worker, _ = self.check_common(objs, external_secrets=["docq-redis-credentials"])
        self.assertEqual(kinds(objs, "StatefulSet"), [])
        self.assertEqual([s["metadata"]["name"] for s in kinds(objs, "Secret")], [])
        # The password from the operator's Secret, as a file: a '/' or an '@' in it is fine.
        secrets = {"docq-redis-credentials": {"password": "p@ss:w/rd\n"}}
        for w in (server, worker):
            env = chart.container_env(objs, w, secrets)
            self.assertEqual(env["DOCQ_REDIS_URL"], "redis://redis.data.svc.cluster.local:6380/2")
            assert_redis_password_is_a_mounted_file(self, objs, w, "docq-redis-credentials", "password",
                                                    "p@ss:w/rd", secrets)
        self.assertEqual(chart.container_env(objs, worker, {"docq-redis-credentials": {"password": "x"}})[
            "DOCQ_AI_URL"], "http://ai.models.svc.cluster.local:8080/process")

    def test_external_redis_cluster(self):
        """helm lint passes and every rendered object is valid with an external Redis Cluster
        given by seed nodes, and servers and workers get the seeds as one comma-separated
        DOCQ_REDIS_URL"""
        objs = self.lint_and_render(["external-cluster"])
        server, worker, _ = self.check_common(objs, external_secrets=["docq-redis-cluster"])
        self.assertEqual(kinds(objs, "StatefulSet") + kinds(objs, "Secret"), [])
        # Each seed becomes a redis:// URL, in the order given; the password stays a file.
        seeds = ("redis://redis-cluster-0.redis-cluster.data.svc:6379,"
                 "redis://redis-cluster-1.redis-cluster.data.svc:6379,redis://[fd00::12]:7000")
        secrets = {"docq-redis-cluster": {"password": "cluster pw\n"}}
        for component, w in (("server", server), ("worker", worker)):
            self.assertEqual(find(objs, "ConfigMap", component)["data"]["DOCQ_REDIS_URL"], seeds)
            self.assertEqual(chart.container_env(objs, w, secrets)["DOCQ_REDIS_URL"], seeds)
            assert_redis_password_is_a_mounted_file(self, objs, w, "docq-redis-cluster", "password",
                                                    "cluster pw", secrets)
        self.assertEqual(chart.container_env(objs, server, secrets)["DOCQ_REDIS_MIN_REPLICAS"], "1")
        # One seed node in url instead: DOCQ_REDIS_URL is that URL (database 0 is allowed).
        objs = chart.render(sets=["redis.bundled.enabled=false", "redis.external.cluster=true",
                                  "redis.external.url=redis://redis-cluster.data.svc:6379/0"])
        for component in ("server", "worker"):
            self.assertEqual(find(objs, "ConfigMap", component)["data"]["DOCQ_REDIS_URL"],
                             "redis://redis-cluster.data.svc:6379/0")

    def test_bundled_redis_off_and_hpa_off(self):
        """helm lint passes and every rendered object is valid with the bundled Redis off and the
        HPA off"""
        objs = self.lint_and_render(["no-bundled-redis-no-hpa"])
        server, worker, _ = self.check_common(objs)
        self.assertEqual(kinds(objs, "StatefulSet") + kinds(objs, "Secret") + kinds(objs, "HorizontalPodAutoscaler"), [])
        self.assertEqual(server["spec"]["replicas"], 3)
        self.assertEqual(worker["spec"]["replicas"], 4)
        # No password: no file, no volume; every setting comes from the ConfigMap.
        for w in (server, worker):
            self.assertNotIn("env", container(w))
            self.assertNotIn("volumes", pod_spec(w))
            env = chart.container_env(objs, w)
            self.assertEqual((env["DOCQ_REDIS_URL"], env["DOCQ_REDIS_PASSWORD_FILE"]), ("redis://10.0.0.5:6379", ""))

    def test_networkpolicy_and_servicemonitor_on(self):
        """helm lint passes and every rendered object is valid with NetworkPolicy and
        ServiceMonitor on, and only servers and workers reach Redis"""
        objs = self.lint_and_render(["netpol-servicemonitor"])
        server, worker, _ = self.check_common(objs, external_secrets=["redis-auth"])
        # The bundled Redis takes its password from the operator's Secret: none is generated.
        self.assertEqual(kinds(objs, "Secret"), [])
        redis = find(objs, "StatefulSet", "redis")
        for w in (server, worker):
            assert_redis_password_is_a_mounted_file(self, objs, w, "redis-auth", "pw", "operator's",
                                                    {"redis-auth": {"pw": "operator's"}})
        self.assertEqual(mounted_volume(redis, "/etc/docq/redis")[1]["secret"],
                         {"secretName": "redis-auth", "items": [{"key": "pw", "path": "password"}]})
        labels = {c: find(objs, "Deployment", c)["spec"]["template"]["metadata"]["labels"]
                  for c in ("server", "worker")}
        redis_labels = find(objs, "StatefulSet", "redis")["spec"]["template"]["metadata"]["labels"]
        # Only servers and workers reach Redis, on its port only.
        pol = find(objs, "NetworkPolicy", "redis")
        for k, v in pol["spec"]["podSelector"]["matchLabels"].items():
            self.assertEqual(redis_labels[k], v)
        self.assertEqual(pol["spec"]["policyTypes"], ["Ingress"])
        [rule] = pol["spec"]["ingress"]
        self.assertEqual([p["port"] for p in rule["ports"]], ["redis"])
        admitted = []
        for peer in rule["from"]:
            self.assertEqual(set(peer), {"podSelector"})
            sel = peer["podSelector"]["matchLabels"]
            admitted += [c for c, l in labels.items() if all(l.get(k) == v for k, v in sel.items())]
            self.assertFalse(all(redis_labels.get(k) == v for k, v in sel.items()))
        self.assertEqual(sorted(admitted), ["server", "worker"])
        # Servers: gRPC from the ingress namespace, metrics from monitoring; workers: metrics.
        rules = find(objs, "NetworkPolicy", "server")["spec"]["ingress"]
        self.assertEqual([(r["ports"][0]["port"], r["from"][0]["namespaceSelector"]["matchLabels"][
            "kubernetes.io/metadata.name"]) for r in rules], [("grpc", "ingress"), ("metrics", "monitoring")])
        rules = find(objs, "NetworkPolicy", "worker")["spec"]["ingress"]
        self.assertEqual([r["ports"][0]["port"] for r in rules], ["metrics"])
        # The ServiceMonitor scrapes /metrics on the port named metrics of Services that select
        # the server and the worker pods and resolve to the ports DOCQ_METRICS_LISTEN binds.
        sm = find(objs, "ServiceMonitor")
        self.assertEqual(sm["metadata"]["labels"]["release"], "prometheus")
        self.assertEqual([(e["port"], e["path"]) for e in sm["spec"]["endpoints"]], [("metrics", "/metrics")])
        self.assertEqual(sm["spec"]["namespaceSelector"]["matchNames"], [chart.NAMESPACE])
        scraped = []
        for svc in kinds(objs, "Service"):
            l = svc["metadata"]["labels"]
            if not all(l.get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items()):
                continue
            if not all(l.get(e["key"]) in e["values"] for e in sm["spec"]["selector"]["matchExpressions"]):
                continue
            [port] = [p for p in svc["spec"]["ports"] if p["name"] == "metrics"]
            for c, w in (("server", server), ("worker", worker)):
                if all(labels[c].get(k) == v for k, v in svc["spec"]["selector"].items()):
                    env = chart.container_env(objs, w, {"redis-auth": {"pw": "x"}})
                    self.assertEqual(chart.named_port(w, port["targetPort"]),
                                     listen_port(env["DOCQ_METRICS_LISTEN"]))
                    scraped.append(c)
        self.assertEqual(sorted(scraped), ["server", "worker"])

    def test_api_keys_lag_autoscaling_and_no_redis_volume(self):
        """helm lint passes and every rendered object is valid with API keys, lag-based
        autoscaling and Redis without a volume"""
        objs = self.lint_and_render(["api-keys-lag"])
        server, worker, _ = self.check_common(objs)
        # The keys file comes from a Secret mounted where DOCQ_API_KEYS_FILE points.
        env = chart.container_env(objs, server)
        [mount] = [m for m in container(server)["volumeMounts"] if m["name"] == "api-keys"]
        self.assertTrue(mount["readOnly"])
        [vol] = [v for v in pod_spec(server)["volumes"] if v["name"] == "api-keys"]
        [item] = vol["secret"]["items"]
        self.assertEqual(env["DOCQ_API_KEYS_FILE"], os.path.join(mount["mountPath"], item["path"]))
        keys = chart.secret_data(find(objs, "Secret", "api-keys"))[item["key"]]
        self.assertRegex(keys, r"(?m)^acme\s+2c26b46b")
        self.assertIn("checksum/api-keys", server["spec"]["template"]["metadata"]["annotations"])
        # The password from values, Redis on an emptyDir.
        self.assertEqual(chart.redis_password(objs, server), "s3cret-from-values")
        redis = find(objs, "StatefulSet", "redis")
        self.assertNotIn("volumeClaimTemplates", redis["spec"])
        self.assertEqual(mounted_volume(redis, "/data")[1], {"name": "data", "emptyDir": {}})
        # Lag only: the external metric, averaged over the workers.
        hpa = find(objs, "HorizontalPodAutoscaler", "worker")
        [m] = hpa["spec"]["metrics"]
        self.assertEqual(m["type"], "External")
        self.assertEqual(m["external"]["metric"], {"name": "docq_consumer_group_lag",
                                                   "selector": {"matchLabels": {"namespace": "docq"}}})
        self.assertEqual(m["external"]["target"], {"type": "AverageValue", "averageValue": "50"})
        # Changed settings reach both ConfigMaps.
        wenv = chart.container_env(objs, worker)
        for e in (env, wenv):
            self.assertEqual((e["DOCQ_SHARDS"], e["DOCQ_KEY_PREFIX"], e["DOCQ_LOG_LEVEL"]), ("32", "prod", "debug"))
        self.assertEqual((env["DOCQ_RATE_LIMIT"], env["DOCQ_MAX_CONNECTION_AGE_MS"]), ("0", "1800000"))
        self.assertEqual((wenv["DOCQ_WORKER_CONCURRENCY"], wenv["DOCQ_AI_URL"]),
                         ("256", "https://ai.example.com/v1/process"))
        self.assertEqual(pod_spec(server)["terminationGracePeriodSeconds"], 10 + 10 + 5)
        self.assertEqual(pod_spec(worker)["terminationGracePeriodSeconds"], 600 + 10)


    def test_tls_and_mutual_tls(self):
        """helm lint passes and every rendered object is valid with TLS and mutual TLS from an
        existing Secret and the bounds on inputs changed"""
        objs = self.lint_and_render(["tls-mtls"])
        server, worker, service = self.check_common(objs, external_secrets=["docq-tls"])
        env = chart.container_env(objs, server)
        # The certificate, key and client CA of the operator's kubernetes.io/tls Secret.
        files = chart.mounted_files(objs, server, {"docq-tls": OPERATOR_SECRET})
        self.assertEqual([files[env[k]] for k in ("DOCQ_TLS_CERT", "DOCQ_TLS_KEY", "DOCQ_TLS_CLIENT_CA")],
                         ["certificate", "key", "client CA"])
        self.assertEqual(listen_port(env["DOCQ_PLAINTEXT_LISTEN"]), 8082)
        # The Service carries the TLS port only; the NetworkPolicy opens no rule on the health
        # port (the kubelet probes from the node, which NetworkPolicy always admits).
        self.assertEqual([p["targetPort"] for p in service["spec"]["ports"]], ["grpc"])
        rules = find(objs, "NetworkPolicy", "server")["spec"]["ingress"]
        self.assertEqual(sorted(p["port"] for r in rules for p in r["ports"]), ["grpc", "metrics"])
        # The worker has nothing to do with TLS.
        self.assertFalse([v for v in pod_spec(worker)["volumes"] if v["name"] == "tls"])
        # The bounds on inputs reach the ConfigMaps.
        wenv = chart.container_env(objs, worker)
        self.assertEqual([env[k] for k in ("DOCQ_MAX_MESSAGE_BYTES", "DOCQ_MAX_METADATA_BYTES",
                                           "DOCQ_MAX_CONCURRENT_STREAMS", "DOCQ_MAX_WATCHES_PER_CALLER")],
                         ["131072", "16384", "200", "50"])
        self.assertEqual(wenv["DOCQ_MAX_RESULT_BYTES"], "4194304")
        # A client CA from a Secret of its own.
        objs = chart.render(["tls-mtls"], ["server.tls.clientCA.existingSecret=clients-ca",
                                           "server.tls.clientCA.existingSecretKey=bundle.pem"])
        server = find(objs, "Deployment", "server")
        env = chart.container_env(objs, server)
        files = chart.mounted_files(objs, server, {"docq-tls": OPERATOR_SECRET, "clients-ca": {"bundle.pem": "CAs"}})
        self.assertEqual(files[env["DOCQ_TLS_CLIENT_CA"]], "CAs")
        self.assertEqual(files[env["DOCQ_TLS_CERT"]], "certificate")
        # TLS without client certificates: no client CA, nothing but tls.crt and tls.key needed.
        objs = chart.render(["tls-mtls"], ["server.tls.clientAuth=false"])
        server = find(objs, "Deployment", "server")
        env = chart.container_env(objs, server)
        self.assertEqual(env["DOCQ_TLS_CLIENT_CA"], "")
        files = chart.mounted_files(objs, server, {"docq-tls": {"tls.crt": "c", "tls.key": "k"}})
        self.assertEqual(sorted(p for p in files if p.startswith("/etc/docq/tls/")),
                         ["/etc/docq/tls/tls.crt", "/etc/docq/tls/tls.key"])


class Notes(unittest.TestCase):
    def notes(self, *sets):
        out = chart.helm("install", chart.RELEASE, chart.CHART, "--namespace", chart.NAMESPACE, "--dry-run=client",
                         *chart.value_args(sets=sets))
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout[out.stdout.index("NOTES:"):]

    def test_the_install_notes_name_a_redis_clusters_seeds_and_recommend_waiting_for_a_replica(self):
        """the install notes name an external Redis Cluster's seed nodes and recommend
        server.config.redisMinReplicas 1 while it is 0"""
        cluster = ["redis.bundled.enabled=false", "redis.external.cluster=true",
                   "redis.external.seeds={r0.data.svc:6379,redis://r1.data.svc:7000}"]
        notes = self.notes(*cluster)
        self.assertIn("Redis is an external Redis Cluster, reached through the seed nodes\n"
                      "  redis://r0.data.svc:6379\n  redis://r1.data.svc:7000\n", notes)
        self.assertIn("server.config.redisMinReplicas is 0", notes)
        self.assertIn("set it to 1", notes)
        self.assertNotIn("bundled", notes)
        notes = self.notes(*cluster + ["server.config.redisMinReplicas=1"])
        self.assertIn("Redis is an external Redis Cluster", notes)
        self.assertNotIn("redisMinReplicas", notes)

    def test_the_install_notes_show_grpcurl_commands_for_the_service(self):
        """the install notes show the grpcurl commands that reach the service"""
        notes = self.notes()
        self.assertIn("docq-server.%s.svc:50051" % chart.NAMESPACE, notes)
        self.assertIn("kubectl -n %s port-forward svc/docq-server 50051:50051" % chart.NAMESPACE, notes)
        for line in ("grpcurl -plaintext localhost:50051 grpc.health.v1.Health/Check",
                     "grpcurl -plaintext localhost:50051 list",
                     "grpcurl -plaintext localhost:50051 describe docq.v1.DocQueue",
                     "grpcurl -plaintext -d '{\"doc_id\":\"doc_1\"}' localhost:50051 docq.v1.DocQueue/SubmitDoc",
                     "grpcurl -plaintext -d '{\"task_id\":\"TASK_ID\"}' localhost:50051 docq.v1.DocQueue/GetStatus"):
            self.assertIn(line, notes)
        self.assertIn("worker.config.aiUrl is still the default", notes)
        self.assertIn("Redis is the bundled one: a single pod (docq-redis), no replica, not a Redis\nCluster", notes)
        # With API keys every call but the health check carries one; a set AI URL is not warned of.
        notes = self.notes("server.apiKeys.enabled=true", "server.apiKeys.keys=k", "server.service.port=443",
                           "worker.config.aiUrl=http://ai:80/x")
        self.assertIn("grpcurl -plaintext -H \"authorization: Bearer $DOCQ_API_KEY\" localhost:443 list", notes)
        self.assertIn("grpcurl -plaintext localhost:443 grpc.health.v1.Health/Check", notes)
        self.assertNotIn("aiUrl", notes)
        # With mutual TLS, grpcurl and docq check the Service's name and present a certificate.
        notes = self.notes("server.tls.enabled=true", "server.tls.existingSecret=docq-tls", "server.tls.clientAuth=true")
        tls = "-cacert ca.crt -servername docq-server.%s.svc -cert client.crt -key client.key" % chart.NAMESPACE
        self.assertIn("grpcurl %s localhost:50051 list" % tls, notes)
        self.assertIn("grpcurl %s localhost:50051 grpc.health.v1.Health/Check" % tls, notes)
        self.assertIn("docq --server localhost:50051 --cacert ca.crt --tls-server-name docq-server.%s.svc "
                      "--cert client.crt --key client.key submit --wait doc_1" % chart.NAMESPACE, notes)
        self.assertNotIn("-plaintext", notes)
        self.assertIn("plaintext port 8081", notes)


class RedisPassword(unittest.TestCase):
    def password(self, objs):
        return chart.secret_data(find(objs, "Secret", "redis"))["redis-password"]

    def test_the_generated_redis_password_is_kept_across_upgrades(self):
        """the bundled Redis's generated password is kept across upgrades (helm lookup) and new
        on a first install"""
        # A cluster where the release is installed: helm template --dry-run=server runs the
        # chart's lookup against it, as helm upgrade does.
        name = "%s-redis" % chart.RELEASE
        secret = fakekube.helm_owned({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": chart.NAMESPACE},
            "data": {"redis-password": base64.b64encode(b"Password0fTheFirstInstall").decode()}},
            chart.RELEASE, chart.NAMESPACE)
        with fakekube.FakeKube({(chart.NAMESPACE, name): secret}) as kube:
            objs = chart.render(kubeconfig=kube.kubeconfig)
            self.assertIn("GET /api/v1/namespaces/%s/secrets/%s" % (chart.NAMESPACE, name), kube.requests)
        self.assertEqual(self.password(objs), "Password0fTheFirstInstall")
        for component in ("server", "worker"):
            self.assertEqual(chart.redis_password(objs, find(objs, "Deployment", component)),
                             "Password0fTheFirstInstall")
        # A first install (no Secret yet) gets a new random password each time.
        with fakekube.FakeKube() as kube:
            first = self.password(chart.render(kubeconfig=kube.kubeconfig))
            second = self.password(chart.render(kubeconfig=kube.kubeconfig))
        self.assertRegex(first, r"^[A-Za-z0-9]{32}$")
        self.assertNotEqual(first, second)
        # A password given in values wins over the one in the cluster.
        with fakekube.FakeKube({(chart.NAMESPACE, name): secret}) as kube:
            objs = chart.render(sets=["redis.bundled.password=fromvalues"], kubeconfig=kube.kubeconfig)
        self.assertEqual(self.password(objs), "fromvalues")


class Schema(unittest.TestCase):
    def assert_refused(self, values=(), sets=(), says="", lint=True):
        runs = [("helm lint", chart.lint)] if lint else []
        for what, run in runs + [("helm template", chart.template)]:
            out = run(values, sets)
            self.assertNotEqual(out.returncode, 0, "%s accepted %s %s" % (what, values, sets))
            self.assertIn(says, out.stdout + out.stderr, what)

    def test_a_negative_replica_count_is_refused(self):
        """the values schema refuses a negative replica count"""
        self.assert_refused(["bad-negative-replicas"], says="/server/replicas")
        self.assert_refused(sets=["worker.autoscaling.minReplicas=-2"], says="/worker/autoscaling/minReplicas")

    def test_an_unknown_key_is_refused(self):
        """the values schema refuses an unknown key"""
        self.assert_refused(["bad-unknown-key"], says="'replica' not allowed")
        self.assert_refused(sets=["server.config.rateLimt=3"], says="'rateLimt' not allowed")
        self.assert_refused(sets=["extra=1"], says="'extra' not allowed")

    def test_settings_outside_what_the_binaries_accept_are_refused(self):
        """the values schema refuses settings the binaries would refuse"""
        for s, says in (("config.shards=0", "/config/shards"),
                        ("config.shards=1025", "/config/shards"),
                        ("config.logLevel=verbose", "/config/logLevel"),
                        ("config.keyPrefix=a:b", "/config/keyPrefix"),
                        ("server.port=70000", "/server/port"),
                        ("server.config.threads=two", "/server/config/threads"),
                        ("worker.config.aiUrl=ftp://ai", "/worker/config/aiUrl"),
                        ("worker.config.workerConcurrency=0", "/worker/config/workerConcurrency"),
                        ("redis.external.url=redis://:pw@host:6379", "/redis/external/url"),
                        ("redis.external.url=redis://a:6379\\,redis://b:6379", "/redis/external/url"),
                        ("redis.external.cluster=yes", "/redis/external/cluster"),
                        ("redis.bundled.appendfsync=sometimes", "/redis/bundled/appendfsync"),
                        ("server.config.maxMessageBytes=1023", "/server/config/maxMessageBytes"),
                        ("server.config.maxMessageBytes=67108865", "/server/config/maxMessageBytes"),
                        ("server.config.maxMetadataBytes=1048577", "/server/config/maxMetadataBytes"),
                        ("server.config.maxConcurrentStreams=0", "/server/config/maxConcurrentStreams"),
                        ("server.config.maxWatchesPerCaller=-1", "/server/config/maxWatchesPerCaller"),
                        ("server.config.maxWatchesPerCaller=100000001", "/server/config/maxWatchesPerCaller"),
                        ("server.config.watchResultBytes=65535", "/server/config/watchResultBytes"),
                        ("worker.config.maxResultBytes=0", "/worker/config/maxResultBytes"),
                        ("worker.config.maxResultBytes=268435457", "/worker/config/maxResultBytes"),
                        ("server.healthPort=0", "/server/healthPort"),
                        ("server.tls.enabled=yes", "/server/tls/enabled"),
                        ("server.tls.clientCert=x", "'clientCert' not allowed")):
            with self.subTest(s):
                self.assert_refused(sets=[s], says=says)

    def test_a_redis_cluster_seed_that_is_not_a_password_free_node_address_is_refused(self):
        """the values schema refuses Redis Cluster seeds that are not a list of host:port or
        redis:// addresses without a password"""
        external = ["redis.bundled.enabled=false", "redis.external.cluster=true"]
        for s, says in (("redis.external.seeds=redis-0:6379", "at '/redis/external/seeds': got string, want array"),
                        ("redis.external.seeds[0]=6379", "at '/redis/external/seeds/0': got number, want string"),
                        ("redis.external.seeds[0].host=redis-0", "at '/redis/external/seeds/0': got object, want string"),
                        ("redis.external.seeds[0]=redis://:pw@redis-0:6379", "/redis/external/seeds/0"),
                        ("redis.external.seeds[0]=redis-0:6379/2", "/redis/external/seeds/0"),
                        ("redis.external.seeds[0]=redis-0:6379\\,redis-1:6379", "/redis/external/seeds/0"),
                        ("redis.external.seeds={a:6379,a:6379}", "/redis/external/seeds")):
            with self.subTest(s):
                self.assert_refused(sets=external + [s], says=says)

    def test_combinations_the_schema_cannot_express_fail_the_install_with_a_message(self):
        """value combinations the schema cannot express fail the install with a message"""
        # The templates' fail: helm install and helm template stop (helm lint lets fail pass).
        for s, says in ((["worker.config.heartbeatMs=10001"], "heartbeatMs must be at most a third of worker.config.visibilityTimeoutMs"),
                        (["redis.bundled.enabled=false"], "redis.external.url is required"),
                        (["redis.external.url=redis://r:6379"], "turn the bundled Redis off"),
                        # The bundled Redis is one node: no cluster settings with it.
                        (["redis.external.cluster=true"], "the bundled Redis is a single node, not a Redis Cluster"),
                        (["redis.external.cluster=true", "redis.external.seeds={r0:6379,r1:6379}"],
                         "the bundled Redis is a single node, not a Redis Cluster"),
                        (["redis.bundled.enabled=false", "redis.external.cluster=true"], "redis.external.url is required"),
                        (["redis.bundled.enabled=false", "redis.external.seeds={r0:6379}"],
                         "set redis.external.cluster=true"),
                        (["redis.bundled.enabled=false", "redis.external.cluster=true", "redis.external.url=redis://r:6379",
                          "redis.external.seeds={r0:6379}"], "redis.external.url and redis.external.seeds are both set"),
                        (["redis.bundled.enabled=false", "redis.external.cluster=true", "redis.external.url=redis://r:6379/2"],
                         "a database other than 0"),
                        (["server.apiKeys.enabled=true"], "server.apiKeys.existingSecret or server.apiKeys.keys"),
                        (["worker.autoscaling.targetCPUUtilizationPercentage=0"], "targetCPUUtilizationPercentage or lag.enabled"),
                        (["worker.autoscaling.minReplicas=5", "worker.autoscaling.maxReplicas=3"], "minReplicas is above maxReplicas"),
                        (["server.tls.enabled=true"], "server.tls.enabled needs server.tls.existingSecret"),
                        (["server.tls.clientAuth=true"], "server.tls.clientAuth (mutual TLS) needs server.tls.enabled"),
                        (["server.tls.enabled=true", "server.tls.existingSecret=t", "server.tls.clientCA.existingSecret=ca"],
                         "server.tls.clientAuth is false"),
                        (["server.tls.enabled=true", "server.tls.existingSecret=t", "server.healthPort=50051"],
                         "server.healthPort must differ"),
                        (["server.tls.enabled=true", "server.tls.existingSecret=t", "server.healthPort=9090"],
                         "server.healthPort must differ")):
            with self.subTest(s):
                self.assert_refused(sets=s, says=says, lint=False)


class Manifests(unittest.TestCase):
    """The default rendering against what the binaries serve and read."""

    @classmethod
    def setUpClass(cls):
        cls.objs = chart.render()
        cls.server = find(cls.objs, "Deployment", "server")
        cls.worker = find(cls.objs, "Deployment", "worker")

    def test_probes_and_ports_name_the_ports_the_binaries_listen_on(self):
        """the rendered probes and ports name the ports the server and worker listen on"""
        env = chart.container_env(self.objs, self.server)
        grpc = listen_port(env["DOCQ_LISTEN"])
        for probe in ("readinessProbe", "livenessProbe"):
            self.assertIn("grpc", container(self.server)[probe])
            self.assertEqual(probe_port(self.server, probe), grpc, probe)
        self.assertEqual(chart.named_port(self.server, "grpc"), grpc)
        self.assertEqual(chart.named_port(self.server, "metrics"), listen_port(env["DOCQ_METRICS_LISTEN"]))
        svc = find(self.objs, "Service", "server")
        self.assertEqual(chart.named_port(self.server, svc["spec"]["ports"][0]["targetPort"]), grpc)
        wenv = chart.container_env(self.objs, self.worker)
        metrics = listen_port(wenv["DOCQ_METRICS_LISTEN"])
        self.assertEqual(chart.named_port(self.worker, "metrics"), metrics)
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            self.assertEqual(container(self.worker)[probe]["httpGet"]["path"], path)
            self.assertEqual(probe_port(self.worker, probe), metrics, probe)
        for w, e in ((self.server, env), (self.worker, wenv)):
            ann = w["spec"]["template"]["metadata"]["annotations"]
            self.assertEqual(int(ann["prometheus.io/port"]), listen_port(e["DOCQ_METRICS_LISTEN"]))

    def test_with_tls_the_probes_target_the_plaintext_port_and_the_tls_files_are_mounted(self):
        """with TLS on, the server's probes target the plaintext health port and the TLS files
        are mounted read-only from the Secret"""
        objs = chart.render(["tls-mtls"])
        server = find(objs, "Deployment", "server")
        env = chart.container_env(objs, server)
        grpc, health = listen_port(env["DOCQ_LISTEN"]), listen_port(env["DOCQ_PLAINTEXT_LISTEN"])
        self.assertNotEqual(grpc, health)
        self.assertEqual(chart.named_port(server, "grpc"), grpc)
        self.assertEqual(chart.named_port(server, "health"), health)
        # The kubelet's gRPC probes do not do TLS: both go to the plaintext health port.
        for probe in ("readinessProbe", "livenessProbe"):
            self.assertIn("grpc", container(server)[probe])
            self.assertEqual(probe_port(server, probe), health, probe)
        # The Service sends clients to the TLS port only.
        svc = find(objs, "Service", "server")
        self.assertEqual([chart.named_port(server, p["targetPort"]) for p in svc["spec"]["ports"]], [grpc])
        # DOCQ_TLS_* name files of one read-only mount, projected from the operator's Secret.
        mount, vol = mounted_volume(server, os.path.dirname(env["DOCQ_TLS_CERT"]))
        self.assertTrue(mount["readOnly"])
        for setting in ("DOCQ_TLS_KEY", "DOCQ_TLS_CLIENT_CA"):
            self.assertEqual(os.path.dirname(env[setting]), mount["mountPath"], setting)
        sources = [(src["secret"]["name"], it["key"], os.path.join(mount["mountPath"], it["path"]))
                   for src in vol["projected"]["sources"] for it in src["secret"]["items"]]
        self.assertEqual(sources, [("docq-tls", "tls.crt", env["DOCQ_TLS_CERT"]),
                                   ("docq-tls", "tls.key", env["DOCQ_TLS_KEY"]),
                                   ("docq-tls", "ca.crt", env["DOCQ_TLS_CLIENT_CA"])])
        # Without TLS there is no health port, no TLS file, and the probes use the gRPC port
        # (test_probes_and_ports_name_the_ports_the_binaries_listen_on).
        env = chart.container_env(self.objs, self.server)
        self.assertEqual([env[k] for k in ("DOCQ_TLS_CERT", "DOCQ_TLS_KEY", "DOCQ_TLS_CLIENT_CA",
                                           "DOCQ_PLAINTEXT_LISTEN")], ["", "", "", ""])
        self.assertEqual([p["name"] for p in container(self.server)["ports"]], ["grpc", "metrics"])

    def test_termination_grace_covers_the_prestop_delay_and_the_shutdown_grace(self):
        """terminationGracePeriodSeconds covers the preStop delay and DOCQ_SHUTDOWN_GRACE_MS"""
        env = chart.container_env(self.objs, self.server)
        pre = container(self.server)["lifecycle"]["preStop"]["exec"]["command"]
        self.assertEqual(pre[0], "sleep")
        grace_s = -(-(int(env["DOCQ_SHUTDOWN_GRACE_MS"]) + int(env["DOCQ_SHUTDOWN_DELAY_MS"])) // 1000)
        self.assertGreater(pod_spec(self.server)["terminationGracePeriodSeconds"], int(pre[1]) + grace_s)
        wenv = chart.container_env(self.objs, self.worker)
        wgrace_s = -(-int(wenv["DOCQ_SHUTDOWN_GRACE_MS"]) // 1000)
        self.assertGreater(pod_spec(self.worker)["terminationGracePeriodSeconds"], wgrace_s)
        # A grace that is not a whole number of seconds is rounded up, never down.
        objs = chart.render(sets=["server.config.shutdownGraceMs=2500", "server.preStopDelaySeconds=0",
                                  "server.terminationGraceMarginSeconds=0",
                                  "worker.config.shutdownGraceMs=1", "worker.terminationGraceMarginSeconds=0"])
        self.assertEqual(pod_spec(find(objs, "Deployment", "server"))["terminationGracePeriodSeconds"], 3)
        self.assertNotIn("lifecycle", container(find(objs, "Deployment", "server")))
        self.assertEqual(pod_spec(find(objs, "Deployment", "worker"))["terminationGracePeriodSeconds"], 1)

    def test_every_container_runs_locked_down(self):
        """every container runs as non-root, read-only, unprivileged, without capabilities, under
        RuntimeDefault seccomp"""
        for w in [self.server, self.worker, find(self.objs, "StatefulSet", "redis")]:
            spec = pod_spec(w)
            self.assertFalse(spec["automountServiceAccountToken"])
            self.assertTrue(spec["securityContext"]["runAsNonRoot"])
            self.assertNotEqual(spec["securityContext"]["runAsUser"], 0)
            self.assertEqual(spec["securityContext"]["seccompProfile"], {"type": "RuntimeDefault"})
            for c in spec["containers"]:
                sc = c["securityContext"]
                self.assertTrue(sc["runAsNonRoot"])
                self.assertTrue(sc["readOnlyRootFilesystem"])
                self.assertFalse(sc["allowPrivilegeEscalation"])
                self.assertEqual(sc["capabilities"], {"drop": ["ALL"]})
                self.assertEqual(sc["seccompProfile"], {"type": "RuntimeDefault"})
                self.assertIn("requests", c["resources"])
                self.assertIn("memory", c["resources"]["limits"])

    def test_the_configmaps_set_every_setting_the_binaries_read_with_their_defaults(self):
        """the ConfigMaps set every setting the server and worker read, with the binaries'
        defaults"""
        # Settings the chart derives instead of copying a default: addresses from the ports,
        # the Redis URL and password file from the Redis values, the keys file from apiKeys,
        # the TLS files and the plaintext health address from server.tls.
        derived = {"DOCQ_LISTEN", "DOCQ_METRICS_LISTEN", "DOCQ_REDIS_URL", "DOCQ_REDIS_PASSWORD_FILE",
                   "DOCQ_API_KEYS_FILE", "DOCQ_TLS_CERT", "DOCQ_TLS_KEY", "DOCQ_TLS_CLIENT_CA",
                   "DOCQ_PLAINTEXT_LISTEN"}
        truth = {"1": "1", "true": "1", "yes": "1", "on": "1", "0": "0", "false": "0", "no": "0", "off": "0"}
        for binary, w, component in (("docq-server", self.server, "server"), ("docq-worker", self.worker, "worker")):
            cm = find(self.objs, "ConfigMap", component)["data"]
            env = chart.container_env(self.objs, w)
            for setting, default in chart.binary_settings(binary).items():
                with self.subTest(binary=binary, setting=setting):
                    self.assertIn(setting, env, "%s reads %s but the chart does not set it" % (binary, setting))
                    self.assertIn(setting, cm)
                    if setting == "DOCQ_REDIS_URL":
                        self.assertNotIn("@", cm[setting], "the password is a file, never in the URL")
                    if setting not in derived:
                        self.assertEqual(truth.get(cm[setting], cm[setting]), truth.get(default, default))
            for setting in cm:
                self.assertTrue(setting.startswith("DOCQ_"), setting)


class Binaries(unittest.TestCase):
    def test_the_binaries_accept_the_environment_of_every_value_set(self):
        """the server and worker accept the environment rendered from every value set"""
        # A value a binary refuses makes it exit 2 at once, naming the setting; one that it
        # accepts leaves it running (waiting for a Redis that is not there). The server of the
        # TLS set reads real certificates (a bad one would stop it too).
        sys.path.insert(0, os.path.join(chart.HERE, "..", "integration"))
        from certs import Pki
        with tempfile.TemporaryDirectory() as pki_dir:
            pki = Pki(pki_dir)
            tls = {"tls.crt": Pki.read(pki.server.cert).decode(), "tls.key": Pki.read(pki.server.key).decode(),
                   "ca.crt": Pki.read(pki.ca_cert).decode()}
        secrets = {"docq-redis-credentials": {"password": "pw"}, "redis-auth": {"pw": "pw"}, "docq-tls": tls,
                   "docq-redis-cluster": {"password": "pw"}}
        for values in ([], ["external-redis"], ["no-bundled-redis-no-hpa"], ["netpol-servicemonitor"],
                       ["api-keys-lag"], ["tls-mtls"], ["external-cluster"]):
            objs = chart.render(values)
            for component in ("server", "worker"):
                w = find(objs, "Deployment", component)
                with self.subTest(values=values, component=component), tempfile.TemporaryDirectory() as root:
                    env = chart.local_env(objs, w, root, collections.defaultdict(int), redis_port=1,
                                          external_secrets=secrets)
                    p = subprocess.Popen([os.path.join(chart.BIN_DIR, container(w)["command"][0])], env=env,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                    running = False
                    try:
                        out, _ = p.communicate(timeout=1.5)
                    except subprocess.TimeoutExpired:
                        running = True
                        p.terminate()
                        out, _ = p.communicate(timeout=30)
                    self.assertNotIn("invalid DOCQ_", out)
                    self.assertTrue(running, "exited %d:\n%s" % (p.returncode, out))


if __name__ == "__main__":
    unittest.main()
