"""Security: TLS and mutual TLS, the plaintext health port, ownership of
tasks, bounded inputs and secrets that never show.

Certificates are made for each test with Debian's openssl command (certs.py);
clients are Python grpcio channels, the docq CLI and docq bench."""
import hashlib
import json
import os
import re
import secrets
import signal
import subprocess
import time
import unittest

import grpc

from certs import Pki
from probes import SERVING, HealthWatch, health_check, http_get, metrics_port
from stack import BIN_DIR, Stack, pb, pb_grpc, wait_for

UNKNOWN_ID = "s0-" + "0" * 32


def read(path):
    with open(path, "rb") as f:
        return f.read()


def shard_of(caller, shards=4):
    """docq_shard_for: FNV-1a (64 bits) of the caller id, mod shards."""
    h = 14695981039346656037
    for b in caller.encode():
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h % shards


def channel(port, pki=None, client=None, ca=None, own_connection=True):
    """A channel to 127.0.0.1:port: plaintext without pki, else TLS trusting
    pki's CA (or ca), with client's certificate when given. Each channel
    has its own connection unless own_connection is False."""
    options = [("grpc.use_local_subchannel_pool", 1)] if own_connection else []
    target = "127.0.0.1:%d" % port
    if pki is None:
        return grpc.insecure_channel(target, options=options)
    creds = grpc.ssl_channel_credentials(read(ca or pki.ca_cert), read(client.key) if client else None,
                                         read(client.cert) if client else None)
    return grpc.secure_channel(target, creds, options=options)


def code_of(fn, *args, **kwargs):
    """The status code of a call (OK when it succeeds) and its details."""
    try:
        fn(*args, **kwargs)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details()


def raw_unary(ch, method):
    """A unary method on ch that sends and receives raw bytes."""
    return ch.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)


def tls_env(pki, mutual=False, **extra):
    env = {"DOCQ_TLS_CERT": pki.server.cert, "DOCQ_TLS_KEY": pki.server.key}
    if mutual:
        env["DOCQ_TLS_CLIENT_CA"] = pki.ca_cert
    env.update(extra)
    return env


def write_keys(path, keys):
    """An API keys file giving each caller (dict caller -> key) its key."""
    with open(path, "w") as f:
        for caller, key in keys.items():
            f.write("%s %s\n" % (caller, hashlib.sha256(key.encode()).hexdigest()))


class Tls(unittest.TestCase):
    def setUp(self):
        self.stack = Stack().start_redis()
        self.addCleanup(self.stack.stop)
        self.pki = Pki(self.stack.dir)

    def cli(self, *args, **kw):
        return self.stack.cli(*args, **kw)

    def test_tls_serves_clients_that_trust_its_ca_and_no_plaintext_client(self):
        """TLS serves clients that trust its CA, and no plaintext client or client of another CA"""
        s, pki = self.stack, self.pki
        s.start_server(**tls_env(pki))
        self.assertIn("transport: TLS", s.server.text())
        stub = pb_grpc.DocQueueStub(channel(s.server_port, pki))
        tid = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="over tls"), timeout=10).task_id
        self.assertEqual(stub.GetStatus(pb.GetStatusRequest(task_id=tid), timeout=10).doc_id, "over tls")
        # Without authentication the task belongs to no one.
        self.assertEqual(s.redis_cli("HGET", "docq:{s%d}:task:%s" % (s.shard_of(tid), tid), "owner"), "")
        # A plaintext client, or one trusting another CA, gets no answer.
        plain = pb_grpc.DocQueueStub(channel(s.server_port))
        self.assertEqual(code_of(plain.GetStatus, pb.GetStatusRequest(task_id=tid), timeout=5)[0],
                         grpc.StatusCode.UNAVAILABLE)
        other = pb_grpc.DocQueueStub(channel(s.server_port, pki, ca=pki.other_ca.cert))
        self.assertEqual(code_of(other.GetStatus, pb.GetStatusRequest(task_id=tid), timeout=5)[0],
                         grpc.StatusCode.UNAVAILABLE)
        # The CLI: --cacert (the certificate names 127.0.0.1 and localhost).
        out = self.cli("--cacert", pki.ca_cert, "status", tid)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("over tls", out.stdout)
        out = self.cli("--cacert", pki.ca_cert, "--tls-server-name", "localhost", "submit", "named")
        self.assertEqual(out.returncode, 0, out.stderr)
        out = self.cli("--cacert", pki.ca_cert, "--tls-server-name", "elsewhere.example", "--deadline-ms",
                       "3000", "status", tid)
        self.assertEqual(out.returncode, 1)
        self.assertIn("UNAVAILABLE", out.stderr)
        out = self.cli("--deadline-ms", "3000", "status", tid)
        self.assertEqual(out.returncode, 1)
        self.assertIn("UNAVAILABLE", out.stderr)
        # --tls alone trusts the system's roots, which never signed this CA.
        out = self.cli("--tls", "--deadline-ms", "3000", "status", tid)
        self.assertEqual(out.returncode, 1)
        self.assertIn("UNAVAILABLE", out.stderr)

    def test_mutual_tls_names_the_caller_by_its_certificate_and_refuses_other_clients(self):
        """mutual TLS names the caller by its certificate, refuses other clients, and docq and
        docq bench connect with --cacert --cert --key"""
        s, pki = self.stack, self.pki
        s.start_ai().start_server(**tls_env(pki, mutual=True))
        s.start_worker()
        self.assertIn("client certificates required", s.server.text())
        acme = pki.client("acme")
        stub = pb_grpc.DocQueueStub(channel(s.server_port, pki, acme))
        tid = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="d1"), timeout=10).task_id
        # The certificate's CN is the caller: its shard, and its task.
        self.assertEqual(s.shard_of(tid), shard_of("acme"))
        self.assertEqual(s.redis_cli("HGET", "docq:{s%d}:task:%s" % (s.shard_of(tid), tid), "owner"), "acme")
        # A certificate without a CN names its caller by its whole subject.
        nocn = pb_grpc.DocQueueStub(channel(s.server_port, pki, pki.client(None, "/O=Acme Corp/OU=ops")))
        t2 = nocn.SubmitDoc(pb.SubmitDocRequest(doc_id="d2"), timeout=10).task_id
        owner = s.redis_cli("HGET", "docq:{s%d}:task:%s" % (s.shard_of(t2), t2), "owner")
        self.assertIn("O=Acme Corp", owner)
        self.assertIn("OU=ops", owner)
        # No certificate, or one from a CA the server does not trust: no connection.
        for client in (None, pki.other_client("acme")):
            other = pb_grpc.DocQueueStub(channel(s.server_port, pki, client))
            self.assertEqual(code_of(other.SubmitDoc, pb.SubmitDocRequest(doc_id="x"), timeout=5)[0],
                             grpc.StatusCode.UNAVAILABLE, client)
        # The CLI and docq bench with --cacert, --cert and --key.
        tls = ["--cacert", pki.ca_cert, "--cert", acme.cert, "--key", acme.key]
        out = self.cli(*tls, "submit", "--wait", "d3", timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("SUCCESS", out.stdout)
        out = self.cli(*tls, "status", tid)
        self.assertEqual(out.returncode, 0, out.stderr)
        out = self.cli("--cacert", pki.ca_cert, "--deadline-ms", "3000", "status", tid)
        self.assertEqual(out.returncode, 1)
        out = self.cli(*tls, "bench", "--tasks", "20", "--users", "4", "--follow", "watch", "--json",
                       timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        result = json.loads(out.stdout)
        self.assertEqual(result["tasks"], {"success": 20, "failure": 0}, out.stdout)
        self.assertEqual(result["errors"], 0, out.stdout)
        # A certificate and key that do not belong together are named, not used.
        out = self.cli("--cacert", pki.ca_cert, "--cert", acme.cert, "--key", pki.server.key, "status", tid)
        self.assertEqual(out.returncode, 1)
        self.assertIn("does not belong", out.stderr)

    def test_an_api_key_still_names_its_caller_over_mutual_tls(self):
        """an API key still names its caller over mutual TLS"""
        s, pki = self.stack, self.pki
        keys = os.path.join(s.dir, "keys")
        write_keys(keys, {"beta": "key-of-beta"})
        s.start_server(**tls_env(pki, mutual=True, DOCQ_API_KEYS_FILE=keys))
        stub = pb_grpc.DocQueueStub(channel(s.server_port, pki, pki.client("acme")))
        by_cert = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="c"), timeout=10).task_id
        by_key = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="k"), timeout=10,
                                metadata=[("authorization", "Bearer key-of-beta")]).task_id
        self.assertEqual(s.redis_cli("HGET", "docq:{s%d}:task:%s" % (s.shard_of(by_cert), by_cert), "owner"),
                         "acme")
        self.assertEqual(s.redis_cli("HGET", "docq:{s%d}:task:%s" % (s.shard_of(by_key), by_key), "owner"),
                         "beta")
        code, _ = code_of(stub.SubmitDoc, pb.SubmitDocRequest(doc_id="u"), timeout=10,
                          metadata=[("x-api-key", "not-a-key")])
        self.assertEqual(code, grpc.StatusCode.UNAUTHENTICATED)

    def test_the_plaintext_port_serves_health_checks_and_nothing_else(self):
        """the plaintext port beside TLS serves health checks as the TLS port does, and nothing
        else"""
        s, pki = self.stack, self.pki
        s.start_server(**tls_env(pki, mutual=True, DOCQ_PLAINTEXT_LISTEN="127.0.0.1:0"))
        m = wait_for(lambda: re.search(r"plaintext health port on \S+ \(port (\d+)\)", s.server.text()),
                     what="the plaintext port")
        plain = channel(int(m.group(1)))
        secure = channel(s.server_port, pki, pki.client("acme"))
        for method, req in [("/docq.v1.DocQueue/SubmitDoc", pb.SubmitDocRequest(doc_id="x")),
                            ("/docq.v1.DocQueue/GetStatus", pb.GetStatusRequest(task_id=UNKNOWN_ID)),
                            ("/docq.v1.DocQueue/WatchStatus", pb.WatchStatusRequest(task_id=UNKNOWN_ID)),
                            ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", None),
                            ("/no.such.Service/Method", None)]:
            data = req.SerializeToString() if req else b""
            call = plain.unary_stream(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
            try:
                list(call(data, timeout=10))
                code, details = grpc.StatusCode.OK, ""
            except grpc.RpcError as e:
                code, details = e.code(), e.details()
            self.assertEqual(code, grpc.StatusCode.PERMISSION_DENIED, method)
            self.assertIn("over TLS", details)
        self.assertEqual(s.task_keys(), [])
        # Health is answered on the plaintext port as over TLS: SERVING, with
        # no key, for the server and for DocQueue; Watch too.
        for service in ("", "docq.v1.DocQueue"):
            self.assertEqual(health_check(plain, service, timeout=10), SERVING, service)
            self.assertEqual(health_check(secure, service, timeout=10), SERVING, service)
        watch = HealthWatch(plain, timeout=5)  # Reads from its start.
        wait_for(lambda: watch.statuses, what="the health watch's first status")
        self.assertEqual(watch.statuses[0], SERVING)
        watch.call.cancel()
        watch.join(10)
        # The TLS port still serves everything.
        stub = pb_grpc.DocQueueStub(secure)
        self.assertEqual(stub.SubmitDoc(pb.SubmitDocRequest(doc_id="x"), timeout=10).state, pb.Task.PENDING)

    def test_a_server_with_an_unusable_certificate_file_refuses_to_start_naming_it(self):
        """a server with an unusable certificate file refuses to start, naming it and never
        quoting a key"""
        s, pki = self.stack, self.pki
        key_text = read(pki.server.key).decode()
        body = [line for line in key_text.splitlines() if line and not line.startswith("-----")]
        cases = [
            ({"DOCQ_TLS_KEY": pki.client("acme").key}, "does not belong to the certificate"),
            ({"DOCQ_TLS_CERT": os.path.join(s.dir, "missing.crt")}, "cannot open"),
            ({"DOCQ_TLS_KEY": pki.server.cert}, "holds no unencrypted PEM private key"),
            ({"DOCQ_TLS_CERT": pki.server.key}, "holds no PEM certificate"),
            ({"DOCQ_TLS_CLIENT_CA": pki.server.key}, "holds no PEM certificate"),
        ]
        for change, why in cases:
            env = dict(s.common_env(), DOCQ_LISTEN="127.0.0.1:0", **tls_env(pki))
            env.update(change)
            out = subprocess.run([os.path.join(BIN_DIR, "docq-server")], env=env, capture_output=True,
                                 text=True, timeout=60)
            self.assertEqual(out.returncode, 1, (change, out.stderr))
            self.assertIn(why, out.stderr, change)
            self.assertIn(list(change.values())[0], out.stderr)
            for line in body:
                self.assertNotIn(line, out.stderr)
        env = dict(s.common_env(), DOCQ_TLS_CERT=pki.server.cert)
        out = subprocess.run([os.path.join(BIN_DIR, "docq-server")], env=env, capture_output=True, text=True,
                             timeout=60)
        self.assertEqual(out.returncode, 2)
        self.assertIn("DOCQ_TLS_KEY", out.stderr)


class Ownership(unittest.TestCase):
    KEYS = {"acme": "key-acme-" + "1" * 16, "beta": "key-beta-" + "2" * 16}

    def setUp(self):
        self.stack = Stack().start_redis()
        self.addCleanup(self.stack.stop)
        self.keys = os.path.join(self.stack.dir, "keys")
        write_keys(self.keys, self.KEYS)

    def md(self, caller):
        return [("authorization", "Bearer " + self.KEYS[caller])]

    def test_another_callers_task_is_not_found_by_get_status_or_watch_status(self):
        """another caller's task is NOT_FOUND to GetStatus and WatchStatus, exactly as an unknown
        id"""
        s = self.stack
        s.start_ai("--latency-ms", "1500").start_server(DOCQ_API_KEYS_FILE=self.keys)
        stub = s.stub()
        tid = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="mine"), timeout=10, metadata=self.md("acme")).task_id
        self.assertEqual(s.redis_cli("HGET", "docq:{s%d}:task:%s" % (s.shard_of(tid), tid), "owner"), "acme")
        unknown = "s%d-%s" % (s.shard_of(tid), "ab" * 16)

        def answers(caller, task_id):
            get = code_of(stub.GetStatus, pb.GetStatusRequest(task_id=task_id), timeout=10, metadata=self.md(caller))
            watch = code_of(lambda: next(stub.WatchStatus(pb.WatchStatusRequest(task_id=task_id), timeout=10,
                                                          metadata=self.md(caller))))
            return [(code, details.replace(task_id, "<id>")) for code, details in (get, watch)]

        # beta is told exactly what it would be told of an id never issued.
        for when in ("pending", "finished"):
            theirs, never = answers("beta", tid), answers("beta", unknown)
            self.assertEqual(theirs, never, when)
            self.assertTrue(all(code == grpc.StatusCode.NOT_FOUND for code, _ in theirs), (when, theirs))
            self.assertEqual(code_of(stub.GetStatus, pb.GetStatusRequest(task_id=tid), timeout=10,
                                     metadata=self.md("acme"))[0], grpc.StatusCode.OK)
            if when == "pending":
                watch = stub.WatchStatus(pb.WatchStatusRequest(task_id=tid), timeout=60, metadata=self.md("acme"))
                self.assertEqual(next(watch).state, pb.Task.PENDING)
                s.start_worker()
                states = [m.state for m in watch]
                self.assertEqual(states[-1], pb.Task.SUCCESS)
        # The CLI as beta: the same NOT_FOUND.
        out = s.cli("--api-key", self.KEYS["beta"], "status", tid)
        self.assertEqual(out.returncode, 1)
        self.assertIn("NOT_FOUND", out.stderr)
        out = s.cli("--api-key", self.KEYS["beta"], "watch", tid)
        self.assertEqual(out.returncode, 1)
        self.assertIn("NOT_FOUND", out.stderr)
        out = s.cli("--api-key", self.KEYS["acme"], "status", tid)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("SUCCESS", out.stdout)

    def test_tasks_submitted_without_authentication_are_no_authenticated_callers(self):
        """tasks submitted without authentication are no authenticated caller's"""
        s = self.stack
        s.start_server()
        open_port = s.server_port
        _, keyed_port = s.start_replica("keyed", DOCQ_API_KEYS_FILE=self.keys)
        tid = pb_grpc.DocQueueStub(channel(open_port)).SubmitDoc(pb.SubmitDocRequest(doc_id="anon"),
                                                                 timeout=10).task_id
        keyed = pb_grpc.DocQueueStub(channel(keyed_port))
        self.assertEqual(code_of(keyed.GetStatus, pb.GetStatusRequest(task_id=tid), timeout=10,
                                 metadata=self.md("acme"))[0], grpc.StatusCode.NOT_FOUND)
        # Without authentication every caller sees every task.
        self.assertEqual(pb_grpc.DocQueueStub(channel(open_port)).GetStatus(
            pb.GetStatusRequest(task_id=tid), timeout=10).doc_id, "anon")


class Limits(unittest.TestCase):
    def setUp(self):
        self.stack = Stack().start_redis()
        self.addCleanup(self.stack.stop)

    @staticmethod
    def submit_bytes(doc_id, padding):
        """A SubmitDocRequest with doc_id and an unknown field 15 of padding
        bytes, which the server skips: a message as large as wanted."""
        msg = pb.SubmitDocRequest(doc_id=doc_id).SerializeToString()
        pad = b"p" * padding
        n, varint = len(pad), b""
        while True:
            byte, n = n & 0x7F, n >> 7
            varint += bytes([byte | (0x80 if n else 0)])
            if not n:
                break
        return msg + b"\x7a" + varint + pad  # Field 15, wire type 2.

    def test_a_request_over_max_message_bytes_is_resource_exhausted_and_stores_nothing(self):
        """a request over DOCQ_MAX_MESSAGE_BYTES (64 KiB by default) is RESOURCE_EXHAUSTED and
        stores nothing"""
        s = self.stack
        s.start_server(DOCQ_MAX_MESSAGE_BYTES="4096")
        _, default_port = s.start_replica("default")
        submit = raw_unary(channel(s.server_port), "/docq.v1.DocQueue/SubmitDoc")
        code, details = code_of(submit, self.submit_bytes("big", 5000), timeout=10)
        self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED, details)
        self.assertEqual(s.task_keys(), [])
        self.assertEqual(code_of(submit, self.submit_bytes("fits", 4000), timeout=10)[0], grpc.StatusCode.OK)
        # The default: 64 KiB.
        submit = raw_unary(channel(default_port), "/docq.v1.DocQueue/SubmitDoc")
        self.assertEqual(code_of(submit, self.submit_bytes("big", 70000), timeout=10)[0],
                         grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertEqual(code_of(submit, self.submit_bytes("fits", 60000), timeout=10)[0], grpc.StatusCode.OK)

    def test_metadata_over_max_metadata_bytes_is_refused_and_the_server_keeps_serving(self):
        """metadata over DOCQ_MAX_METADATA_BYTES is refused and the server keeps serving"""
        s = self.stack
        s.start_server()
        _, roomy_port = s.start_replica("roomy", DOCQ_MAX_METADATA_BYTES="65536")
        ch = channel(s.server_port)
        stub = pb_grpc.DocQueueStub(ch)
        huge = [("x-huge", "h" * 20000)]
        code, details = code_of(stub.GetStatus, pb.GetStatusRequest(task_id=UNKNOWN_ID), timeout=10, metadata=huge)
        self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED, details)
        self.assertIn("metadata size exceeds limit", details)
        # Another connection is served at once; the same channel again once
        # it has reconnected (gRPC may close the offending connection).
        self.assertEqual(code_of(pb_grpc.DocQueueStub(channel(s.server_port)).GetStatus,
                                 pb.GetStatusRequest(task_id=UNKNOWN_ID), timeout=10)[0], grpc.StatusCode.NOT_FOUND)
        wait_for(lambda: code_of(stub.GetStatus, pb.GetStatusRequest(task_id=UNKNOWN_ID), timeout=10)[0] ==
                 grpc.StatusCode.NOT_FOUND, what="the same channel to be served again")
        # A server allowing more takes the same metadata.
        roomy = pb_grpc.DocQueueStub(channel(roomy_port))
        self.assertEqual(code_of(roomy.GetStatus, pb.GetStatusRequest(task_id=UNKNOWN_ID), timeout=10,
                                 metadata=huge)[0], grpc.StatusCode.NOT_FOUND)

    def test_a_caller_gets_at_most_max_watches_per_caller_open_watches(self):
        """a caller gets at most DOCQ_MAX_WATCHES_PER_CALLER open watches, others are not held
        back"""
        s = self.stack
        keys = os.path.join(s.dir, "keys")
        write_keys(keys, {"acme": "ka", "beta": "kb"})
        s.start_server(DOCQ_API_KEYS_FILE=keys, DOCQ_MAX_WATCHES_PER_CALLER="3")
        stub = s.stub()
        acme, beta = [("x-api-key", "ka")], [("x-api-key", "kb")]
        tids = [stub.SubmitDoc(pb.SubmitDocRequest(doc_id="d%d" % i), timeout=10, metadata=acme).task_id
                for i in range(4)]
        btid = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="b"), timeout=10, metadata=beta).task_id
        watches = [stub.WatchStatus(pb.WatchStatusRequest(task_id=t), timeout=60, metadata=acme) for t in tids[:3]]
        for w in watches:
            self.assertEqual(next(w).state, pb.Task.PENDING)
        fourth = stub.WatchStatus(pb.WatchStatusRequest(task_id=tids[3]), timeout=10, metadata=acme)
        code, details = code_of(lambda: next(fourth))
        self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("at most 3 per caller", details)
        # Another caller is not held back.
        other = stub.WatchStatus(pb.WatchStatusRequest(task_id=btid), timeout=60, metadata=beta)
        self.assertEqual(next(other).task_id, btid)
        # Ending a watch makes room for another.
        watches[0].cancel()
        wait_for(lambda: s.server.text().count("watch cancelled") >= 1, what="the cancellation to reach the server")
        again = stub.WatchStatus(pb.WatchStatusRequest(task_id=tids[3]), timeout=60, metadata=acme)
        self.assertEqual(next(again).task_id, tids[3])
        for w in watches[1:] + [other, again]:
            w.cancel()

    def test_a_key_removed_by_sighup_ends_its_open_watches_unauthenticated(self):
        """a key removed by SIGHUP ends its open watches UNAUTHENTICATED, other keys' watches run
        on"""
        s = self.stack
        keys = os.path.join(s.dir, "keys")
        write_keys(keys, {"acme": "ka", "beta": "kb"})
        s.start_ai("--latency-ms", "300").start_server(DOCQ_API_KEYS_FILE=keys)
        stub = s.stub()
        acme, beta = [("x-api-key", "ka")], [("x-api-key", "kb")]
        atid = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="a"), timeout=10, metadata=acme).task_id
        btid = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="b"), timeout=10, metadata=beta).task_id
        revoked = stub.WatchStatus(pb.WatchStatusRequest(task_id=atid), timeout=60, metadata=acme)
        kept = stub.WatchStatus(pb.WatchStatusRequest(task_id=btid), timeout=60, metadata=beta)
        self.assertEqual(next(revoked).state, pb.Task.PENDING)
        self.assertEqual(next(kept).state, pb.Task.PENDING)
        write_keys(keys, {"beta": "kb"})
        s.server.signal(signal.SIGHUP)
        started = time.monotonic()
        code, details = code_of(lambda: next(revoked))
        self.assertEqual(code, grpc.StatusCode.UNAUTHENTICATED, details)
        self.assertIn("revoked", details)
        self.assertLess(time.monotonic() - started, 20)
        # beta's watch runs on and gets the next change.
        s.start_worker()
        self.assertEqual([m.state for m in kept][-1], pb.Task.SUCCESS)
        self.assertEqual(kept.code(), grpc.StatusCode.OK)

    def test_a_connection_gets_at_most_max_concurrent_streams_open_calls(self):
        """a connection gets at most DOCQ_MAX_CONCURRENT_STREAMS open calls, the next waits for a
        free one"""
        s = self.stack
        s.start_server(DOCQ_MAX_CONCURRENT_STREAMS="4")
        stub = s.stub()
        tids = [stub.SubmitDoc(pb.SubmitDocRequest(doc_id="d%d" % i), timeout=10).task_id for i in range(5)]
        conn = pb_grpc.DocQueueStub(channel(s.server_port))
        watches = [conn.WatchStatus(pb.WatchStatusRequest(task_id=t), timeout=60) for t in tids[:4]]
        for w in watches:
            self.assertEqual(next(w).state, pb.Task.PENDING)
        # A fifth call on that connection waits for a free stream...
        fifth = conn.WatchStatus(pb.WatchStatusRequest(task_id=tids[4]), timeout=60)
        got = []
        fifth.add_done_callback(lambda _: got.append("done"))
        time.sleep(1.5)
        self.assertEqual(s.open_watches(), 4)
        self.assertEqual(got, [])
        # ...while another connection is served at once...
        self.assertEqual(stub.GetStatus(pb.GetStatusRequest(task_id=tids[4]), timeout=10).task_id, tids[4])
        # ...and it goes through as soon as one ends.
        watches[0].cancel()
        self.assertEqual(next(fifth).task_id, tids[4])
        for w in watches[1:] + [fifth]:
            w.cancel()

    def test_an_ai_answer_over_max_result_bytes_fails_its_task_and_is_not_stored(self):
        """an AI answer over DOCQ_MAX_RESULT_BYTES fails its task at once and is not stored"""
        s = self.stack
        s.start_ai("--pad-bytes", "300000", "--pad-prefix", "big").start_server()
        s.start_worker(DOCQ_MAX_RESULT_BYTES="100000")
        stub = s.stub()
        big = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="big-1"), timeout=10).task_id
        small = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="small-1"), timeout=10).task_id
        t = s.wait_terminal(big)
        self.assertEqual(t.state, pb.Task.FAILURE)
        self.assertIn("larger than 100000 bytes (DOCQ_MAX_RESULT_BYTES)", t.error)
        self.assertEqual(t.attempts, 1)  # Not retried: the same answer would come back.
        self.assertEqual(t.result, "")
        self.assertEqual(s.redis_cli("HSTRLEN", "docq:{s%d}:task:%s" % (s.shard_of(big), big), "result"), "0")
        self.assertEqual(s.wait_terminal(small).state, pb.Task.SUCCESS)
        self.assertEqual(s.ai_stats()["requests"], 2)


class Secrets(unittest.TestCase):
    def test_passwords_keys_and_private_keys_never_appear_in_logs_or_errors(self):
        """Redis passwords, API keys and private keys never appear in any log or error of a run
        that used them"""
        s = Stack()
        self.addCleanup(s.stop)
        password, wrong_url_pw, wrong_file_pw = ("pw-" + secrets.token_hex(12) for _ in range(3))
        key, unknown_key, raw_key = ("key-" + secrets.token_hex(12) for _ in range(3))
        s.start_redis(password=password).start_ai()
        pki = Pki(s.dir)
        pw_file = os.path.join(s.dir, "redis-password")
        with open(pw_file, "w") as f:
            f.write(password + "\n")
        bad_pw_file = os.path.join(s.dir, "wrong-password")
        with open(bad_pw_file, "w") as f:
            f.write(wrong_file_pw + "\n")
        keys = os.path.join(s.dir, "keys")
        write_keys(keys, {"acme": key})
        url = "redis://127.0.0.1:%d" % s.redis_port
        s.start_server(DOCQ_REDIS_PASSWORD_FILE=pw_file, DOCQ_API_KEYS_FILE=keys, **tls_env(pki))
        s.start_worker(DOCQ_REDIS_URL="redis://:%s@127.0.0.1:%d" % (password, s.redis_port))
        # Processes given a wrong password keep failing, and say so.
        s.start_worker(DOCQ_REDIS_URL="redis://:%s@127.0.0.1:%d" % (wrong_url_pw, s.redis_port))
        bad_server, bad_port = s.start_replica("wrong-password-server", DOCQ_REDIS_URL=url,
                                               DOCQ_REDIS_PASSWORD_FILE=bad_pw_file)
        outputs = []

        def cli(*args, port=None):
            out = subprocess.run([os.path.join(BIN_DIR, "docq"), "--server", "127.0.0.1:%d" % (port or s.server_port),
                                  "--cacert", pki.ca_cert, "--deadline-ms", "5000"] + list(args),
                                 capture_output=True, text=True, timeout=60)
            outputs.append(out.stdout + out.stderr)
            return out

        out = cli("--api-key", key, "submit", "--wait", "doc-1")
        self.assertEqual(out.returncode, 0, out.stderr)
        tid = out.stdout.split()[0]
        self.assertEqual(cli("--api-key", key, "status", tid).returncode, 0)
        self.assertEqual(cli("--api-key", unknown_key, "status", tid).returncode, 1)
        self.assertIn("UNAUTHENTICATED", outputs[-1])
        self.assertEqual(cli("--api-key", key, "bench", "--tasks", "5", "--users", "2").returncode, 0, outputs[-1])
        self.assertEqual(cli("--api-key", key, "status", tid, port=bad_port).returncode, 1)
        self.assertIn("UNAVAILABLE", outputs[-1])
        # A keys file broken by a key pasted in clear is refused without quoting it.
        with open(keys, "a") as f:
            f.write("beta %s\n" % raw_key)
        s.server.signal(signal.SIGHUP)
        wait_for(lambda: "keys not reloaded" in s.server.text(), what="the reload to be refused")
        # Each process saw its password's failure.
        wait_for(lambda: "WRONGPASS" in s.workers[1].text(), what="the worker with a wrong password to say so")
        wait_for(lambda: "WRONGPASS" in bad_server.text() or "NOAUTH" in bad_server.text(),
                 what="the server with a wrong password to say so")
        # Nor does any /metrics page.
        for p in (s.server, s.workers[0], s.workers[1], bad_server):
            outputs.append(http_get(metrics_port(p), "/metrics")[2])
        for p in s.procs:
            p.signal(signal.SIGTERM)
        for p in s.procs:
            p.wait(timeout=30)
        private = [line for path in (pki.server.key,) for line in read(path).decode().splitlines()
                   if line and not line.startswith("-----")]
        texts = [(p.name, p.text()) for p in s.procs] + [("cli", o) for o in outputs]
        self.assertGreater(sum(len(t) for _, t in texts), 10000)  # The logs were written (debug level).
        for name, text in texts:
            for secret in [password, wrong_url_pw, wrong_file_pw, key, unknown_key, raw_key] + private:
                self.assertNotIn(secret, text, "%s shows a secret" % name)


if __name__ == "__main__":
    unittest.main()
