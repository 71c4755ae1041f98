"""Many AI calls in flight in one worker process: up to its concurrency and never more,
over reused keep-alive connections."""
import unittest

from stack import Stack, pb


class Concurrency(unittest.TestCase):
    def setUp(self):
        self.stack = Stack()
        self.addCleanup(self.stack.stop)

    def submit_many(self, n, prefix):
        stub = self.stack.stub()
        futures = [stub.SubmitDoc.future(pb.SubmitDocRequest(doc_id="%s_%d" % (prefix, i)), timeout=30)
                   for i in range(n)]
        return [f.result().task_id for f in futures]

    def test_one_worker_keeps_its_concurrency_of_ai_calls_in_flight_and_never_more(self):
        """one worker keeps its concurrency of AI calls in flight and never more"""
        s = self.stack.start_redis().start_ai("--latency-ms", "500")
        s.start_server()
        ids = self.submit_many(120, "c")
        s.start_worker(DOCQ_WORKER_CONCURRENCY="24")
        for tid in ids:
            self.assertEqual(s.wait_terminal(tid, timeout=60).state, pb.Task.SUCCESS, s.logs())
        stats = s.ai_stats()
        self.assertEqual(stats["max_in_flight"], 24)
        self.assertEqual((stats["requests"], stats["duplicate_tasks"]), (120, 0))

    def test_ai_calls_reuse_keep_alive_connections(self):
        """AI calls reuse keep-alive connections"""
        s = self.stack.start_all(workers=1, ai_args=("--latency-ms", "5"), DOCQ_WORKER_CONCURRENCY="8")
        ids = self.submit_many(300, "k")
        for tid in ids:
            self.assertEqual(s.wait_terminal(tid, timeout=60).state, pb.Task.SUCCESS, s.logs())
        stats = s.ai_stats()
        self.assertEqual(stats["requests"], 300)
        # At most one connection per slot, plus this test's own /stats request.
        self.assertLessEqual(stats["connections"], 8 + 1)


if __name__ == "__main__":
    unittest.main()
