"""A stand-in Kubernetes API server, just enough for `helm template --dry-run=server` to run the
chart's lookup calls against a cluster that holds given Secrets: discovery (/version, /api,
/apis and each group version the chart uses) and GET of single objects (the Secrets given, 404
for anything else). Writes are refused: nothing is ever installed.

    with FakeKube({("jobs", "docq-redis"): secret}) as kube:
        helm(..., kubeconfig=kube.kubeconfig)
"""
import http.server
import json
import os
import re
import tempfile
import threading

# The kinds the chart renders, by group version (helm maps each rendered object to a resource).
GROUPS = {
    "v1": [("Secret", "secrets"), ("ConfigMap", "configmaps"), ("Service", "services"),
           ("ServiceAccount", "serviceaccounts")],
    "apps/v1": [("Deployment", "deployments"), ("StatefulSet", "statefulsets")],
    "policy/v1": [("PodDisruptionBudget", "poddisruptionbudgets")],
    "autoscaling/v2": [("HorizontalPodAutoscaler", "horizontalpodautoscalers")],
    "networking.k8s.io/v1": [("NetworkPolicy", "networkpolicies")],
    "monitoring.coreos.com/v1": [("ServiceMonitor", "servicemonitors")],
}


def helm_owned(obj, release, namespace):
    """obj with the labels and annotations helm puts on what it installs (helm refuses to
    adopt an object that lacks them)."""
    md = obj.setdefault("metadata", {})
    md.setdefault("labels", {})["app.kubernetes.io/managed-by"] = "Helm"
    md.setdefault("annotations", {}).update({"meta.helm.sh/release-name": release,
                                             "meta.helm.sh/release-namespace": namespace})
    return obj


class FakeKube:
    def __init__(self, secrets=None):
        """secrets: {(namespace, name): Secret object} the cluster holds."""
        self.secrets = dict(secrets or {})
        self.requests = []
        self.dir = tempfile.mkdtemp(prefix="docq-fakekube-")
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")

    def _answer(self, path):
        if path == "/version":
            return {"major": "1", "minor": "30", "gitVersion": "v1.30.0", "platform": "linux/amd64"}
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
        if path == "/apis":
            groups = []
            for gv in GROUPS:
                if "/" in gv:
                    g, v = gv.split("/")
                    ver = {"groupVersion": gv, "version": v}
                    groups.append({"name": g, "versions": [ver], "preferredVersion": ver})
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        gv = "v1" if path == "/api/v1" else path[len("/apis/"):] if path.startswith("/apis/") else None
        if gv in GROUPS:
            return {"kind": "APIResourceList", "groupVersion": gv, "resources": [
                {"name": plural, "singularName": kind.lower(), "namespaced": True, "kind": kind,
                 "verbs": ["get", "list"]} for kind, plural in GROUPS[gv]]}
        m = re.match(r"^/api/v1/namespaces/([^/]+)/secrets/([^/]+)$", path)
        if m and (m.group(1), m.group(2)) in self.secrets:
            return self.secrets[(m.group(1), m.group(2))]
        return None

    def __enter__(self):
        kube = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.split("?")[0]
                kube.requests.append("GET " + path)
                body = kube._answer(path)
                code = 200 if body is not None else 404
                if body is None:
                    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                            "code": 404}
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def refuse(self):
                kube.requests.append("%s %s" % (self.command, self.path))
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT = do_PATCH = do_DELETE = refuse

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        with open(self.kubeconfig, "w") as f:
            json.dump({
                "apiVersion": "v1", "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": "http://127.0.0.1:%d" % self.httpd.server_port}}],
                "users": [{"name": "fake", "user": {"token": "fake"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                "current-context": "fake",
            }, f)
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)
