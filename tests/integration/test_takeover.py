"""Workers that die, stall or stop: their tasks are taken over, never lost and never stolen
from a live worker; entries that keep killing workers end in the dead-letter stream."""
import signal
import time
import unittest

from probes import metrics_port, scrape
from stack import Stack, labels, pb, wait_for
from test_shutdown import VALGRIND, leak_summary

# Short timers so that a takeover happens within a test; the worker keeps
# heartbeat < visibility as in production (5 s < 30 s by default).
FAST = {"DOCQ_VISIBILITY_TIMEOUT_MS": "1000", "DOCQ_HEARTBEAT_MS": "200"}


class Takeover(unittest.TestCase):
    STACK = Stack  # test_cluster_core.py runs some of these tests on a Redis Cluster.

    def setUp(self):
        self.stack = self.STACK()
        self.addCleanup(self.stack.stop)

    def start(self, ai_args, workers=1, **worker_env):
        s = self.stack.start_redis().start_ai(*ai_args)
        s.start_server()
        for _ in range(workers):
            s.start_worker(**dict(FAST, **worker_env))
        return s

    def submit(self, *docs):
        return [self.stack.stub().SubmitDoc(pb.SubmitDocRequest(doc_id=d), timeout=5).task_id for d in docs]

    def kill(self, worker):
        worker.signal(signal.SIGKILL)
        worker.wait()

    def test_an_ai_call_three_times_longer_than_the_visibility_timeout_is_neither_stolen_nor_repeated(self):
        """an AI call three times longer than the visibility timeout is neither stolen nor
        repeated"""
        s = self.start(("--latency-ms", "3000"), workers=2)
        ids = self.submit(*["long_%d" % i for i in range(6)])
        for tid in ids:
            t = s.wait_terminal(tid, timeout=30)
            self.assertEqual(t.state, pb.Task.SUCCESS, s.logs())
            self.assertEqual((t.attempts, t.deliveries), (1, 1))
        stats = s.ai_stats()
        self.assertEqual((stats["requests"], stats["duplicate_tasks"]), (6, 0))
        for w in s.workers:
            self.assertNotIn("taken over", w.text())
            self.assertNotIn("no longer pending", w.text())

    def test_a_task_of_a_worker_killed_mid_call_is_finished_by_another_worker(self):
        """a task of a worker killed mid-call is finished by another worker"""
        s = self.start(("--latency-ms", "1500"), workers=1)
        tid, = self.submit("orphan")
        s.wait_task(tid, lambda t: t.state == pb.Task.STARTED, what="the task to start")
        other = s.start_worker(**FAST)
        self.kill(s.workers[0])
        t = s.wait_terminal(tid, timeout=30)
        self.assertEqual(t.state, pb.Task.SUCCESS, s.logs())
        self.assertEqual((t.attempts, t.deliveries), (2, 2))
        self.assertIn("taken over from a worker that stopped", other.text())
        self.assertEqual(s.pending_count(), 0)
        self.assertEqual(s.queued_count(), 0)

    def test_a_restarted_worker_reclaims_what_its_killed_predecessor_left(self):
        """a restarted worker reclaims what its killed predecessor left"""
        s = self.start(("--latency-ms", "1500"), workers=1, DOCQ_WORKER_CONCURRENCY="4")
        ids = self.submit("r1", "r2", "r3")
        for tid in ids:
            s.wait_task(tid, lambda t: t.state == pb.Task.STARTED, what="the tasks to start")
        self.kill(s.workers[0])
        # The restart has a new consumer name (host-pid-random), so it is XAUTOCLAIM,
        # not the re-read of its own pending entries, that finds them.
        s.start_worker(**dict(FAST, DOCQ_WORKER_CONCURRENCY="4"))
        for tid in ids:
            t = s.wait_terminal(tid, timeout=30)
            self.assertEqual(t.state, pb.Task.SUCCESS, s.logs())
            self.assertEqual(t.deliveries, 2)
        self.assertEqual(s.pending_count(), 0)

    def test_a_worker_presumed_dead_that_comes_back_cannot_overwrite_the_newer_outcome(self):
        """a worker presumed dead that comes back cannot overwrite the newer outcome"""
        s = self.start(("--latency-ms", "1500"), workers=1)
        tid, = self.submit("zombie")
        s.wait_task(tid, lambda t: t.state == pb.Task.STARTED, what="the task to start")
        zombie = s.workers[0]
        zombie.signal(signal.SIGSTOP)  # Alive but silent: no heartbeat, so presumed dead.
        self.addCleanup(zombie.signal, signal.SIGCONT)
        s.start_worker(**FAST)
        done = s.wait_terminal(tid, timeout=30)
        self.assertEqual((done.state, done.attempts, done.deliveries), (pb.Task.SUCCESS, 2, 2), s.logs())
        zombie.signal(signal.SIGCONT)
        # The zombie's own AI answer arrived meanwhile; its write is refused by the fencing.
        wait_for(lambda: "outcome of attempt 1 not written" in zombie.text(), timeout=10,
                 what="the zombie's refused write")
        self.assertEqual(s.task(tid), done)
        self.assertEqual(s.ai_stats()["requests"], 2)
        self.assertEqual(s.pending_count(), 0)

    def test_redis_disconnects_count_no_delivery_so_a_taken_over_task_is_not_dead_lettered(self):
        """Redis disconnects count no delivery, so a task taken over after four of them is not
        dead-lettered"""
        env = dict(FAST, DOCQ_MAX_DELIVERIES="3", DOCQ_WORKER_CONCURRENCY="4")
        s = self.start(("--latency-ms", "120000"), workers=1, **env)
        ids = self.submit("held_1", "held_2", "held_3")
        for tid in ids:
            s.wait_task(tid, lambda t: t.state == pb.Task.STARTED, what="the tasks to start")
        first = s.workers[0]
        for n in range(1, 5):
            # Every connection of every client but redis-cli's own; the worker
            # reconnects and re-reads its own pending entries (XREADGROUP 0).
            s.redis_cli("CLIENT", "KILL", "TYPE", "normal")
            wait_for(lambda: first.text().count("own pending entries re-read") >= n + 1, timeout=30,
                     what="re-read %d of the worker's own entries" % n)
        # Redis counted each re-read as a delivery (1 + 4 at least), as in the report.
        shard = s.shard_of(ids[0])
        info = s.redis_cli("XPENDING", s.stream_key(shard), "workers", "-", "+", "10").splitlines()
        self.assertEqual(len(info[3::4]), 3, info)
        self.assertTrue(all(int(n) >= 5 for n in info[3::4]), info)
        for tid in ids:
            self.assertEqual(s.task(tid).deliveries, 1)
        self.kill(first)
        s.ai.kill()
        s.start_ai(port=s.ai_port)  # Now quick, for the worker that takes over.
        s.start_worker(**env)
        for tid in ids:
            t = s.wait_terminal(tid, timeout=30)
            self.assertEqual(t.state, pb.Task.SUCCESS, t.error + s.logs())
            self.assertLessEqual(t.deliveries, 2)
        self.assertEqual(s.queued_count("dead"), 0)
        self.assertEqual(s.pending_count(), 0)

    def test_an_entry_delivered_more_than_max_deliveries_times_is_dead_lettered_and_its_task_fails(self):
        """an entry delivered more than DOCQ_MAX_DELIVERIES times is dead-lettered and its task
        fails"""
        env = {"DOCQ_MAX_DELIVERIES": "2"}
        s = self.start(("--latency-ms", "60000"), workers=1, **env)
        tid, = self.submit("poison")
        shard = s.shard_of(tid)
        for delivery in (1, 2):
            s.wait_task(tid, lambda t: t.state == pb.Task.STARTED and t.deliveries == delivery,
                        what="delivery %d" % delivery)
            # The start is written just before the AI call is sent: kill the
            # worker only once the AI has the call.
            wait_for(lambda: s.ai_stats()["requests"] == delivery, what="AI call %d" % delivery)
            self.kill(s.workers[-1])
            s.start_worker(**dict(FAST, **env))
        t = s.wait_terminal(tid, timeout=30)
        self.assertEqual(t.state, pb.Task.FAILURE)
        self.assertIn("dead-letter stream docq:{s%d}:dead after 3 deliveries" % shard, t.error)
        self.assertEqual(t.deliveries, 3)
        self.assertEqual(t.attempts, 2)
        dead = s.redis_cli("XRANGE", s.stream_key(shard, "dead"), "-", "+").splitlines()
        self.assertIn(tid, dead)
        self.assertIn("poison", dead)
        self.assertEqual(dead[dead.index("deliveries") + 1], "3")
        self.assertEqual(s.queued_count("dead"), 1)
        self.assertEqual(s.queued_count(), 0)
        self.assertEqual(s.pending_count(), 0)
        self.assertEqual(s.ai_stats()["requests"], 2)
        # The worker that dead-lettered it counts it.
        metrics = scrape(metrics_port(s.workers[-1]))
        self.assertEqual(metrics["docq_dead_lettered_total"].value(), 1)
        self.assertEqual(metrics["docq_tasks_total"].value(outcome="dead_lettered"), 1)


class Drain(unittest.TestCase):
    """SIGTERM: stop reading, let calls in flight finish within the grace, leave the rest pending."""

    def setUp(self):
        self.stack = Stack()
        self.addCleanup(self.stack.stop)

    def submit(self, *docs):
        return [self.stack.stub().SubmitDoc(pb.SubmitDocRequest(doc_id=d), timeout=5).task_id for d in docs]

    def test_sigterm_lets_calls_in_flight_finish_writes_their_outcomes_and_exits_0(self):
        """SIGTERM lets calls in flight finish, writes their outcomes and exits 0"""
        s = self.stack.start_all(workers=1, ai_args=("--latency-ms", "1500"), **FAST)
        ids = self.submit(*["drain_%d" % i for i in range(5)])
        for tid in ids:
            s.wait_task(tid, lambda t: t.state == pb.Task.STARTED, what="the tasks to start")
        w = s.workers[0]
        w.signal(signal.SIGTERM)
        wait_for(lambda: "stopping: waiting up to" in w.text(), what="the worker to begin stopping")
        time.sleep(0.2)  # Its blocked read is cut short right after that line.
        late, = self.submit("after_sigterm")
        self.assertEqual(w.wait(timeout=30), 0, w.text()[-3000:])
        for tid in ids:
            t = s.task(tid)
            self.assertEqual((t.state, t.attempts), (pb.Task.SUCCESS, 1))
        # A stopping worker reads nothing new.
        self.assertEqual(s.task(late).state, pb.Task.PENDING)
        self.assertEqual(s.pending_count(), 0)
        self.assertRegex(w.text(), r"worker \S+ stopped")

    def test_sigterm_past_the_grace_leaves_tasks_pending_and_another_worker_finishes_them(self):
        """SIGTERM past the grace leaves tasks pending and another worker finishes them"""
        s = self.stack.start_all(workers=1, ai_args=("--latency-ms", "4000"),
                                 DOCQ_SHUTDOWN_GRACE_MS="300", **FAST)
        ids = self.submit("cut_1", "cut_2", "cut_3")
        for tid in ids:
            s.wait_task(tid, lambda t: t.state == pb.Task.STARTED, what="the tasks to start")
        w = s.workers[0]
        t0 = time.monotonic()
        w.signal(signal.SIGTERM)
        self.assertEqual(w.wait(timeout=30), 0, w.text()[-3000:])
        self.assertLess(time.monotonic() - t0, 3.0)
        self.assertIn("3 tasks left pending", w.text())
        for tid in ids:
            self.assertEqual(s.task(tid).state, pb.Task.STARTED)  # Not failed.
        self.assertEqual(s.pending_count(), 3)
        s.start_worker(**FAST)
        for tid in ids:
            t = s.wait_terminal(tid, timeout=30)
            self.assertEqual(t.state, pb.Task.SUCCESS, s.logs())
            self.assertEqual(t.deliveries, 2)
        self.assertEqual(s.pending_count(), 0)

    def test_a_worker_stopping_while_a_task_waits_for_its_retry_leaves_it_to_another_worker(self):
        """a worker stopping while a task waits for its retry leaves it to another worker"""
        s = self.stack.start_all(workers=1, ai_args=("--fail-status", "503", "--fail-first", "1"),
                                 DOCQ_RETRY_BASE_MS="20000", DOCQ_RETRY_MAX_MS="20000", **FAST)
        tid, = self.submit("waiting")
        s.wait_task(tid, lambda t: "HTTP 503" in t.error, what="the failure to be recorded")
        w = s.workers[0]
        t0 = time.monotonic()
        w.signal(signal.SIGTERM)
        self.assertEqual(w.wait(timeout=30), 0, w.text()[-3000:])
        self.assertLess(time.monotonic() - t0, 5.0)  # Not the 10-20 s backoff, nor the 30 s grace.
        self.assertEqual(s.task(tid).state, pb.Task.STARTED)
        s.start_worker(DOCQ_RETRY_BASE_MS="50", **FAST)
        t = s.wait_terminal(tid, timeout=30)
        self.assertEqual(t.state, pb.Task.SUCCESS, s.logs())
        self.assertEqual((t.attempts, t.deliveries), (2, 2))

    @labels("valgrind")
    def test_a_worker_that_reclaimed_and_retried_stops_on_sigterm_with_no_leaks_under_valgrind(self):
        """a worker that reclaimed and retried stops on SIGTERM with no leaks under valgrind"""
        s = self.stack.start_redis().start_ai("--latency-ms", "800", "--fail-status", "503", "--fail-first", "1")
        s.start_server()
        # A worker killed mid-call leaves an entry for the valgrind worker to reclaim.
        first = s.start_worker(**FAST)
        orphan, = self.submit("orphan")
        s.wait_task(orphan, lambda t: t.state == pb.Task.STARTED, what="the orphan to start")
        first.signal(signal.SIGKILL)
        first.wait()
        w = s.start_worker(wrap=VALGRIND, DOCQ_RETRY_BASE_MS="20000", DOCQ_RETRY_MAX_MS="20000",
                           DOCQ_SHUTDOWN_GRACE_MS="300", **FAST)
        t = s.wait_terminal(orphan, timeout=60)
        self.assertEqual((t.state, t.deliveries), (pb.Task.SUCCESS, 2), s.logs())
        # Then one task waits for its retry and another is mid-call when SIGTERM comes.
        waiting, = self.submit("waits")
        s.wait_task(waiting, lambda t: "HTTP 503" in t.error, timeout=30, what="a failure to be recorded")
        calling, = self.submit("calls")
        s.wait_task(calling, lambda t: t.state == pb.Task.STARTED, timeout=30, what="the call to start")
        w.signal(signal.SIGTERM)
        self.assertEqual(w.wait(timeout=60), 0, w.text()[-3000:])
        self.assertEqual(leak_summary(w.text()), 0, w.text()[-3000:])
        self.assertIn("ERROR SUMMARY: 0 errors", w.text())
        self.assertIn("retry left to another worker", w.text())
        for tid in (waiting, calling):
            self.assertEqual(s.task(tid).state, pb.Task.STARTED)


if __name__ == "__main__":
    unittest.main()
