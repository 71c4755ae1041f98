"""CancelTask: a task nobody wants any more ends CANCELLED at every state it can
be in, the AI call of a running one is cut off, and an ending is never
written twice.

The AI is docq-fake-ai: its /stats count the requests whose client closed
the connection while they waited for their latency (client_closed), and
with --log-requests 1 it logs each answer and each such close.
"""
import hashlib
import os
import random
import time
import unittest

import grpc

from cluster import Cluster
from stack import Stack, pb, wait_for

ENDED = (pb.Task.SUCCESS, pb.Task.FAILURE, pb.Task.CANCELLED)
REASON = "cancelled by the caller"


def code_of(call, *args, **kw):
    """(status code, details) of a unary call."""
    try:
        call(*args, **kw)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details()


def as_caller(ip):
    """Metadata that makes a trusted proxy's request come from ip."""
    return [("x-forwarded-for", ip)]


class Cancel(unittest.TestCase):
    def setUp(self):
        self.stack = Stack()
        self.addCleanup(self.stack.stop)

    def submit(self, doc, **kw):
        return self.stack.stub().SubmitDoc(pb.SubmitDocRequest(doc_id=doc), timeout=10, **kw).task_id

    def cancel(self, task_id, **kw):
        return self.stack.stub().CancelTask(pb.CancelTaskRequest(task_id=task_id), timeout=10, **kw)

    def record(self, task_id):
        return "docq:{s%d}:task:%s" % (self.stack.shard_of(task_id), task_id)

    def worker_log(self):
        return "".join(w.text() for w in self.stack.workers)

    def wait_queues_empty(self):
        """Wait until no entry is left in any queue stream nor pending in the group."""
        s = self.stack
        wait_for(lambda: s.queued_count() == 0 and s.pending_count() == 0, timeout=30,
                 what="every queue entry to be acknowledged and deleted")

    def test_a_pending_task_cancelled_ends_cancelled_at_once_and_never_reaches_the_ai(self):
        """a PENDING task cancelled ends CANCELLED at once, and a worker started later never sends
        it to the AI"""
        s = self.stack.start_redis().start_ai("--log-requests", "1")
        s.start_server()
        tid = self.submit("doc_pending")
        t = self.cancel(tid)
        self.assertEqual((t.task_id, t.state, t.error, t.attempts, t.version, t.queue_position),
                         (tid, pb.Task.CANCELLED, REASON, 0, 2, 0))
        self.assertGreater(t.finished_at.seconds, 0)
        self.assertTrue(0 < int(s.redis_cli("TTL", self.record(tid))) <= s.result_ttl_s)
        self.assertEqual(s.task(tid), t)
        # The entry is still queued: the first worker to receive it only acknowledges it.
        s.start_worker()
        after = self.submit("doc_after")
        self.assertEqual(s.wait_terminal(after).state, pb.Task.SUCCESS, s.logs())
        self.wait_queues_empty()
        self.assertEqual(s.ai_stats()["requests"], 1)
        self.assertNotIn(tid, s.ai.text())
        self.assertEqual(s.task(tid), t)

    def test_a_started_task_cancelled_has_its_ai_call_closed_within_a_second_and_is_not_retried(self):
        """a STARTED task cancelled has its AI call's connection closed within a second, ends
        CANCELLED and is neither retried nor dead-lettered"""
        s = self.stack.start_redis().start_ai("--latency-ms", "6000", "--log-requests", "1")
        s.start_server()
        s.start_worker(DOCQ_RETRY_BASE_MS="100")
        tid = self.submit("doc_slow")
        wait_for(lambda: s.ai_stats()["in_flight"] == 1, what="the AI call to begin")
        self.assertEqual(s.task(tid).state, pb.Task.STARTED)
        asked = time.monotonic()
        t = self.cancel(tid)
        self.assertEqual((t.state, t.error, t.attempts, t.version), (pb.Task.CANCELLED, REASON, 1, 3))
        wait_for(lambda: s.ai_stats()["client_closed"] == 1, timeout=10, interval=0.01,
                 what="the AI service to see the connection closed")
        self.assertLess(time.monotonic() - asked, 1.0, s.logs())
        self.assertIn("client closed the connection before the answer: POST task_id=" + tid, s.ai.text())
        self.wait_queues_empty()
        self.assertIn("task CANCELLED by its caller: AI call aborted", self.worker_log())
        # A retry would start 100 ms (DOCQ_RETRY_BASE_MS) after a failure: none comes.
        time.sleep(1.0)
        stats = s.ai_stats()
        self.assertEqual((stats["requests"], stats["ok"], stats["failed"], stats["in_flight"]), (1, 0, 0, 0))
        self.assertEqual(s.task(tid), t)
        self.assertEqual(s.queued_count("dead"), 0)

    def test_a_task_waiting_for_its_retry_is_cancelled_and_its_retry_never_runs(self):
        """a task waiting for its retry is cancelled: the worker drops the retry, acknowledges the
        entry and never calls the AI again"""
        s = self.stack.start_redis().start_ai("--fail-status", "503", "--fail-first", "1", "--log-requests", "1")
        s.start_server()
        s.start_worker(DOCQ_RETRY_BASE_MS="2000")  # The retry waits 1 to 2 s.
        tid = self.submit("doc_flaky")
        t = s.wait_task(tid, lambda t: t.error != "", what="the transient failure to be recorded")
        self.assertEqual((t.state, t.attempts), (pb.Task.STARTED, 1))
        t = self.cancel(tid)
        self.assertEqual((t.state, t.error, t.attempts), (pb.Task.CANCELLED, REASON, 1))
        self.wait_queues_empty()
        self.assertIn("task CANCELLED by its caller: pending retry dropped", self.worker_log())
        time.sleep(2.5)
        self.assertEqual(s.ai_stats()["requests"], 1)
        self.assertEqual(s.task(tid), t)

    def test_a_task_that_has_ended_is_returned_as_it_is(self):
        """a task that has ended (SUCCESS, FAILURE or CANCELLED) is returned as it is, and stays so"""
        s = self.stack.start_redis().start_ai("--reject-prefix", "bad_")
        s.start_server()
        cancelled = self.submit("doc_c")
        self.cancel(cancelled)
        s.start_worker()
        ok, bad = self.submit("doc_ok"), self.submit("bad_doc")
        self.assertEqual([s.wait_terminal(ok).state, s.wait_terminal(bad).state],
                         [pb.Task.SUCCESS, pb.Task.FAILURE], s.logs())
        for tid in (cancelled, ok, bad):
            before = s.task(tid)
            self.assertEqual(self.cancel(tid), before)
            self.assertEqual(self.cancel(tid), before)
            self.assertEqual(s.task(tid), before)
        self.assertTrue(s.task(ok).result)

    def test_a_watch_ends_with_the_cancelled_change(self):
        """WatchStatus of a cancelled task ends with OK after the CANCELLED change"""
        s = self.stack.start_redis().start_server()
        tid = self.submit("doc_watched")
        watch = s.stub().WatchStatus(pb.WatchStatusRequest(task_id=tid), timeout=30)
        first = next(watch)
        self.assertEqual((first.state, first.version), (pb.Task.PENDING, 1))
        self.cancel(tid)
        rest = list(watch)  # Ends with OK, else it raises.
        self.assertEqual([(m.state, m.version, m.error) for m in rest], [(pb.Task.CANCELLED, 2, REASON)])

    def test_cancel_racing_the_finish_leaves_exactly_one_ending_that_stays(self):
        """a cancel racing the outcome leaves each task exactly one ending, which stays, with
        versions in order"""
        s = self.stack.start_redis().start_ai("--latency-ms", "20")
        s.start_server()
        s.start_worker()
        stub, endings, rng = s.stub(), {}, random.Random(16)
        for i in range(100):
            tid = self.submit("race_%d" % i)
            watch = stub.WatchStatus(pb.WatchStatusRequest(task_id=tid), timeout=30)
            seen = [next(watch)]
            while seen[-1].state == pb.Task.PENDING:
                seen.append(next(watch))
            time.sleep(rng.uniform(0, 0.04))  # About when the 20 ms AI call ends.
            answer = self.cancel(tid)
            seen.extend(watch)
            versions = [m.version for m in seen]
            self.assertEqual(versions, sorted(set(versions)), (tid, versions))
            self.assertEqual([m.state in ENDED for m in seen], [False] * (len(seen) - 1) + [True], (tid, seen))
            last = seen[-1]
            self.assertIn(answer.state, (pb.Task.SUCCESS, pb.Task.CANCELLED))
            self.assertEqual((answer.state, answer.version, answer.attempts), (last.state, last.version, 1))
            self.assertEqual(last.version, 3)
            endings[tid] = answer
        self.wait_queues_empty()
        time.sleep(0.5)  # Any late write would land by now.
        for tid, answer in endings.items():
            self.assertEqual(s.task(tid), answer)
        stats = s.ai_stats()
        self.assertEqual((stats["requests"], stats["duplicate_tasks"]), (100, 0))
        self.assertEqual(s.queued_count("dead"), 0)
        counts = [sum(a.state == st for a in endings.values()) for st in (pb.Task.SUCCESS, pb.Task.CANCELLED)]
        print("race endings: %d SUCCESS, %d CANCELLED" % tuple(counts))

    def test_another_callers_cancel_is_not_found_and_changes_nothing(self):
        """another caller's CancelTask is NOT_FOUND, exactly as an unknown id, and changes nothing"""
        keys = {"acme": "key-acme-" + "1" * 16, "beta": "key-beta-" + "2" * 16}
        path = os.path.join(self.stack.dir, "keys")
        with open(path, "w") as f:
            for caller, key in keys.items():
                f.write("%s %s\n" % (caller, hashlib.sha256(key.encode()).hexdigest()))
        s = self.stack.start_redis().start_server(DOCQ_API_KEYS_FILE=path)

        def md(caller):
            return [("authorization", "Bearer " + keys[caller])]
        tid = self.submit("mine", metadata=md("acme"))
        unknown = "s%d-%s" % (s.shard_of(tid), "ab" * 16)
        theirs = code_of(self.cancel, tid, metadata=md("beta"))
        never = code_of(self.cancel, unknown, metadata=md("beta"))
        self.assertEqual(theirs[0], grpc.StatusCode.NOT_FOUND)
        self.assertEqual(theirs[1].replace(tid, "<id>"), never[1].replace(unknown, "<id>"))
        mine = s.stub().GetStatus(pb.GetStatusRequest(task_id=tid), timeout=10, metadata=md("acme"))
        self.assertEqual((mine.state, mine.version), (pb.Task.PENDING, 1))
        out = s.cli("--api-key", keys["beta"], "cancel", tid)
        self.assertEqual(out.returncode, 1)
        self.assertIn("NOT_FOUND", out.stderr)
        self.assertEqual(s.redis_cli("HGET", self.record(tid), "state"), "PENDING")
        self.assertEqual(self.cancel(tid, metadata=md("acme")).state, pb.Task.CANCELLED)

    def test_cancel_checks_the_id_counts_against_the_read_limit_and_is_unavailable_without_redis(self):
        """CancelTask answers INVALID_ARGUMENT and NOT_FOUND as GetStatus does, counts against the read
        limit (a refused cancel changes nothing, in the caller's shard or another) and is UNAVAILABLE
        without Redis"""
        s = self.stack.start_redis().start_server(DOCQ_TRUSTED_PROXIES="127.0.0.1", DOCQ_READ_RATE_LIMIT="3",
                                                  DOCQ_READ_RATE_WINDOW_S="600")
        me = "10.9.0.1"
        stub = s.stub()
        self.assertEqual(code_of(self.cancel, "nope", metadata=as_caller(me))[0], grpc.StatusCode.INVALID_ARGUMENT)
        mine = [self.submit("mine_%d" % i, metadata=as_caller(me)) for i in range(2)]
        # A task of another caller in another shard: the limit key and the task are apart.
        other = next(tid for tid in (self.submit("of_%d" % i, metadata=as_caller("10.9.1.%d" % i)) for i in range(40))
                     if s.shard_of(tid) != s.shard_of(mine[0]))
        others = [other, next(tid for tid in (self.submit("of2_%d" % i, metadata=as_caller("10.9.2.%d" % i))
                                              for i in range(40)) if s.shard_of(tid) == s.shard_of(other))]

        def cancel_with_remaining(tid):
            t, call = stub.CancelTask.with_call(pb.CancelTaskRequest(task_id=tid), timeout=10,
                                                metadata=as_caller(me))
            return t.state, dict(call.initial_metadata())["ratelimit-remaining"]
        self.assertEqual(cancel_with_remaining(others[0]), (pb.Task.CANCELLED, "2"))
        self.assertEqual(cancel_with_remaining(mine[0]), (pb.Task.CANCELLED, "1"))
        unknown = "s%d-%s" % (s.shard_of(mine[0]), "cd" * 16)
        self.assertEqual(code_of(self.cancel, unknown, metadata=as_caller(me))[0], grpc.StatusCode.NOT_FOUND)
        for tid in (mine[1], others[1]):
            self.assertEqual(code_of(self.cancel, tid, metadata=as_caller(me))[0],
                             grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertEqual(s.redis_cli("HGET", self.record(tid), "state"), "PENDING")
            self.assertEqual(s.redis_cli("HGET", self.record(tid), "version"), "1")
        s.stop_redis()
        code, details = code_of(self.cancel, others[1], metadata=as_caller("10.9.3.1"))
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE, details)

    def test_a_cancel_in_a_redis_cluster_stops_the_running_task_within_a_second(self):
        """in a Redis Cluster a STARTED task cancelled has its AI call closed within a second, and a
        PENDING one never reaches the AI"""
        cluster = Cluster(primaries=3, replicas=0)
        self.addCleanup(cluster.stop)
        cluster.start()
        s = self.stack
        s.redis_port = cluster.live_ports()[0]
        s.start_ai("--latency-ms", "6000", "--log-requests", "1")
        s.start_server(DOCQ_TRUSTED_PROXIES="127.0.0.1")
        s.start_worker(DOCQ_WORKER_CONCURRENCY="1")
        running = self.submit("doc_running", metadata=as_caller("10.8.0.1"))
        wait_for(lambda: s.ai_stats()["in_flight"] == 1, what="the AI call to begin")
        # The only slot is busy: tasks submitted now stay PENDING until they are cancelled, the
        # last of them in another shard than the running one.
        waiting = []
        while not waiting or s.shard_of(waiting[-1]) == s.shard_of(running):
            waiting.append(self.submit("doc_%d" % len(waiting), metadata=as_caller("10.8.1.%d" % len(waiting))))
        self.assertEqual([self.cancel(tid).state for tid in waiting], [pb.Task.CANCELLED] * len(waiting))
        asked = time.monotonic()
        self.assertEqual(self.cancel(running).state, pb.Task.CANCELLED)
        wait_for(lambda: s.ai_stats()["client_closed"] == 1, timeout=10, interval=0.01,
                 what="the AI service to see the connection closed")
        self.assertLess(time.monotonic() - asked, 1.0, s.logs())
        wait_for(lambda: all(tid + '"' in self.worker_log() for tid in waiting), timeout=10,
                 what="the cancelled PENDING tasks' entries to be acknowledged")
        self.assertIn("task already finished: acknowledging stream entry", self.worker_log())
        stats = s.ai_stats()
        self.assertEqual((stats["requests"], stats["ok"]), (1, 0))
        self.assertFalse([tid for tid in waiting if tid in s.ai.text()])
        self.assertEqual({s.task(t).state for t in [running] + waiting}, {pb.Task.CANCELLED})

    def test_the_cli_cancels_a_task_and_prints_it_as_status_does(self):
        """docq cancel ID cancels the task and prints it as docq status does"""
        s = self.stack.start_redis().start_server()
        tid = self.submit("doc_cli")
        out = s.cli("cancel", tid)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("state:    CANCELLED", out.stdout)
        self.assertIn("error:    " + REASON, out.stdout)
        self.assertIn("finished:", out.stdout)
        self.assertEqual(s.cli("status", tid).stdout, out.stdout)
        watch = s.cli("watch", tid)
        self.assertEqual(watch.returncode, 1, watch.stderr)
        self.assertIn("CANCELLED", watch.stdout)


if __name__ == "__main__":
    unittest.main()
