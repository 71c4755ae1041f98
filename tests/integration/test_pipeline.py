"""Pipelining (server.h): each server thread sends the Redis work of every
call that arrived together in one round trip, then answers each call from
its own reply. These tests check that under concurrency each call still gets
its own answer, that the read limit counts each read once in both shapes of
GetStatus's Redis work (one script, or a limit check then a read), and that
Redis dying or forgetting its scripts in the middle of a burst never turns
into a wrong answer, a lost accepted task or a duplicated one.

Nothing here measures time: bursts run until some condition is seen.
"""
import random
import subprocess
import threading
import time
import unittest

import grpc

from stack import Stack, pb, pb_grpc, wait_for

SHARDS = 4


def shard_of(caller, shards):
    """docq_shard_for: FNV-1a (64 bits) of the caller id, mod shards."""
    h = 14695981039346656037
    for b in caller.encode():
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h % shards


def as_caller(ip):
    """Call metadata naming the caller ip (the server trusts 127.0.0.1)."""
    return (("x-forwarded-for", ip),)


def outcome(future):
    """(status code, response) of a finished call, or (code, details) when it
    failed, so that a test failure shows why."""
    try:
        return grpc.StatusCode.OK, future.result()
    except grpc.RpcError as e:
        return e.code(), e.details()


def failures(calls):
    """(id, code, details) of each call of calls ((id, code, response or
    details)) that did not end OK."""
    return [(i, code, r) for i, code, r in calls if code != grpc.StatusCode.OK]


class Burst:
    """Client threads, each on its own channel, sending waves of concurrent
    SubmitDocs (distinct doc ids) and GetStatuses of tasks already accepted,
    until stopped. Every call and its outcome is recorded."""

    def __init__(self, address, threads=4, wave=40):
        self.address, self.wave = address, wave
        self.lock = threading.Lock()
        self.accepted = {}      # task_id -> doc_id, for SubmitDocs answered OK.
        self.submits = []       # (doc_id, code, task_id or the error's details)
        self.reads = []         # (task_id, code, task or the error's details)
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for t in self.threads:
            t.join()

    def oks_since(self, n):
        """How many SubmitDocs after the n-th recorded one were accepted."""
        with self.lock:
            return sum(1 for _, code, _ in self.submits[n:] if code == grpc.StatusCode.OK)

    def _run(self, index):
        stub = pb_grpc.DocQueueStub(grpc.insecure_channel(self.address))
        rnd = random.Random(index)
        wave = 0
        while not self.stopping.is_set():
            docs = ["t%d-w%d-%d" % (index, wave, i) for i in range(self.wave)]
            with self.lock:
                known = list(self.accepted.items())
            reads = rnd.sample(known, min(len(known), self.wave // 2))
            sub = [stub.SubmitDoc.future(pb.SubmitDocRequest(doc_id=d), timeout=20) for d in docs]
            get = [stub.GetStatus.future(pb.GetStatusRequest(task_id=t), timeout=20) for t, _ in reads]
            done_sub = [(d,) + outcome(f) for d, f in zip(docs, sub)]
            done_get = [(t,) + outcome(f) for (t, _), f in zip(reads, get)]
            with self.lock:
                for d, code, r in done_sub:
                    self.submits.append((d, code, r.task_id if code == grpc.StatusCode.OK else r))
                    if code == grpc.StatusCode.OK:
                        self.accepted[r.task_id] = d
                for t, code, r in done_get:
                    self.reads.append((t, code, r))
            wave += 1


class Pipelining(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.stack = Stack(shards=SHARDS)
        self.addCleanup(self.stack.stop)

    def records(self):
        """task_id -> doc_id of every task record in Redis."""
        s = self.stack
        out = {}
        for key in s.redis_cli("--scan", "--pattern", "docq:*:task:*").split():
            out[key.rsplit(":", 1)[1]] = s.redis_cli("HGET", key, "doc_id")
        return out

    def entries(self):
        """task_id -> how many stream entries name it, over every shard."""
        s = self.stack
        counts = {}
        for shard in range(SHARDS):
            lines = s.redis_cli("XRANGE", s.stream_key(shard), "-", "+").split("\n")
            for i, line in enumerate(lines):
                if line == "task_id":
                    counts[lines[i + 1]] = counts.get(lines[i + 1], 0) + 1
        return counts

    def assert_each_accepted_task_stored_once(self, accepted):
        """Every accepted task has its record (with its doc) and exactly one
        queue entry; no task anywhere has two entries, and records and entries
        match one to one (no half-created task)."""
        records, entries = self.records(), self.entries()
        for task_id, doc in accepted.items():
            self.assertEqual(records.get(task_id), doc, "accepted task %s lost" % task_id)
            self.assertEqual(entries.get(task_id), 1, "accepted task %s queued %s times" %
                             (task_id, entries.get(task_id)))
        self.assertEqual({t: n for t, n in entries.items() if n != 1}, {})
        self.assertEqual(set(records), set(entries))

    def test_concurrent_submits_and_reads_from_many_callers_each_get_their_own_answer(self):
        """1000 concurrent SubmitDocs and GetStatuses from 20 callers each get their own answer
        through the pipeline"""
        s = self.stack.start_redis().start_server(DOCQ_TRUSTED_PROXIES="127.0.0.1")
        callers = ["10.0.0.%d" % i for i in range(20)]
        stubs = [s.stub(new_channel=True) for _ in range(4)]
        n = 1000
        calls = [stubs[i % 4].SubmitDoc.future(pb.SubmitDocRequest(doc_id="doc-%d" % i), timeout=60,
                                               metadata=as_caller(callers[i % 20])) for i in range(n)]
        task_ids = []
        for i, f in enumerate(calls):
            r = f.result()
            # The task id names its caller's shard: the answer is this call's.
            self.assertEqual(s.shard_of(r.task_id), shard_of(callers[i % 20], SHARDS))
            task_ids.append(r.task_id)
        self.assertEqual(len(set(task_ids)), n)
        reads = [stubs[(i + 1) % 4].GetStatus.future(pb.GetStatusRequest(task_id=t), timeout=60,
                                                     metadata=as_caller(callers[i % 20]))
                 for i, t in enumerate(task_ids)]
        for i, f in enumerate(reads):
            t = f.result()
            self.assertEqual((t.task_id, t.doc_id, t.state), (task_ids[i], "doc-%d" % i, pb.Task.PENDING))
        self.assert_each_accepted_task_stored_once({t: "doc-%d" % i for i, t in enumerate(task_ids)})

    def test_the_read_limit_counts_each_getstatus_once_in_the_callers_shard_or_another(self):
        """the read limit counts each GetStatus once whether the caller's limit key shares the
        task's shard or not

        Replica A has 4 shards and replica B 16, on one Redis: a caller's
        task (submitted through A) is in shard h % 4 and the caller's read
        limit key in B in shard h % 16, the same for about a quarter of the
        callers. B then checks the limit and reads in one script for those,
        in two commands for the others; both must count exactly."""
        limits = {"DOCQ_TRUSTED_PROXIES": "127.0.0.1", "DOCQ_READ_RATE_LIMIT": "5",
                  "DOCQ_READ_RATE_WINDOW_S": "60"}
        # A second shard count on one prefix is refused at start (the
        # deployment's shape, which A records at start and at each health
        # PING): this test wants that mix, so A pings only at start and its
        # record is removed before B starts.
        s = self.stack.start_redis().start_server(DOCQ_HEALTH_INTERVAL_MS="600000", **limits)
        s.redis_cli("DEL", "docq:shape")
        _, port_b = s.start_replica("server-16-shards", DOCQ_SHARDS="16", **limits)
        callers = ["10.1.0.%d" % i for i in range(16)]
        same = [c for c in callers if shard_of(c, 16) == shard_of(c, SHARDS)]
        self.assertTrue(2 <= len(same) <= len(callers) - 2, same)  # Both shapes are exercised.
        a, b = s.stub(), pb_grpc.DocQueueStub(grpc.insecure_channel("127.0.0.1:%d" % port_b))
        tasks = {c: a.SubmitDoc(pb.SubmitDocRequest(doc_id="of-" + c), metadata=as_caller(c), timeout=10).task_id
                 for c in callers}
        reads = [(c, b.GetStatus.future(pb.GetStatusRequest(task_id=tasks[c]), metadata=as_caller(c), timeout=30))
                 for c in callers for _ in range(8)]
        codes = {c: [] for c in callers}
        for c, f in reads:
            code, t = outcome(f)
            codes[c].append(code)
            if code == grpc.StatusCode.OK:
                self.assertEqual(t.doc_id, "of-" + c)
        for c in callers:
            self.assertEqual((codes[c].count(grpc.StatusCode.OK), codes[c].count(grpc.StatusCode.RESOURCE_EXHAUSTED)),
                             (5, 3), "caller %s (%s shard): %s" % (c, "same" if c in same else "other", codes[c]))

    def test_redis_killed_and_restarted_during_a_burst_gives_ok_or_unavailable_and_loses_or_duplicates_no_task(self):
        """Redis killed and restarted mid-burst: every answer is OK or UNAVAILABLE and no
        accepted task is lost or duplicated"""
        s = self.stack.start_redis(persist=True).start_server(DOCQ_THREADS="2")
        with Burst(s.address()) as burst:
            wait_for(lambda: burst.oks_since(0) >= 200, timeout=60, what="a first part of the burst")
            s.stop_redis()
            killed_at = len(burst.submits)
            s.start_redis(persist=True)
            wait_for(lambda: burst.oks_since(killed_at) >= 200, timeout=60,
                     what="SubmitDocs accepted again after the restart")
        self.assertTrue(s.server.alive(), s.logs())
        bad = [f for f in failures(burst.submits) if f[1] != grpc.StatusCode.UNAVAILABLE]
        self.assertEqual(bad, [])
        for task_id, code, t in burst.reads:
            self.assertIn(code, (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE), (task_id, t))
            if code == grpc.StatusCode.OK:
                self.assertEqual((t.task_id, t.doc_id), (task_id, burst.accepted[task_id]))
        self.assert_each_accepted_task_stored_once(burst.accepted)
        for task_id, doc in random.Random(1).sample(sorted(burst.accepted.items()), 100):
            self.assertEqual(s.task(task_id).doc_id, doc)

    def test_redis_forgetting_its_scripts_during_a_burst_costs_no_call(self):
        """Redis forgetting its scripts (SCRIPT FLUSH) mid-burst costs no call"""
        s = self.stack.start_redis().start_server(DOCQ_THREADS="2")
        with Burst(s.address()) as burst:
            for _ in range(5):
                seen = len(burst.submits)
                wait_for(lambda: burst.oks_since(seen) >= 100, timeout=60, what="the burst to go on")
                self.assertEqual(s.redis_cli("SCRIPT", "FLUSH"), "OK")
            seen = len(burst.submits)
            wait_for(lambda: burst.oks_since(seen) >= 100, timeout=60, what="the burst to go on")
        self.assertEqual(failures(burst.submits), [])
        self.assertEqual(failures(burst.reads), [])
        self.assert_each_accepted_task_stored_once(burst.accepted)

    def test_redis_busy_or_loading_is_unavailable_not_internal(self):
        """Redis busy with a long script is UNAVAILABLE naming BUSY, not INTERNAL, and the
        same call succeeds once it is done

        Redis answers every command with BUSY while a script runs past
        busy-reply-threshold, and with LOADING while it reads its data
        after a restart: passing states in which the command did not run,
        so the client is told to retry."""
        s = self.stack.start_redis().start_server()
        stub = s.stub()
        task_id = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="before"), timeout=10).task_id
        self.assertEqual(s.redis_cli("CONFIG", "SET", "busy-reply-threshold", "100"), "OK")
        spin = ("local t = redis.call('TIME'); local stop = tonumber(t[1]) + 3; "
                "while tonumber(redis.call('TIME')[1]) < stop do end; return 1")
        busy = subprocess.Popen(["redis-cli", "-p", str(s.redis_port), "EVAL", spin, "0"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(busy.wait)
        wait_for(lambda: "BUSY" in s.redis_cli("PING"), what="Redis to answer BUSY")
        for call in (lambda: stub.SubmitDoc(pb.SubmitDocRequest(doc_id="during"), timeout=10),
                     lambda: stub.GetStatus(pb.GetStatusRequest(task_id=task_id), timeout=10)):
            with self.assertRaises(grpc.RpcError) as cm:
                call()
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE, cm.exception.details())
            self.assertIn("BUSY", cm.exception.details())
        busy.wait(timeout=30)
        done = wait_for(lambda: outcome(stub.SubmitDoc.future(pb.SubmitDocRequest(doc_id="after"), timeout=10))[0]
                        == grpc.StatusCode.OK, what="SubmitDoc to succeed after the script")
        self.assertTrue(done)
        self.assertEqual(stub.GetStatus(pb.GetStatusRequest(task_id=task_id), timeout=10).doc_id, "before")


if __name__ == "__main__":
    unittest.main()
