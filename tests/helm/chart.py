"""helm/docq as the tests see it: helm lint and helm template through the helm that
tests/helm/setup fetched, every rendered object checked against its Kubernetes schema
(node/k8s-objects.js, kubernetes-models) and returned as plain dicts, and the environment a
container of a rendered Deployment gets, resolved the way the kubelet resolves it.

helm keeps its cache and configuration in a temporary directory of this process, never in
the user's home.
"""
import atexit
import base64
import json
import os
import re
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CHART = os.path.join(ROOT, "helm", "docq")
VALUES = os.path.join(HERE, "values")
NODE_DIR = os.environ.get("DOCQ_HELM_NODE", os.path.join(HERE, "node"))
HELM = os.path.join(NODE_DIR, "bin", "helm")
BIN_DIR = os.environ.get("DOCQ_BIN_DIR", os.path.join(ROOT, "build", "bin"))

RELEASE = "docq"
NAMESPACE = "jobs"

_home = tempfile.mkdtemp(prefix="docq-helm-")
atexit.register(shutil.rmtree, _home, True)


def values_file(name):
    """The path of a value set in tests/helm/values ("external-redis" or a file name)."""
    return os.path.join(VALUES, name if name.endswith(".yaml") else name + ".yaml")


def helm(*args, kubeconfig=None):
    """Run helm; returns the CompletedProcess (text). Without kubeconfig, helm knows no
    cluster."""
    env = dict(os.environ)
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[var] = os.path.join(_home, var.lower())
    env["KUBECONFIG"] = kubeconfig or os.path.join(_home, "no-kubeconfig")
    return subprocess.run([HELM] + list(args), capture_output=True, text=True, env=env, timeout=120)


def value_args(values=(), sets=()):
    args = []
    for v in values:
        args += ["-f", values_file(v)]
    for s in sets:
        args += ["--set", s]
    return args


def lint(values=(), sets=()):
    """helm lint --strict of the chart; returns the CompletedProcess."""
    return helm("lint", "--strict", CHART, "--namespace", NAMESPACE, *value_args(values, sets))


def template(values=(), sets=(), kubeconfig=None):
    """helm template of the chart; returns the CompletedProcess. With kubeconfig, against that
    cluster (--dry-run=server: lookup reads it)."""
    cluster = ["--dry-run=server", "--disable-openapi-validation"] if kubeconfig else []
    return helm("template", RELEASE, CHART, "--namespace", NAMESPACE, *(value_args(values, sets) + cluster),
                kubeconfig=kubeconfig)


def render(values=(), sets=(), kubeconfig=None):
    """The objects helm template renders, each checked against its Kubernetes schema. Raises
    AssertionError naming what failed."""
    t = template(values, sets, kubeconfig)
    if t.returncode != 0:
        raise AssertionError("helm template failed:\n" + t.stderr)
    v = subprocess.run(["node", os.path.join(NODE_DIR, "k8s-objects.js")], input=t.stdout,
                       capture_output=True, text=True, timeout=120)
    if v.returncode != 0:
        raise AssertionError("rendered objects fail their Kubernetes schemas:\n" + v.stderr)
    return json.loads(v.stdout)


def find(objs, kind, name=None):
    """The one object of a kind (and name, without the release's "docq-" prefix)."""
    full = None if name is None else "%s-%s" % (RELEASE, name)
    found = [o for o in objs if o["kind"] == kind and (full is None or o["metadata"]["name"] == full)]
    if len(found) != 1:
        raise AssertionError("expected one %s %s, found %d: %s" % (
            kind, full or "", len(found), [o["metadata"]["name"] for o in objs if o["kind"] == kind]))
    return found[0]


def kinds(objs, kind):
    return [o for o in objs if o["kind"] == kind]


def pod_spec(workload):
    return workload["spec"]["template"]["spec"]


def container(workload, name=None):
    cs = pod_spec(workload)["containers"]
    return cs[0] if name is None else next(c for c in cs if c["name"] == name)


def secret_data(secret):
    """A rendered Secret's data as text (data is base64, stringData plain)."""
    out = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    out.update(secret.get("stringData") or {})
    return out


def _expand(value, env):
    """Kubernetes' $(VAR) expansion: a defined variable is replaced, $$ is a literal $, any
    other reference stays as written."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", sub, value)


def container_env(objs, workload, external_secrets=None):
    """The environment the kubelet gives the workload's first container: envFrom ConfigMaps and
    Secrets first, then env in order, with $(VAR) expanded and secretKeyRef / configMapKeyRef
    resolved from the rendered objects (or from external_secrets {name: {key: value}} for
    Secrets the chart expects to exist)."""
    c = container(workload)
    external_secrets = external_secrets or {}

    def source(kind, name):
        try:
            return _secret_or_configmap(objs, kind, name, external_secrets)
        except AssertionError as e:
            raise AssertionError("%s, referenced by %s" % (e, workload["metadata"]["name"]))

    env = {}
    for ef in c.get("envFrom") or []:
        if "configMapRef" in ef:
            env.update(source("ConfigMap", ef["configMapRef"]["name"]))
        elif "secretRef" in ef:
            env.update(source("Secret", ef["secretRef"]["name"]))
    for e in c.get("env") or []:
        if "value" in e:
            env[e["name"]] = _expand(e["value"], env)
        elif "valueFrom" in e:
            vf = e["valueFrom"]
            ref = vf.get("secretKeyRef") or vf.get("configMapKeyRef")
            kind = "Secret" if "secretKeyRef" in vf else "ConfigMap"
            data = source(kind, ref["name"])
            if ref["key"] not in data:
                raise AssertionError("%s %s has no key %s" % (kind, ref["name"], ref["key"]))
            env[e["name"]] = data[ref["key"]]
        else:
            env[e["name"]] = ""
    return env


def named_port(workload, port):
    """A probe's or Service's port (a number or a container port's name) as a number."""
    if isinstance(port, int):
        return port
    for p in container(workload).get("ports") or []:
        if p.get("name") == port:
            return p["containerPort"]
    raise AssertionError("no container port named %r in %s" % (port, workload["metadata"]["name"]))


def binary_settings(binary):
    """{DOCQ_* setting: default text} that `binary --help` lists ("unset" becomes "")."""
    out = subprocess.run([os.path.join(BIN_DIR, binary), "--help"], capture_output=True, text=True,
                         timeout=30)
    text = out.stdout + out.stderr
    settings = {}
    for m in re.finditer(r"^\s+--\S+\s+(DOCQ_[A-Z0-9_]+)\n\s+.*\(default (.*)\)$", text, re.M):
        settings[m.group(1)] = "" if m.group(2) == "unset" else m.group(2)
    if not settings:
        raise AssertionError("%s --help lists no settings:\n%s" % (binary, text))
    return settings


def _secret_or_configmap(objs, kind, name, external_secrets):
    if kind == "Secret" and name in external_secrets:
        return external_secrets[name]
    obj = next((o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name), None)
    if obj is None:
        raise AssertionError("%s %s is not rendered" % (kind, name))
    return secret_data(obj) if kind == "Secret" else obj.get("data") or {}


def _volume_files(objs, volume, external_secrets):
    """{relative path: content} of the files the kubelet writes for a volume of a pod: a Secret,
    a ConfigMap or a projected volume of them (items or every key); {} for other kinds."""
    def source(kind, spec, name):
        data = _secret_or_configmap(objs, kind, name, external_secrets if kind == "Secret" else {})
        items = spec.get("items") or [{"key": k, "path": k} for k in data]
        for it in items:
            if it["key"] not in data:
                raise AssertionError("%s %s has no key %s" % (kind, name, it["key"]))
        return {it["path"]: data[it["key"]] for it in items}

    if "secret" in volume:
        return source("Secret", volume["secret"], volume["secret"]["secretName"])
    if "configMap" in volume:
        return source("ConfigMap", volume["configMap"], volume["configMap"]["name"])
    files = {}
    for src in (volume.get("projected") or {}).get("sources") or []:
        if "secret" in src:
            files.update(source("Secret", src["secret"], src["secret"]["name"]))
        elif "configMap" in src:
            files.update(source("ConfigMap", src["configMap"], src["configMap"]["name"]))
    return files


def mounted_files(objs, workload, external_secrets=None):
    """{path in the container: content} of every file that the workload's first container's
    volume mounts hold (Secrets and ConfigMaps resolved as in container_env)."""
    external_secrets = external_secrets or {}
    volumes = {v["name"]: v for v in pod_spec(workload).get("volumes") or []}
    # A StatefulSet's claims are volumes too (empty ones, as far as files go).
    for t in workload["spec"].get("volumeClaimTemplates") or []:
        volumes[t["metadata"]["name"]] = {"name": t["metadata"]["name"], "persistentVolumeClaim": {}}
    files = {}
    for m in container(workload).get("volumeMounts") or []:
        if m["name"] not in volumes:
            raise AssertionError("%s mounts %s, which is no volume of its pod" % (
                workload["metadata"]["name"], m["name"]))
        for rel, data in _volume_files(objs, volumes[m["name"]], external_secrets).items():
            files[m["mountPath"].rstrip("/") + "/" + rel] = data
    return files


def local_env(objs, workload, root, ports, redis_port, ai_base=None, external_secrets=None):
    """The workload's environment (container_env) made to run on this machine, changing only
    what must change: the listen addresses' ports (ports maps each rendered port to a local
    one; the host becomes 127.0.0.1), the Redis host and port (to 127.0.0.1:redis_port; the
    db stays), the AI service's scheme, host and port (to ai_base, e.g.
    "http://127.0.0.1:PORT"; the path stays), and the paths of mounted volumes, whose files
    (Secret and ConfigMap items, projected or not) are written under root as the kubelet
    writes them."""
    external_secrets = external_secrets or {}
    env = container_env(objs, workload, external_secrets)
    for m in container(workload).get("volumeMounts") or []:
        os.makedirs(os.path.join(root, m["mountPath"].lstrip("/")), exist_ok=True)
    for path, data in mounted_files(objs, workload, external_secrets).items():
        with open(os.path.join(root, path.lstrip("/")), "w") as f:
            f.write(data)
    for m in container(workload).get("volumeMounts") or []:
        local = os.path.join(root, m["mountPath"].lstrip("/"))
        for k, v in env.items():
            if v == m["mountPath"] or v.startswith(m["mountPath"].rstrip("/") + "/"):
                env[k] = local + v[len(m["mountPath"].rstrip("/")):]
    for k in ("DOCQ_LISTEN", "DOCQ_METRICS_LISTEN", "DOCQ_PLAINTEXT_LISTEN"):
        if env.get(k):
            port = int(env[k].rsplit(":", 1)[1])
            env[k] = "127.0.0.1:%d" % ports[port]
    local_urls = []
    for url in env["DOCQ_REDIS_URL"].split(","):  # A cluster's seeds: each made local.
        m = re.match(r"^redis://(?:(:[^@]*)@)?[^/]+(/\d+)?$", url)
        if not m:
            raise AssertionError("not a redis:// URL: %s" % env["DOCQ_REDIS_URL"])
        local_urls.append("redis://%s127.0.0.1:%d%s" % (
            m.group(1) + "@" if m.group(1) is not None else "", redis_port, m.group(2) or ""))
    env["DOCQ_REDIS_URL"] = ",".join(local_urls)
    if ai_base and "DOCQ_AI_URL" in env:
        env["DOCQ_AI_URL"] = re.sub(r"^https?://[^/]+", ai_base, env["DOCQ_AI_URL"])
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    env["LANG"] = "C.UTF-8"
    return env


def redis_password(objs, workload, external_secrets=None):
    """The Redis password the workload's docq binary uses: the file DOCQ_REDIS_PASSWORD_FILE
    names, read from the volume mounted there as docq reads it (one trailing newline
    dropped), or the password in DOCQ_REDIS_URL; None without one."""
    env = container_env(objs, workload, external_secrets)
    path = env.get("DOCQ_REDIS_PASSWORD_FILE")
    if path:
        files = mounted_files(objs, workload, external_secrets)
        if path not in files:
            raise AssertionError("DOCQ_REDIS_PASSWORD_FILE %s is in no volume of %s" % (
                path, workload["metadata"]["name"]))
        return re.sub(r"\r?\n\Z", "", files[path])
    m = re.match(r"^redis://:([^@]*)@", env["DOCQ_REDIS_URL"])
    return m.group(1) if m else None
