"""A flaky AI: transient failures are retried with backoff, permanent ones end the task at once.

The AI here is docq-fake-ai with injected failures; every answer it gives is
logged (--log-requests 1), so the tests read the real time between a task's
calls from its log.
"""
import signal
import unittest

from stack import Stack, pb, wait_for

SLACK = 1.5  # Seconds a retry may come late on a loaded machine; only upper bounds use it.


class Retries(unittest.TestCase):
    def setUp(self):
        self.stack = Stack()
        self.addCleanup(self.stack.stop)

    def start(self, ai_args, workers=1, **worker_env):
        s = self.stack.start_redis().start_ai("--log-requests", "1", *ai_args)
        s.start_server()
        for _ in range(workers):
            s.start_worker(**worker_env)
        return s

    def submit(self, *docs):
        return [self.stack.stub().SubmitDoc(pb.SubmitDocRequest(doc_id=d), timeout=5).task_id for d in docs]

    def gaps(self, task_id):
        """Seconds between a task's successive AI answers."""
        times = [t for t, tid, _, _ in self.stack.ai_answers() if tid == task_id]
        return [b - a for a, b in zip(times, times[1:])]

    def test_a_transient_failure_is_retried_with_a_doubling_jittered_backoff_until_it_succeeds(self):
        """a transient AI failure is retried with a doubling jittered backoff until it succeeds"""
        s = self.start(("--fail-status", "503", "--fail-first", "3"),
                       DOCQ_RETRY_BASE_MS="300", DOCQ_MAX_ATTEMPTS="5")
        ids = self.submit(*["doc_%d" % i for i in range(6)])
        last_gaps = []
        for tid in ids:
            t = s.wait_terminal(tid, timeout=30)
            self.assertEqual(t.state, pb.Task.SUCCESS, s.logs())
            self.assertEqual(t.attempts, 4)
            self.assertEqual(t.deliveries, 1)
            self.assertEqual(t.error, "")
            statuses = [st for _, x, st, _ in s.ai_answers() if x == tid]
            self.assertEqual(statuses, [503, 503, 503, 200])
            gaps = self.gaps(tid)
            # Retry k waits a random time in [base * 2^(k-1) / 2, base * 2^(k-1)].
            for k, gap in enumerate(gaps, start=1):
                step = 0.3 * 2 ** (k - 1)
                self.assertGreaterEqual(gap, step / 2 - 0.01, (tid, gaps))
                self.assertLessEqual(gap, step + SLACK, (tid, gaps))
            last_gaps.append(gaps[2])
        # Jitter: six tasks that failed together do not retry in lockstep.
        self.assertGreater(max(last_gaps) - min(last_gaps), 0.02, last_gaps)
        self.assertEqual(s.ai_stats()["requests"], 24)

    def test_a_task_waiting_for_its_retry_shows_started_with_its_attempts_and_last_error(self):
        """a task waiting for its retry shows STARTED with its attempts and last error"""
        s = self.start(("--fail-status", "502", "--fail-first", "1"), DOCQ_RETRY_BASE_MS="4000")
        tid, = self.submit("doc_wait")
        t = s.wait_task(tid, lambda t: t.error != "", what="the failure to be recorded")
        self.assertEqual(t.state, pb.Task.STARTED)
        self.assertEqual(t.attempts, 1)
        self.assertIn("HTTP 502", t.error)
        self.assertIn("injected failure", t.error)
        t = s.wait_terminal(tid, timeout=30)
        self.assertEqual(t.state, pb.Task.SUCCESS, s.logs())
        self.assertEqual(t.attempts, 2)
        self.assertEqual(t.error, "")
        self.assertGreaterEqual(self.gaps(tid)[0], 2.0)

    def test_retry_after_from_the_ai_sets_the_wait_before_the_retry(self):
        """Retry-After from the AI sets the wait before the retry"""
        s = self.start(("--fail-status", "503", "--fail-first", "1", "--retry-after", "2"),
                       DOCQ_RETRY_BASE_MS="50")
        tid, = self.submit("doc_ra")
        self.assertEqual(s.wait_terminal(tid, timeout=30).state, pb.Task.SUCCESS, s.logs())
        gap, = self.gaps(tid)
        self.assertGreaterEqual(gap, 2.0 - 0.01)
        self.assertLessEqual(gap, 2.0 + SLACK)

    def test_a_retry_after_beyond_the_retry_maximum_is_cut_to_it(self):
        """a Retry-After beyond DOCQ_RETRY_MAX_MS is cut to it"""
        s = self.start(("--fail-status", "429", "--fail-first", "1", "--retry-after", "3600"),
                       DOCQ_RETRY_BASE_MS="50", DOCQ_RETRY_MAX_MS="1000")
        tid, = self.submit("doc_ra_long")
        self.assertEqual(s.wait_terminal(tid, timeout=30).state, pb.Task.SUCCESS, s.logs())
        gap, = self.gaps(tid)
        self.assertGreaterEqual(gap, 1.0 - 0.01)
        self.assertLessEqual(gap, 1.0 + SLACK)

    def test_a_permanent_ai_failure_ends_the_task_as_failure_at_once(self):
        """a permanent AI failure ends the task as FAILURE at once"""
        s = self.start(("--fail-status", "404"), DOCQ_RETRY_BASE_MS="50")
        ids = self.submit("doc_a", "doc_b", "doc_c")
        for tid in ids:
            t = s.wait_terminal(tid)
            self.assertEqual(t.state, pb.Task.FAILURE)
            self.assertIn("HTTP 404", t.error)
            self.assertNotIn("gave up", t.error)
            self.assertEqual(t.attempts, 1)
        self.assertEqual(s.ai_stats()["requests"], 3)

    def test_a_rejected_document_fails_at_once_while_the_others_succeed(self):
        """a rejected document fails at once while the others succeed"""
        s = self.start(("--reject-prefix", "bad_", "--reject-status", "400"), DOCQ_RETRY_BASE_MS="50")
        bad, good = self.submit("bad_doc", "good_doc")
        t = s.wait_terminal(bad)
        self.assertEqual((t.state, t.attempts), (pb.Task.FAILURE, 1))
        self.assertIn("HTTP 400", t.error)
        self.assertIn("rejected document", t.error)
        self.assertEqual(s.wait_terminal(good).state, pb.Task.SUCCESS)
        self.assertEqual(s.ai_stats()["requests"], 2)

    def test_a_task_whose_ai_keeps_failing_transiently_fails_after_max_attempts_saying_so(self):
        """a task whose AI keeps failing transiently fails after DOCQ_MAX_ATTEMPTS attempts
        saying so"""
        s = self.start(("--fail-status", "503"), DOCQ_RETRY_BASE_MS="50", DOCQ_MAX_ATTEMPTS="3")
        tid, = self.submit("doc_down")
        t = s.wait_terminal(tid, timeout=30)
        self.assertEqual(t.state, pb.Task.FAILURE)
        self.assertEqual(t.attempts, 3)
        self.assertIn("HTTP 503", t.error)
        self.assertIn("gave up after 3 attempts", t.error)
        self.assertEqual(s.ai_stats()["requests"], 3)

    def test_http_429_is_retried(self):
        """HTTP 429 is retried"""
        s = self.start(("--fail-status", "429", "--fail-first", "2"), DOCQ_RETRY_BASE_MS="50")
        tid, = self.submit("doc_429")
        t = s.wait_terminal(tid, timeout=30)
        self.assertEqual((t.state, t.attempts), (pb.Task.SUCCESS, 3), s.logs())

    def test_an_ai_call_that_times_out_is_retried(self):
        """an AI call that times out is retried"""
        s = self.start(("--latency-ms", "2000"), DOCQ_AI_TIMEOUT_MS="300", DOCQ_RETRY_BASE_MS="50",
                       DOCQ_MAX_ATTEMPTS="2")
        tid, = self.submit("doc_slow")
        t = s.wait_terminal(tid, timeout=30)
        self.assertEqual(t.state, pb.Task.FAILURE)
        self.assertEqual(t.attempts, 2)
        self.assertIn("Timeout", t.error)
        self.assertIn("gave up after 2 attempts", t.error)
        wait_for(lambda: s.ai_stats()["requests"] == 2, what="both timed-out calls to reach the AI")

    def test_an_unreachable_ai_is_retried_until_it_comes_up(self):
        """an unreachable AI is retried until it comes up"""
        s = self.stack
        s.start_redis().start_ai()
        port = s.ai_port
        s.ai.signal(signal.SIGTERM)
        s.ai.wait()
        s.start_server()
        s.start_worker(DOCQ_AI_CONNECT_TIMEOUT_MS="500", DOCQ_RETRY_BASE_MS="200", DOCQ_RETRY_MAX_MS="400",
                       DOCQ_MAX_ATTEMPTS="100")
        tid, = self.submit("doc_later")
        t = s.wait_task(tid, lambda t: "AI call failed" in t.error, what="a connection failure to be recorded")
        self.assertEqual(t.state, pb.Task.STARTED)
        s.start_ai(port=port)
        t = s.wait_terminal(tid, timeout=30)
        self.assertEqual(t.state, pb.Task.SUCCESS, s.logs())
        self.assertGreaterEqual(t.attempts, 2)
        self.assertEqual(s.ai_stats()["requests"], 1)


if __name__ == "__main__":
    unittest.main()
