"""Redis going away: clear UNAVAILABLE, no crash, and service resumes by itself."""
import signal
import unittest

import grpc

from stack import Stack, pb, wait_for


class RedisOutage(unittest.TestCase):
    def setUp(self):
        self.stack = Stack()
        self.addCleanup(self.stack.stop)

    def submit(self, doc):
        return self.stack.stub().SubmitDoc(pb.SubmitDocRequest(doc_id=doc), timeout=5)

    def test_calls_are_unavailable_while_redis_is_down_and_everything_recovers_after(self):
        """calls are UNAVAILABLE while Redis is down and everything recovers after"""
        s = self.stack.start_all(workers=2)
        before = self.submit("before")
        self.assertEqual(s.wait_terminal(before.task_id).state, pb.Task.SUCCESS)

        s.stop_redis()
        for call, req in [(s.stub().SubmitDoc, pb.SubmitDocRequest(doc_id="during")),
                          (s.stub().GetStatus, pb.GetStatusRequest(task_id=before.task_id))]:
            with self.assertRaises(grpc.RpcError) as cm:
                call(req, timeout=5)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
            self.assertIn("redis", cm.exception.details())
        self.assertTrue(s.server.alive())
        for w in s.workers:
            self.assertTrue(w.alive(), s.logs())

        # A restarted Redis without persistence has lost the streams and the
        # consumer group: the workers must re-create it by themselves.
        s.start_redis()

        def submit_ok():
            try:
                return self.submit("after")
            except grpc.RpcError:
                return None
        after = wait_for(submit_ok, timeout=10, what="the server to serve again")
        t = s.wait_terminal(after.task_id, timeout=30)
        self.assertEqual(t.state, pb.Task.SUCCESS, s.logs())
        self.assertEqual(s.ai_stats()["duplicate_tasks"], 0)

    def test_a_server_started_before_redis_serves_once_redis_is_up(self):
        """a server started before Redis serves once Redis is up"""
        s = self.stack
        s.start_ai()
        s.start_server()
        with self.assertRaises(grpc.RpcError) as cm:
            self.submit("early")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        s.start_redis()
        s.start_worker()
        r = wait_for(lambda: self._try_submit("late"), timeout=10, what="the server to serve")
        self.assertEqual(s.wait_terminal(r.task_id).state, pb.Task.SUCCESS, s.logs())

    def _try_submit(self, doc):
        try:
            return self.submit(doc)
        except grpc.RpcError:
            return None

    def test_a_worker_killed_mid_task_leaves_its_task_pending_for_its_restart(self):
        """a worker killed mid-task leaves its task pending, not lost"""
        s = self.stack.start_all(workers=1, ai_args=("--latency-ms", "1000"))
        r = self.submit("crash")
        stub = s.stub()
        wait_for(lambda: stub.GetStatus(pb.GetStatusRequest(task_id=r.task_id)).state == pb.Task.STARTED,
                 what="the task to start")
        s.workers[0].signal(signal.SIGKILL)
        s.workers[0].wait()
        # Nothing is lost: the entry is still pending in the group.
        self.assertIn("crash", s.redis_cli("XRANGE", "docq:{%s}:tasks" % r.task_id.split("-")[0], "-", "+"))
        t = stub.GetStatus(pb.GetStatusRequest(task_id=r.task_id))
        self.assertEqual(t.state, pb.Task.STARTED)


if __name__ == "__main__":
    unittest.main()
