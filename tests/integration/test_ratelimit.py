"""Per-caller rate limits: exact, atomic with the enqueue, told the gRPC way.

Times are Redis TIME milliseconds (created_at of admitted tasks) or derived
from them: a refusal's decision time is the time its retry delay counts from.
Redis and these tests share the machine's clock, so wall-clock sends and
receives bound those decision times; tolerances are a few ms of rounding.
"""
import concurrent.futures
import hashlib
import math
import os
import signal
import time
import unittest

import grpc

from stack import Stack, labels, pb, pb_grpc, shard_for, wait_for
from google.rpc import error_details_pb2, status_pb2

SHARDS = 4


def now_ms():
    return time.time() * 1000.0


def sleep_until_ms(t):
    delay = (t - now_ms()) / 1000.0
    if delay > 0:
        time.sleep(delay)


def shard_of(caller, shards=SHARDS):
    return shard_for(caller, shards)


def metadata(pairs):
    return {k: v for k, v in pairs or ()}


def rich_status(err):
    """The google.rpc.Status of a failed call, decoded as grpcio-status's
    rpc_status.from_call does: from the grpc-status-details-bin trailer, and
    only when its code and message agree with the call's status."""
    raw = metadata(err.trailing_metadata()).get("grpc-status-details-bin")
    if raw is None:
        return None
    st = status_pb2.Status.FromString(raw)
    if st.code != err.code().value[0] or st.message != err.details():
        raise AssertionError("status details disagree with the status: %r" % st)
    return st


def detail(st, cls):
    for any_msg in st.details:
        if any_msg.Is(cls.DESCRIPTOR):
            out = cls()
            any_msg.Unpack(out)
            return out
    return None


class Refusal:
    """What a RESOURCE_EXHAUSTED answer said, checked for consistency."""

    def __init__(self, test, err):
        test.assertEqual(err.code(), grpc.StatusCode.RESOURCE_EXHAUSTED, err.details())
        self.md = metadata(err.trailing_metadata())
        self.retry_ms = int(self.md["grpc-retry-pushback-ms"])
        test.assertEqual(err.details(), "rate limit exceeded, retry in %d ms" % self.retry_ms)
        st = rich_status(err)
        test.assertIsNotNone(st)
        retry = detail(st, error_details_pb2.RetryInfo)
        test.assertEqual(retry.retry_delay.ToMilliseconds(), self.retry_ms)
        self.quota = detail(st, error_details_pb2.QuotaFailure)
        test.assertEqual(len(self.quota.violations), 1)
        self.subject = self.quota.violations[0].subject
        # Trailers-Only: no separate response headers.
        test.assertEqual(tuple(err.initial_metadata() or ()), ())
        test.assertEqual(self.md["ratelimit-remaining"], "0")
        test.assertEqual(int(self.md["ratelimit-reset"]), math.ceil(self.retry_ms / 1000))


class Limits(unittest.TestCase):
    STACK = Stack  # test_cluster_core.py runs some of these tests on a Redis Cluster.

    def setUp(self):
        self.stack = self.STACK(shards=SHARDS).start_redis()
        self.addCleanup(self.stack.stop)

    def submit(self, stub, doc, md=None):
        """SubmitDoc; returns (response, answer metadata) or raises."""
        r, call = stub.SubmitDoc.with_call(pb.SubmitDocRequest(doc_id=doc), timeout=10, metadata=md)
        return r, metadata(call.initial_metadata())

    def refusal(self, stub, doc, md=None):
        with self.assertRaises(grpc.RpcError) as cm:
            stub.SubmitDoc(pb.SubmitDocRequest(doc_id=doc), timeout=10, metadata=md)
        return Refusal(self, cm.exception)

    def created_at(self, task_id):
        t = self.stack.stub().GetStatus(pb.GetStatusRequest(task_id=task_id), timeout=10)
        return t.created_at.ToMilliseconds()

    def task_count(self):
        return len([k for k in self.stack.task_keys() if ":task:" in k])

    def queued(self):
        return sum(int(self.stack.redis_cli("XLEN", "docq:{s%d}:tasks" % n) or 0) for n in range(SHARDS))

    # -- the limit itself ---------------------------------------------------
    def test_the_sixth_submit_is_refused_with_the_exact_delay_and_admitted_after_it(self):
        """the sixth submit in 60 s is refused with the exact retry delay, another caller is not,
        and it is admitted after the delay"""
        s = self.stack.start_server(DOCQ_RATE_LIMIT="5", DOCQ_RATE_WINDOW_S="60")
        _, v6_port = s.start_replica("server-v6", DOCQ_LISTEN="[::1]:0", DOCQ_RATE_LIMIT="5",
                                     DOCQ_RATE_WINDOW_S="60")
        a = s.stub()
        ids = []
        for i in range(5):
            r, md = self.submit(a, "a%d" % i)
            ids.append(r.task_id)
            self.assertEqual((md["ratelimit-limit"], md["ratelimit-remaining"]), ("5", str(4 - i)))
            self.assertEqual(md["ratelimit-reset"], "60")
        first = self.created_at(ids[0])
        sent = now_ms()
        refused = self.refusal(a, "a5")
        received = now_ms()
        # The delay is exact: the first request leaves the window 60 s after it was admitted.
        decided = first + 60000 - refused.retry_ms
        self.assertGreaterEqual(decided, sent - 2)
        self.assertLessEqual(decided, received + 2)
        self.assertEqual(refused.md["ratelimit-limit"], "5")
        self.assertEqual(refused.subject, "127.0.0.1")

        # Another caller (::1, through a second replica on the same Redis) is not affected.
        b = pb_grpc.DocQueueStub(grpc.insecure_channel("[::1]:%d" % v6_port))
        r, md = self.submit(b, "b0")
        self.assertEqual(md["ratelimit-remaining"], "4")

        # The refusal left nothing behind: 6 tasks, 6 entries, 5 counted for 127.0.0.1.
        self.assertEqual(self.task_count(), 6)
        self.assertEqual(self.queued(), 6)
        self.assertEqual(s.redis_cli("ZCARD", "docq:{s%d}:rate:127.0.0.1" % shard_of("127.0.0.1")), "5")

        # After the delay the caller is admitted again.
        sleep_until_ms(first + 60000 + 50)
        r, md = self.submit(a, "a6")
        now = self.created_at(r.task_id)
        self.assertGreaterEqual(now, first + 60000)
        still_counted = [t for t in map(self.created_at, ids) if t > now - 60000]
        self.assertEqual(md["ratelimit-remaining"], str(5 - 1 - len(still_counted)))

    def test_two_replicas_admit_exactly_50_of_200_concurrent_submits_from_one_caller(self):
        """two server replicas on one Redis admit exactly 50 of 200 concurrent submits from one
        caller and queue exactly 50"""
        s = self.stack.start_server(DOCQ_RATE_LIMIT="50", DOCQ_RATE_WINDOW_S="60")
        _, port2 = s.start_replica("server-2", DOCQ_RATE_LIMIT="50", DOCQ_RATE_WINDOW_S="60")
        stubs = [s.stub(new_channel=True), pb_grpc.DocQueueStub(grpc.insecure_channel("127.0.0.1:%d" % port2))]
        futures = [stubs[i % 2].SubmitDoc.future(pb.SubmitDocRequest(doc_id="c%d" % i), timeout=30)
                   for i in range(200)]
        admitted, refused, other = 0, 0, []
        for f in futures:
            try:
                f.result()
                admitted += 1
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    refused += 1
                else:
                    other.append(e)
        self.assertEqual(other, [])
        self.assertEqual((admitted, refused), (50, 150))
        shard = shard_of("127.0.0.1")
        self.assertEqual(s.redis_cli("XLEN", "docq:{s%d}:tasks" % shard), "50")
        self.assertEqual(self.task_count(), 50)
        self.assertEqual(self.queued(), 50)

    def test_never_more_than_the_limit_in_any_rolling_window_across_a_window_edge(self):
        """never more than 3 submits in any 2 s window, across a fixed-window edge, and every
        refusal's delay is exact

        3 per 2 s. Three requests at t = 1.75 s of a fixed 2-s window (Unix
        ms multiples of 2000) are admitted; a fourth at t = 2.1 s, in the next
        fixed window, is refused (a fixed window would admit it); it is
        admitted again once the first of the three is 2 s old. Then a steady
        stream of requests for 4 s: every decision is checked against the
        admitted times."""
        s = self.stack.start_server(DOCQ_RATE_LIMIT="3", DOCQ_RATE_WINDOW_S="2")
        stub = s.stub()
        admitted, refusals = [], []   # created_at ms; (retry_ms, sent, received)

        def attempt(doc):
            sent = now_ms()
            try:
                r, _ = self.submit(stub, doc)
                admitted.append(self.created_at(r.task_id))
                return True
            except grpc.RpcError as e:
                refusals.append((Refusal(self, e).retry_ms, sent, now_ms()))
                return False

        for _ in range(3):
            edge = (math.floor(now_ms() / 2000) + 1) * 2000
            sleep_until_ms(edge + 1750)
            self.assertTrue(all([attempt("w%d" % i) for i in range(3)]))
            t1, t3 = admitted[-3], admitted[-1]
            if t1 // 2000 == t3 // 2000:
                break
            time.sleep(2.2)  # A stall pushed them over the edge: let them expire, aim again.
        else:
            self.fail("three requests never landed in one fixed window: %s" % admitted)
        next_edge = (math.floor(t3 / 2000) + 1) * 2000
        sleep_until_ms(next_edge + 100)
        self.assertFalse(attempt("fourth"), "the fourth request in 2 s was admitted")
        retry_ms, sent, received = refusals[-1]
        decided = t1 + 2000 - retry_ms
        self.assertTrue(sent - 2 <= decided <= received + 2, (decided, sent, received))
        # The refusal came in a fresh fixed window: INCR+EXPIRE would have admitted it.
        self.assertGreater(math.floor(decided / 2000), math.floor(t3 / 2000))
        # Just before the first request is 2 s old the caller is still refused,
        # and from then on admitted.
        sleep_until_ms(t1 + 2000 - 150)
        early = attempt("early")
        sleep_until_ms(t1 + 2000 + 30)
        on_time = attempt("on-time")
        if not early:  # (A stalled "early" may have taken the slot: check_decisions judges it.)
            self.assertTrue(on_time, "refused after the first request left the window")
            self.assertGreaterEqual(admitted[-1], t1 + 2000)

        before = (len(admitted), len(refusals))
        end = now_ms() + 4000
        n = 0
        while now_ms() < end:
            attempt("stream-%d" % n)
            n += 1
            time.sleep(0.03)
        self.check_decisions(sorted(admitted), refusals, limit=3, window=2000)
        # In 4 s the stream got slots (2 at once, 3 more 2 s later) and refusals.
        self.assertGreaterEqual(len(admitted) - before[0], 5)
        self.assertGreaterEqual(len(refusals) - before[1], 10)

    def check_decisions(self, admitted, refusals, limit, window):
        # Admissions: never more than limit in any window (t - window, t].
        for t in admitted:
            inside = [a for a in admitted if t - window < a <= t]
            self.assertLessEqual(len(inside), limit, "window ending at %d holds %s" % (t, inside))
        # Refusals: at some instant d within the call, the window was full and
        # the retry delay is exactly when its oldest member leaves.
        for retry_ms, sent, received in refusals:
            ok = False
            for d in range(int(sent) - 2, int(received) + 3):
                inside = [a for a in admitted if d - window < a <= d]
                if len(inside) >= limit and inside[len(inside) - limit] + window - d == retry_ms:
                    ok = True
                    break
            self.assertTrue(ok, "refusal %r does not match the admitted times %s" % (
                (retry_ms, sent, received), [a for a in admitted if sent - window - 10 < a <= received]))

    # -- reads ------------------------------------------------------------------
    def test_reads_have_their_own_limit_and_do_not_use_up_submits(self):
        """GetStatus and WatchStatus have their own limit and do not use up submits"""
        s = self.stack.start_server(DOCQ_RATE_LIMIT="5", DOCQ_READ_RATE_LIMIT="3",
                                    DOCQ_READ_RATE_WINDOW_S="60")
        stub = s.stub()
        r, _ = self.submit(stub, "doc")
        for _ in range(3):
            t, call = stub.GetStatus.with_call(pb.GetStatusRequest(task_id=r.task_id), timeout=10)
            self.assertEqual(t.task_id, r.task_id)
        self.assertEqual(metadata(call.initial_metadata())["ratelimit-remaining"], "0")
        with self.assertRaises(grpc.RpcError) as cm:
            stub.GetStatus(pb.GetStatusRequest(task_id=r.task_id), timeout=10)
        refused = Refusal(self, cm.exception)
        self.assertIn("GetStatus", refused.quota.violations[0].description)
        with self.assertRaises(grpc.RpcError) as cm:
            list(stub.WatchStatus(pb.WatchStatusRequest(task_id=r.task_id), timeout=10))
        Refusal(self, cm.exception)
        _, md = self.submit(stub, "doc2")
        self.assertEqual(md["ratelimit-remaining"], "3")

    # -- the rich error model in another language ---------------------------------
    def test_a_python_client_generated_from_proto_decodes_retry_info_from_the_status_details(self):
        """a Python client generated from proto/ decodes RetryInfo and QuotaFailure from the
        status details"""
        s = self.stack.start_server(DOCQ_RATE_LIMIT="1", DOCQ_RATE_WINDOW_S="30")
        stub = s.stub()
        self.submit(stub, "one")
        with self.assertRaises(grpc.RpcError) as cm:
            stub.SubmitDoc(pb.SubmitDocRequest(doc_id="two"), timeout=10)
        err = cm.exception
        st = rich_status(err)
        self.assertEqual(st.code, grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])
        self.assertEqual(len(st.details), 2)
        self.assertEqual(st.details[0].type_url, "type.googleapis.com/google.rpc.RetryInfo")
        retry = detail(st, error_details_pb2.RetryInfo)
        delay = retry.retry_delay.ToMilliseconds()
        self.assertTrue(0 < delay <= 30000, delay)
        self.assertEqual(str(delay), metadata(err.trailing_metadata())["grpc-retry-pushback-ms"])
        quota = detail(st, error_details_pb2.QuotaFailure)
        self.assertEqual(quota.violations[0].subject, "127.0.0.1")
        self.assertEqual(quota.violations[0].description, "at most 1 SubmitDoc calls per 30 s per caller")

    # -- who the caller is ----------------------------------------------------------
    def test_x_forwarded_for_names_the_caller_only_behind_a_trusted_proxy(self):
        """x-forwarded-for names the caller only behind a trusted proxy"""
        s = self.stack.start_server(DOCQ_RATE_LIMIT="1", DOCQ_TRUSTED_PROXIES="127.0.0.1")
        _, port2 = s.start_replica("untrusting", DOCQ_RATE_LIMIT="1", DOCQ_KEY_PREFIX="other")
        trusting = s.stub()
        untrusting = pb_grpc.DocQueueStub(grpc.insecure_channel("127.0.0.1:%d" % port2))
        xff = lambda ip: [("x-forwarded-for", "6.6.6.6, " + ip)]  # noqa: E731
        # Behind the trusted proxy, each forwarded client is its own caller.
        r, _ = self.submit(trusting, "p1", xff("203.0.113.7"))
        self.assertEqual(r.task_id.split("-")[0], "s%d" % shard_of("203.0.113.7"))
        self.submit(trusting, "p2", xff("203.0.113.8"))
        self.assertEqual(self.refusal(trusting, "p3", xff("203.0.113.7")).subject, "203.0.113.7")
        # Without trust the header is ignored: both requests are 127.0.0.1's.
        self.submit(untrusting, "u1", xff("203.0.113.7"))
        self.assertEqual(self.refusal(untrusting, "u2", xff("203.0.113.8")).subject, "127.0.0.1")

    # -- IPv6 callers -----------------------------------------------------------------
    def ipv6_stub(self, port):
        """A stub on a channel of its own to [::1]:port (its own TCP
        connection, so its own client port)."""
        ch = grpc.insecure_channel("[::1]:%d" % port, options=[("grpc.use_local_subchannel_pool", 1)])
        self.addCleanup(ch.close)
        return pb_grpc.DocQueueStub(ch)

    def test_five_submits_on_five_new_channels_to_ipv6_loopback_with_a_limit_of_2_admit_exactly_2(self):
        """five submits on five new channels to [::1] with a limit of 2 admit exactly 2"""
        s = self.stack.start_server(DOCQ_RATE_LIMIT="2", DOCQ_LISTEN="[::1]:0")
        admitted, subjects = 0, set()
        for i in range(5):
            try:
                self.submit(self.ipv6_stub(s.server_port), "v6-%d" % i)
                admitted += 1
            except grpc.RpcError as e:
                subjects.add(Refusal(self, e).subject)
        self.assertEqual(admitted, 2)
        # The caller is ::1's /64 (DOCQ_IPV6_PREFIX), never an address with a port.
        self.assertEqual(subjects, {"::/64"})

    def test_an_ipv6_proxy_in_docq_trusted_proxies_has_its_x_forwarded_for_read(self):
        """an IPv6 proxy in DOCQ_TRUSTED_PROXIES has its x-forwarded-for read"""
        s = self.stack.start_server(DOCQ_RATE_LIMIT="1", DOCQ_LISTEN="[::1]:0", DOCQ_TRUSTED_PROXIES="::1")
        stub = self.ipv6_stub(s.server_port)
        xff = lambda ip: [("x-forwarded-for", ip)]  # noqa: E731
        r, _ = self.submit(stub, "a1", xff("203.0.113.7"))
        self.assertEqual(r.task_id.split("-")[0], "s%d" % shard_of("203.0.113.7"))
        self.submit(stub, "b1", xff("2001:db8::5"))
        self.assertEqual(self.refusal(stub, "a2", xff("203.0.113.7")).subject, "203.0.113.7")
        # A forwarded IPv6 client is grouped by its /64 too.
        self.assertEqual(self.refusal(stub, "b2", xff("2001:db8:0:0:ffff::9")).subject, "2001:db8::/64")

    # -- Redis down ---------------------------------------------------------------------
    def test_with_redis_down_a_limited_submit_is_unavailable_and_not_counted(self):
        """with Redis down a limited submit is UNAVAILABLE and is not counted"""
        s = self.stack
        s.start_server(DOCQ_RATE_LIMIT="2")
        s.stop_redis()
        for call, req in [(s.stub().SubmitDoc, pb.SubmitDocRequest(doc_id="down")),
                          (s.stub().GetStatus, pb.GetStatusRequest(task_id="s0-" + "0" * 32))]:
            with self.assertRaises(grpc.RpcError) as cm:
                call(req, timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        s.start_redis()

        def submit_ok():
            try:
                return self.submit(s.stub(), "up")
            except grpc.RpcError:
                return None
        _, md = wait_for(submit_ok, timeout=10, what="the server to serve again")
        self.assertEqual(md["ratelimit-remaining"], "1")

    # -- the CLI ----------------------------------------------------------------------
    def test_docq_submit_prints_the_retry_delay_and_with_retry_waits_it_out(self):
        """docq submit prints the retry delay when refused and with --retry waits it out"""
        s = self.stack.start_server(DOCQ_RATE_LIMIT="2", DOCQ_RATE_WINDOW_S="3")
        out = s.cli("submit", "a", "b", "c")
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertEqual(len(out.stdout.split()), 2)
        self.assertIn("RESOURCE_EXHAUSTED: rate limit exceeded, retry in", out.stderr)
        self.assertRegex(out.stderr, r"wait \d+ ms before retrying")
        t0 = time.monotonic()
        out = s.cli("submit", "--retry", "d", "e")
        elapsed = time.monotonic() - t0
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(len(out.stdout.split()), 2)
        waits = [int(w) for w in __import__("re").findall(r"retrying in (\d+) ms", out.stderr)]
        self.assertTrue(waits, out.stderr)
        self.assertGreaterEqual(elapsed * 1000, sum(waits))
        self.assertEqual(self.task_count(), 4)


class ApiKeys(unittest.TestCase):
    KEYS = {"acme": "key-acme-0123", "beta": "key-beta-4567", "gamma": "key-gamma-89"}

    def setUp(self):
        self.stack = Stack(shards=SHARDS).start_redis()
        self.addCleanup(self.stack.stop)
        self.path = os.path.join(self.stack.dir, "keys")

    def write_keys(self, lines):
        with open(self.path, "w") as f:
            f.write("# caller  sha256(key)  [limit [window]]\n")
            for caller, extra in lines:
                digest = hashlib.sha256(self.KEYS[caller].encode()).hexdigest()
                f.write("%s %s %s\n" % (caller, digest, extra))

    def start(self, **env):
        return self.stack.start_server(DOCQ_API_KEYS_FILE=self.path, DOCQ_RATE_LIMIT="5", **env)

    def call(self, doc, md):
        r, call = self.stack.stub().SubmitDoc.with_call(pb.SubmitDocRequest(doc_id=doc), timeout=10,
                                                        metadata=md)
        return r, metadata(call.initial_metadata())

    def code(self, doc, md):
        try:
            self.call(doc, md)
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()

    def bearer(self, caller):
        return [("authorization", "Bearer " + self.KEYS[caller])]

    def test_a_missing_or_unknown_api_key_is_unauthenticated(self):
        """a missing or unknown API key is UNAUTHENTICATED and keys are never logged"""
        self.write_keys([("acme", "")])
        s = self.start()
        for md in [None, [("authorization", "Bearer nope")], [("x-api-key", "nope")],
                   [("authorization", "Basic " + self.KEYS["acme"])], [("authorization", "Bearer ")]]:
            with self.assertRaises(grpc.RpcError) as cm:
                s.stub().SubmitDoc(pb.SubmitDocRequest(doc_id="x"), timeout=10, metadata=md)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED, md)
        with self.assertRaises(grpc.RpcError) as cm:
            s.stub().GetStatus(pb.GetStatusRequest(task_id="s0-" + "0" * 32), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(s.task_keys(), [])
        out = s.cli("submit", "x")
        self.assertIn("UNAUTHENTICATED", out.stderr)
        out = s.cli("--api-key", self.KEYS["acme"], "submit", "x")
        self.assertEqual(out.returncode, 0, out.stderr)
        # Keys are never logged in clear.
        self.assertNotIn(self.KEYS["acme"], s.server.text())

    def test_each_api_key_has_its_callers_limit_and_its_caller_id_picks_the_shard(self):
        """each API key has its caller's own limit and its caller id picks the shard"""
        self.write_keys([("acme", "2 60"), ("beta", "")])
        self.start()
        for i in range(2):
            r, md = self.call("a%d" % i, self.bearer("acme"))
            self.assertEqual(md["ratelimit-limit"], "2")
            self.assertEqual(r.task_id.split("-")[0], "s%d" % shard_of("acme"))
        with self.assertRaises(grpc.RpcError) as cm:
            self.call("a2", self.bearer("acme"))
        refused = Refusal(self, cm.exception)
        self.assertEqual(refused.subject, "acme")
        self.assertEqual(refused.md["ratelimit-limit"], "2")
        # beta (x-api-key) has the server's limit and its own count.
        r, md = self.call("b0", [("x-api-key", self.KEYS["beta"])])
        self.assertEqual((md["ratelimit-limit"], md["ratelimit-remaining"]), ("5", "4"))
        self.assertEqual(r.task_id.split("-")[0], "s%d" % shard_of("beta"))

    @labels("valgrind")
    def test_the_server_reloads_keys_and_stops_with_no_leaks_under_valgrind(self):
        """the server reloads API keys on SIGHUP and stops on SIGTERM with no leaks under
        valgrind"""
        from test_shutdown import VALGRIND, leak_summary
        self.write_keys([("acme", "1")])
        s = self.stack.start_server(wrap=VALGRIND, DOCQ_API_KEYS_FILE=self.path)
        stub = s.stub()
        stub.SubmitDoc(pb.SubmitDocRequest(doc_id="vg"), timeout=60, metadata=self.bearer("acme"))
        with self.assertRaises(grpc.RpcError) as cm:   # A refusal, with its status details.
            stub.SubmitDoc(pb.SubmitDocRequest(doc_id="vg2"), timeout=60, metadata=self.bearer("acme"))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        for n, lines in enumerate([[("acme", "1"), ("beta", "")], [("beta", "")]]):
            self.write_keys(lines)
            s.server.signal(signal.SIGHUP)
            wait_for(lambda: s.server.text().count("reloaded") == n + 1, timeout=60, what="reload %d" % n)
        with open(self.path, "a") as f:
            f.write("broken\n")
        s.server.signal(signal.SIGHUP)
        wait_for(lambda: "keys not reloaded" in s.server.text(), timeout=60, what="the refused reload")
        stub.SubmitDoc(pb.SubmitDocRequest(doc_id="vg3"), timeout=60, metadata=self.bearer("beta"))
        with self.assertRaises(grpc.RpcError) as cm:
            stub.SubmitDoc(pb.SubmitDocRequest(doc_id="vg4"), timeout=60, metadata=self.bearer("acme"))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        s.server.signal(signal.SIGTERM)
        self.assertEqual(s.server.wait(timeout=60), 0, s.server.text()[-3000:])
        self.assertEqual(leak_summary(s.server.text()), 0, s.server.text()[-3000:])
        self.assertIn("ERROR SUMMARY: 0 errors", s.server.text())

    def test_sighup_reloads_the_keys_file_and_a_broken_file_keeps_the_previous_keys(self):
        """SIGHUP reloads the API keys file and a broken file keeps the previous keys"""
        self.write_keys([("acme", ""), ("beta", "")])
        s = self.start()
        self.assertEqual(self.code("b", self.bearer("beta")), grpc.StatusCode.OK)
        self.write_keys([("acme", ""), ("gamma", "1")])
        s.server.signal(signal.SIGHUP)
        wait_for(lambda: "reloaded 2 API keys" in s.server.text(), what="the reload")
        self.assertEqual(self.code("b", self.bearer("beta")), grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(self.code("g1", self.bearer("gamma")), grpc.StatusCode.OK)
        self.assertEqual(self.code("g2", self.bearer("gamma")), grpc.StatusCode.RESOURCE_EXHAUSTED)
        with open(self.path, "a") as f:
            f.write("broken line\n")
        s.server.signal(signal.SIGHUP)
        wait_for(lambda: "keys not reloaded" in s.server.text(), what="the refused reload")
        self.assertIn("line 4", s.server.text())
        self.assertTrue(s.server.alive())
        self.assertEqual(self.code("a", self.bearer("acme")), grpc.StatusCode.OK)
        self.assertEqual(self.code("g3", self.bearer("gamma")), grpc.StatusCode.RESOURCE_EXHAUSTED)


class Fairness(unittest.TestCase):
    def setUp(self):
        self.stack = Stack(shards=SHARDS)
        self.addCleanup(self.stack.stop)

    def test_a_callers_task_starts_within_a_second_behind_another_callers_2000_queued_tasks(self):
        """a caller's task starts within a second behind another caller's 2000 queued tasks"""
        keys = {"bulk": "key-bulk", "small": "key-small"}
        self.assertNotEqual(shard_of("bulk"), shard_of("small"))
        path = os.path.join(self.stack.dir, "keys")
        with open(path, "w") as f:
            f.write("bulk %s 100000 60\n" % hashlib.sha256(b"key-bulk").hexdigest())
            f.write("small %s\n" % hashlib.sha256(b"key-small").hexdigest())
        s = self.stack.start_redis().start_ai("--latency-ms", "500")
        s.start_server(DOCQ_API_KEYS_FILE=path, DOCQ_RATE_LIMIT="5")
        md = lambda caller: [("authorization", "Bearer " + keys[caller])]  # noqa: E731
        stub = s.stub()
        for start in range(0, 2000, 250):
            futures = [stub.SubmitDoc.future(pb.SubmitDocRequest(doc_id="bulk-%d" % i), timeout=30,
                                             metadata=md("bulk")) for i in range(start, start + 250)]
            for f in futures:
                f.result()
        bulk_shard = "docq:{s%d}:tasks" % shard_of("bulk")
        self.assertEqual(s.redis_cli("XLEN", bulk_shard), "2000")
        s.start_worker(DOCQ_WORKER_CONCURRENCY="8")
        wait_for(lambda: s.ai_stats()["requests"] > 0, what="the worker to take bulk's tasks")
        time.sleep(1.0)  # The worker is busy with bulk's backlog.
        r = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="small-1"), timeout=10, metadata=md("small"))

        def started():
            t = stub.GetStatus(pb.GetStatusRequest(task_id=r.task_id), timeout=10, metadata=md("small"))
            return t if t.started_at.ToMilliseconds() else None
        t = wait_for(started, timeout=30, interval=0.05, what="small's task to start")
        waited = t.started_at.ToMilliseconds() - t.created_at.ToMilliseconds()
        self.assertLess(waited, 1000, "small's task waited %d ms" % waited)
        # bulk's backlog was still there: small did not wait for it.
        finished = s.ai_stats()["requests"]
        self.assertLess(finished, 200, "the AI served %d of bulk's tasks first" % finished)


if __name__ == "__main__":
    unittest.main()
