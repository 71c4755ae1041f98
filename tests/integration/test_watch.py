"""WatchStatus: every change of a task streamed as it happens, to many watchers,
through cancellations, SIGTERM and a Redis restart."""
import signal
import threading
import time
import unittest

import grpc

from h2raw import Connection
from probes import metrics_port, scrape
from stack import Stack, pb, wait_for

TERMINAL = (pb.Task.SUCCESS, pb.Task.FAILURE)
WATCH = "/docq.v1.DocQueue/WatchStatus"


class Watcher(threading.Thread):
    """Reads one WatchStatus stream to its end in a thread of its own, keeping
    every message and how the stream ended."""

    def __init__(self, stub, task_id, after_version=0, timeout=120):
        super().__init__(daemon=True)
        self.call = stub.WatchStatus(pb.WatchStatusRequest(task_id=task_id, after_version=after_version),
                                     timeout=timeout)
        self.messages = []
        self.code = None
        self.details = None
        self.ended_at = None
        self.start()

    def run(self):
        try:
            for m in self.call:
                self.messages.append(m)
            self.code = grpc.StatusCode.OK
        except grpc.RpcError as e:
            self.code, self.details = e.code(), e.details()
        self.ended_at = time.monotonic()

    def finish(self, timeout=60):
        self.join(timeout)
        if self.is_alive():
            raise AssertionError("watch still open after %ss: %s" % (timeout, self.messages))
        return self


def submit(stub, n, prefix="doc"):
    return [stub.SubmitDoc(pb.SubmitDocRequest(doc_id="%s_%d" % (prefix, i)), timeout=10).task_id
            for i in range(n)]


def check_stream(test, msgs, where):
    """The rules every finished watch follows: versions never go back and
    none is sent twice, a same-version repeat is a PENDING position change,
    known positions never grow, and the last message is terminal."""
    test.assertTrue(msgs, where)
    seen = set()
    for prev, cur in zip(msgs, msgs[1:]):
        test.assertGreaterEqual(cur.version, prev.version, where)
        if cur.version == prev.version:
            test.assertEqual(cur.state, pb.Task.PENDING, where)
            test.assertNotEqual(cur.queue_position, prev.queue_position, where)
            if prev.queue_position:  # 0 is "not known yet" (no worker has joined).
                test.assertLess(cur.queue_position, prev.queue_position, where)
    for m in msgs:
        key = (m.version, m.queue_position)
        test.assertNotIn(key, seen, "%s: %s sent twice" % (where, key))
        seen.add(key)
    test.assertIn(msgs[-1].state, TERMINAL, where)


class Watch(unittest.TestCase):
    STACK = Stack  # test_cluster_core.py runs some of these tests on a Redis Cluster.

    def setUp(self):
        self.stack = self.STACK()
        self.addCleanup(self.stack.stop)

    def test_every_transition_arrives_in_order_for_200_concurrent_watched_tasks(self):
        """every transition arrives in order for 200 concurrent watched tasks"""
        s = self.stack
        s.start_redis().start_ai("--latency-ms", "500").start_server(DOCQ_POSITION_REFRESH_MS="200")
        stub = s.stub()
        ids = submit(stub, 200)
        watchers = [Watcher(stub, tid) for tid in ids]
        wait_for(lambda: all(w.messages for w in watchers), timeout=30, what="every watch's first message")
        for w in watchers:
            first = w.messages[0]
            self.assertEqual((first.state, first.version), (pb.Task.PENDING, 1))
        s.start_worker()
        s.start_worker()
        for tid, w in zip(ids, watchers):
            w.finish(timeout=120)
            self.assertEqual(w.code, grpc.StatusCode.OK, (tid, w.details, s.logs()))
            check_stream(self, w.messages, tid)
            # Every change arrived, in order: one distinct version per state.
            versions = []
            for m in w.messages:
                if not versions or versions[-1][0] != m.version:
                    versions.append((m.version, m.state))
            self.assertEqual(versions, [(1, pb.Task.PENDING), (2, pb.Task.STARTED), (3, pb.Task.SUCCESS)],
                             (tid, w.messages))
            last = w.messages[-1]
            self.assertEqual(last.task_id, tid)
            self.assertEqual(last.attempts, 1)
            self.assertIn("processed", last.result)
            self.assertTrue(last.HasField("finished_at"))
        self.assertEqual(s.open_watches(), 0)

    def test_a_retried_task_streams_each_failure_and_attempt_in_order(self):
        """a retried task streams each failure and attempt to its watchers in order"""
        # The worker's retry path changes the record too (the error, then
        # the next attempt): each of those is a version the watcher sees.
        s = self.stack
        s.start_redis().start_ai("--fail-status", "503", "--fail-first", "1", "--latency-ms", "300")
        s.start_server()
        stub = s.stub()
        tid = submit(stub, 1)[0]
        w = Watcher(stub, tid)
        wait_for(lambda: w.messages, what="the first message")
        s.start_worker(DOCQ_RETRY_BASE_MS="600")
        w.finish(timeout=60)
        self.assertEqual(w.code, grpc.StatusCode.OK, (w.details, s.logs()))
        check_stream(self, w.messages, tid)
        changes = [(m.version, pb.Task.State.Name(m.state), m.attempts, bool(m.error)) for m in w.messages]
        self.assertEqual(changes, [(1, "PENDING", 0, False), (2, "STARTED", 1, False), (3, "STARTED", 1, True),
                                   (4, "STARTED", 2, True), (5, "SUCCESS", 2, False)], w.messages)
        self.assertIn("503", w.messages[2].error)

    def test_a_watch_reopened_with_after_version_gets_only_newer_versions(self):
        """a watch reopened with after_version gets only newer versions"""
        s = self.stack
        s.start_redis().start_ai("--latency-ms", "800").start_server()
        stub = s.stub()
        tid = submit(stub, 1)[0]
        first = stub.WatchStatus(pb.WatchStatusRequest(task_id=tid), timeout=30)
        m = next(first)
        self.assertEqual((m.state, m.version), (pb.Task.PENDING, 1))
        first.cancel()

        s.start_worker()
        resumed = Watcher(stub, tid, after_version=1).finish()
        self.assertEqual(resumed.code, grpc.StatusCode.OK, resumed.details)
        self.assertEqual([(m.version, m.state) for m in resumed.messages],
                         [(2, pb.Task.STARTED), (3, pb.Task.SUCCESS)])

        # Resuming a finished task: only what is newer, then the end.
        late = Watcher(stub, tid, after_version=2).finish()
        self.assertEqual([(m.version, m.state) for m in late.messages], [(3, pb.Task.SUCCESS)])
        self.assertEqual(late.code, grpc.StatusCode.OK)
        done = Watcher(stub, tid, after_version=3).finish()
        self.assertEqual(done.messages, [])
        self.assertEqual(done.code, grpc.StatusCode.OK)
        # A new watch of a finished task gets its final state and ends.
        fresh = Watcher(stub, tid).finish()
        self.assertEqual([(m.version, m.state) for m in fresh.messages], [(3, pb.Task.SUCCESS)])

    def test_cancelling_1000_watches_returns_the_watch_count_and_held_bytes_to_zero(self):
        """cancelling 1000 watches four times returns the open watch count and the held bytes to
        zero"""
        # What the server accounts for itself, not RSS: how much memory a
        # process keeps after free() depends on the allocator (a fresh
        # Debian 12 root kept 4 MB more than a warm one after the same
        # rounds), so RSS figures belong in bench/, not in assertions.
        s = self.stack
        s.start_redis().start_server()
        port, stub = metrics_port(s.server), s.stub()
        ids = submit(stub, 250)
        cancelled = [0]

        def gauges():
            page = scrape(port)
            return page["docq_watches_open"].value(), page["docq_watch_held_bytes"].value()

        def round_of_watches():
            calls = []
            for tid in ids:
                for _ in range(4):
                    call = stub.WatchStatus(pb.WatchStatusRequest(task_id=tid), timeout=60)
                    calls.append(call)
            for call in calls:
                self.assertEqual(next(call).state, pb.Task.PENDING)
            wait_for(lambda: s.open_watches() == 1000, what="1000 open watches")
            open_, held = gauges()
            self.assertEqual(open_, 1000)
            # One packed record per watched task, shared by its 4 watches.
            self.assertGreater(held, 250 * 20)
            self.assertLess(held, 250 * 1000)
            for call in calls:
                call.cancel()
            cancelled[0] += 1000
            wait_for(lambda: s.server.text().count("watch cancelled") == cancelled[0], timeout=30,
                     what="every cancellation to reach the server")
            self.assertEqual(gauges(), (0, 0))

        for n in range(1, 5):
            round_of_watches()
            # The server hands freed memory back to the system once a wave of
            # watches has ended (at its next position-refresh tick).
            wait_for(lambda: s.server.text().count(" to 0, in ") >= n, timeout=20,
                     what="the server to trim its memory")
        # The server still serves watches afterwards.
        m = next(stub.WatchStatus(pb.WatchStatusRequest(task_id=ids[0]), timeout=10))
        self.assertEqual(m.task_id, ids[0])

    def test_watches_of_large_results_hold_one_copy_each_within_the_watch_result_budget(self):
        """watches of large results hold one copy each, within DOCQ_WATCH_RESULT_BYTES, as
        /metrics accounts"""
        s = self.stack
        pad, budget = 1_000_000, 3_500_000
        s.start_redis().start_ai("--pad-bytes", str(pad), "--latency-ms", "100")
        s.start_server(DOCQ_MAX_WATCHES_PER_CALLER="0", DOCQ_WATCH_RESULT_BYTES=str(budget))
        port, stub = metrics_port(s.server), s.stub()

        def held():
            return scrape(port)["docq_watch_held_bytes"].value()

        tids = submit(stub, 8)
        # A reader that grants a window of one byte: its 10 watches of each
        # task stay open, so the hub keeps each task's newest record.
        slow = Connection(s.server_port, window=1)
        self.assertTrue(slow.settings_acked.wait(10))
        for i in range(80):
            slow.open_stream(WATCH, pb.WatchStatusRequest(task_id=tids[i % 8]).SerializeToString())
        wait_for(lambda: s.open_watches() == 80, timeout=30, what="the slow reader's 80 watches")
        fast = [Watcher(stub, t) for t in tids]
        wait_for(lambda: s.open_watches() == 88, timeout=30, what="the 8 normal watches")
        s.start_worker()
        for w in fast:
            w.finish()
        ok = [w for w in fast if w.code == grpc.StatusCode.OK]
        refused = [w for w in fast if w.code != grpc.StatusCode.OK]
        # Three 1 MB results fit the budget, held once for their 11 watches
        # each (two copies per watch would be 22 MB per task); the others'
        # watches end saying how to read the task, which GetStatus returns whole.
        self.assertEqual(len(ok), 3, [(w.code, w.details) for w in fast])
        for w in ok:
            self.assertEqual(w.messages[-1].state, pb.Task.SUCCESS)
            self.assertGreater(len(w.messages[-1].result), pad)
        for w in refused:
            self.assertEqual(w.code, grpc.StatusCode.RESOURCE_EXHAUSTED, w.details)
            self.assertIn("GetStatus", w.details)
            self.assertIn("DOCQ_WATCH_RESULT_BYTES", w.details)
            got = stub.GetStatus(pb.GetStatusRequest(task_id=w.messages[0].task_id), timeout=10)
            self.assertEqual(got.state, pb.Task.SUCCESS)
            self.assertGreater(len(got.result), pad)
        self.assertGreater(held(), 3 * pad)
        self.assertLessEqual(held(), budget)
        # The reader goes away: the hub holds nothing more.
        slow.close()
        wait_for(lambda: s.open_watches() == 0, timeout=30, what="the slow reader's watches to end")
        wait_for(lambda: held() == 0, timeout=10, what="the held bytes to go back to 0")
        # Memory freed, a watch reopened on a refused task gets its result.
        again = Watcher(stub, refused[0].messages[0].task_id).finish()
        self.assertEqual(again.code, grpc.StatusCode.OK, again.details)
        self.assertGreater(len(again.messages[-1].result), pad)

    def test_sigterm_ends_open_watches_with_unavailable_within_the_grace_period(self):
        """SIGTERM ends open watches with UNAVAILABLE within the grace period and the server
        exits 0"""
        s = self.stack
        s.start_redis().start_server(DOCQ_SHUTDOWN_GRACE_MS="20000")
        stub = s.stub()
        ids = submit(stub, 25)
        watchers = [Watcher(stub, tid) for tid in ids for _ in range(2)]
        wait_for(lambda: all(w.messages for w in watchers), what="every watch to open")
        t0 = time.monotonic()
        s.server.signal(signal.SIGTERM)
        for w in watchers:
            w.finish(timeout=20)
            self.assertEqual(w.code, grpc.StatusCode.UNAVAILABLE, w.details)
            self.assertEqual(w.details, "server shutting down; reopen the watch")
        self.assertEqual(s.server.wait(timeout=20), 0, s.server.text()[-3000:])
        took = time.monotonic() - t0
        # Well within the 20 s grace: the watches were ended, not waited for.
        self.assertLess(took, 10, s.server.text()[-3000:])
        self.assertNotIn("cancelling them", s.server.text())
        self.assertIn("docq-server stopped", s.server.text())

    def test_a_redis_restart_during_watches_loses_no_terminal_state(self):
        """a Redis restart during watches loses no terminal state"""
        s = self.stack
        s.start_redis(persist=True).start_ai("--latency-ms", "1500").start_server()
        stub = s.stub()
        ids = submit(stub, 40)
        watchers = [Watcher(stub, tid) for tid in ids]
        wait_for(lambda: all(w.messages for w in watchers), what="every watch to open")
        s.start_worker()
        wait_for(lambda: all(any(m.state == pb.Task.STARTED for m in w.messages) for w in watchers),
                 timeout=30, what="every task to start")
        # Redis dies while every AI call is in flight and comes back with its
        # data; the outcomes are written, and published, after the restart.
        s.stop_redis()
        time.sleep(0.5)
        s.start_redis(persist=True)
        for tid, w in zip(ids, watchers):
            w.finish(timeout=60)
            self.assertEqual(w.code, grpc.StatusCode.OK, (tid, w.details, s.logs()))
            self.assertEqual(w.messages[-1].state, pb.Task.SUCCESS, (tid, w.messages))
            self.assertEqual(w.messages[-1].version, 3)
            check_stream(self, w.messages, tid)
        self.assertIn("subscription lost", s.server.text())
        self.assertEqual(s.ai_stats()["duplicate_tasks"], 0)

    def test_the_queue_position_shows_while_pending_and_falls_as_tasks_start(self):
        """the queue position shows while PENDING, in GetStatus too, and falls as tasks start"""
        s = self.stack = Stack(shards=1)
        self.addCleanup(s.stop)
        s.start_redis().start_ai("--latency-ms", "2000").start_server(DOCQ_POSITION_REFRESH_MS="200")
        s.start_worker(DOCQ_WORKER_CONCURRENCY="1")
        stub = s.stub()
        wait_for(lambda: s.redis_cli("EXISTS", "docq:{s0}:tasks") == "1", what="the worker's consumer group")
        ids = submit(stub, 5)
        last = Watcher(stub, ids[-1])
        wait_for(lambda: stub.GetStatus(pb.GetStatusRequest(task_id=ids[0]), timeout=5).state == pb.Task.STARTED,
                 what="the first task to start")
        # One task runs; the four behind it are next in line in order.
        statuses = [stub.GetStatus(pb.GetStatusRequest(task_id=tid), timeout=5) for tid in ids]
        self.assertEqual(statuses[0].queue_position, 0)
        self.assertEqual([t.queue_position for t in statuses[1:]], [1, 2, 3, 4])
        self.assertTrue(all(t.state == pb.Task.PENDING for t in statuses[1:]))
        self.assertTrue(all(t.version == 1 for t in statuses[1:]))
        shown = s.cli("status", ids[2])
        self.assertEqual(shown.returncode, 0, shown.stderr)
        self.assertRegex(shown.stdout, r"position: +[12] \(1 = next\)")
        last.finish(timeout=60)
        self.assertEqual(last.code, grpc.StatusCode.OK, last.details)
        check_stream(self, last.messages, ids[-1])
        pending = [m.queue_position for m in last.messages if m.state == pb.Task.PENDING]
        # Each position lasted an AI call (2 s), refreshed every 200 ms: the
        # watcher saw every step down to 1.
        self.assertEqual(pending[-4:], [4, 3, 2, 1], last.messages)
        self.assertTrue(all(m.version == 1 for m in last.messages if m.state == pb.Task.PENDING))
        self.assertEqual([m.state for m in last.messages if m.state != pb.Task.PENDING],
                         [pb.Task.STARTED, pb.Task.SUCCESS])
        self.assertEqual(last.messages[-1].queue_position, 0)


if __name__ == "__main__":
    unittest.main()
