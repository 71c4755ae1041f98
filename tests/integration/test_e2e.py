"""End to end on the real stack: SubmitDoc -> Redis stream -> worker -> AI -> GetStatus."""
import json
import threading
import time
import unittest

import grpc

from stack import Stack, pb, wait_for


class EndToEnd(unittest.TestCase):
    STACK = Stack  # test_cluster_core.py runs some of these tests on a Redis Cluster.

    def setUp(self):
        self.stack = self.STACK()
        self.addCleanup(self.stack.stop)

    def fail_with_logs(self, msg):
        self.fail("%s\n%s" % (msg, self.stack.logs()))

    def test_200_tasks_from_30_clients_all_succeed_with_one_ai_call_each(self):
        """200 tasks from 30 concurrent clients all succeed with one AI call each"""
        s = self.stack.start_all(workers=2, ai_args=("--latency-ms", "20"))
        ids, errors, lock = {}, [], threading.Lock()

        def client(n):
            stub = s.stub(new_channel=True)
            for i in range(n, 200, 30):
                doc = "doc_%d" % i
                try:
                    r = stub.SubmitDoc(pb.SubmitDocRequest(doc_id=doc), timeout=10)
                    with lock:
                        ids[r.task_id] = doc
                except grpc.RpcError as e:
                    with lock:
                        errors.append(e)
        threads = [threading.Thread(target=client, args=(n,)) for n in range(30)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(ids), 200)
        for task_id, doc in ids.items():
            t = s.wait_terminal(task_id, timeout=60)
            if t.state != pb.Task.SUCCESS:
                self.fail_with_logs("task %s ended %s: %s" % (task_id, t.state, t.error))
            self.assertEqual(t.doc_id, doc)
            self.assertEqual(json.loads(t.result), {"doc_id": doc, "summary": "processed " + doc})
            self.assertEqual(t.attempts, 1)
            self.assertTrue(t.created_at.ToMilliseconds() <= t.started_at.ToMilliseconds()
                            <= t.finished_at.ToMilliseconds())
        stats = s.ai_stats()
        self.assertEqual(stats["requests"], 200)
        self.assertEqual(stats["distinct_tasks"], 200)
        self.assertEqual(stats["duplicate_tasks"], 0)
        # Both workers took part, and every entry was acknowledged and deleted.
        for w in s.workers:
            self.assertIn("SUCCESS", w.text())
        for shard in range(s.shards):
            self.assertEqual(s.redis_cli("XLEN", "docq:{s%d}:tasks" % shard), "0")

    def test_submit_returns_while_a_slow_ai_call_is_still_running(self):
        """SubmitDoc returns while a slow AI call is still running"""
        s = self.stack.start_all(workers=1, ai_args=("--latency-ms", "1500"))
        stub = s.stub()
        first = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="slow_1"), timeout=5)
        wait_for(lambda: stub.GetStatus(pb.GetStatusRequest(task_id=first.task_id)).state == pb.Task.STARTED,
                 what="the first task to start")
        t0 = time.monotonic()
        second = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="slow_2"), timeout=5)
        elapsed = time.monotonic() - t0
        self.assertEqual(second.state, pb.Task.PENDING)
        # The AI call of the first task is still in flight when SubmitDoc has answered.
        self.assertEqual(stub.GetStatus(pb.GetStatusRequest(task_id=first.task_id)).state, pb.Task.STARTED)
        self.assertLess(elapsed, 1.0)
        self.assertEqual(s.wait_terminal(first.task_id).state, pb.Task.SUCCESS)
        self.assertEqual(s.wait_terminal(second.task_id).state, pb.Task.SUCCESS)

    def test_an_ai_error_ends_the_task_as_failure_naming_the_http_status(self):
        """an AI error ends the task as FAILURE naming the HTTP status"""
        s = self.stack.start_all(workers=1, ai_args=("--fail-status", "422"))
        r = s.stub().SubmitDoc(pb.SubmitDocRequest(doc_id="doc_bad"), timeout=5)
        t = s.wait_terminal(r.task_id)
        self.assertEqual(t.state, pb.Task.FAILURE)
        self.assertIn("HTTP 422", t.error)
        self.assertEqual(t.result, "")
        self.assertTrue(t.HasField("finished_at"))

    def test_an_unreachable_ai_ends_the_task_as_failure_naming_the_transport_error(self):
        """an unreachable AI ends the task as FAILURE naming the transport error"""
        s = self.stack
        s.start_redis().start_ai()
        s.ai_port = s.ai_port + 1 if s.ai_port < 65535 else s.ai_port - 1
        s.ai.signal(15)
        s.ai.wait()
        s.start_server()
        s.start_worker(DOCQ_AI_CONNECT_TIMEOUT_MS="500", DOCQ_MAX_ATTEMPTS="2", DOCQ_RETRY_BASE_MS="50")
        r = s.stub().SubmitDoc(pb.SubmitDocRequest(doc_id="doc_x"), timeout=5)
        t = s.wait_terminal(r.task_id)
        self.assertEqual(t.state, pb.Task.FAILURE)
        self.assertIn("AI call failed", t.error)
        self.assertIn("gave up after 2 attempts", t.error)

    def test_a_callers_tasks_share_one_shard_and_its_id_names_it(self):
        """a caller's tasks share one shard and the task id names it"""
        s = self.stack.start_all(workers=0)
        stub = s.stub()
        shards = {stub.SubmitDoc(pb.SubmitDocRequest(doc_id="d%d" % i), timeout=5).task_id.split("-")[0]
                  for i in range(10)}
        self.assertEqual(len(shards), 1)
        shard = shards.pop()
        self.assertEqual(s.redis_cli("XLEN", "docq:{%s}:tasks" % shard), "10")

    def test_finished_task_records_expire_after_the_result_ttl(self):
        """finished task records expire after the result TTL"""
        self.stack.result_ttl_s = 1
        s = self.stack.start_all(workers=1)
        stub = s.stub()
        r = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="doc_ttl"), timeout=5)
        self.assertEqual(s.wait_terminal(r.task_id).state, pb.Task.SUCCESS)

        def gone():
            try:
                stub.GetStatus(pb.GetStatusRequest(task_id=r.task_id), timeout=5)
                return False
            except grpc.RpcError as e:
                return e.code() == grpc.StatusCode.NOT_FOUND
        wait_for(gone, timeout=5, what="the finished record to expire")


if __name__ == "__main__":
    unittest.main()
