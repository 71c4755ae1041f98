"""DOCQ_REDIS_MIN_REPLICAS: SubmitDoc answers OK only once Redis WAIT confirmed
the new task on that many replicas, against a real primary redis-server and a
real replica of it."""
import re
import signal
import subprocess
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

import grpc

from probes import metrics_port, scrape
from stack import Stack, free_port, pb, wait_for


class Replicas(unittest.TestCase):
    def setUp(self):
        self.stack = Stack()
        self.addCleanup(self.stack.stop)
        self.stack.start_redis()
        self.replica_port = free_port()
        self.replica = self.stack._start("redis-replica", [
            "redis-server", "--port", str(self.replica_port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", self.stack.dir,
            "--replicaof", "127.0.0.1", str(self.stack.redis_port)])
        wait_for(lambda: "master_link_status:up" in self.on_replica("INFO", "replication"),
                 timeout=20, what="the replica to sync with the primary")

    def on_replica(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.replica_port)] + [str(a) for a in args],
                           capture_output=True, text=True)
        return r.stdout.strip()

    def stop_replica(self):
        """Stop the replica for good, and wait until the primary knows it has
        none (so that WAIT cannot count it)."""
        self.replica.signal(signal.SIGKILL)
        self.replica.wait()
        wait_for(lambda: "connected_slaves:0" in self.stack.redis_cli("INFO", "replication"),
                 timeout=20, what="the primary to see its replica gone")

    def record_key(self, task_id):
        return "docq:{s%d}:task:%s" % (self.stack.shard_of(task_id), task_id)

    def submit(self, doc="doc-1"):
        return self.stack.stub().SubmitDoc(pb.SubmitDocRequest(doc_id=doc), timeout=10)

    def submit_stored(self, doc="doc-0"):
        """Submit doc and return its task id once it is stored: answered OK, or
        UNAVAILABLE because the replica did not confirm it within
        DOCQ_REDIS_WAIT_MS (a slow machine may take longer than a short
        wait even with the replica up); any other answer fails the test."""
        try:
            return self.submit(doc).task_id
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE or "may exist" not in e.details():
                raise
            return re.search(r"task (\S+) stored", e.details()).group(1)

    def test_every_acknowledged_task_is_on_the_replica_when_submitdoc_answers(self):
        """with DOCQ_REDIS_MIN_REPLICAS=1 and a live replica every acknowledged task is on the
        replica when SubmitDoc answers"""
        self.stack.start_server(DOCQ_REDIS_MIN_REPLICAS="1", DOCQ_REDIS_WAIT_MS="5000")
        stub = self.stack.stub()
        # Each check runs as soon as its own answer arrives, while other
        # submits are still in flight.
        def submit_and_check(i):
            task_id = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="doc-%d" % i), timeout=20).task_id
            return task_id, self.on_replica("HGET", self.record_key(task_id), "state")

        with ThreadPoolExecutor(50) as pool:
            seen = list(pool.map(submit_and_check, range(50)))
        self.assertEqual(len({t for t, _ in seen}), 50)
        missing = [t for t, state in seen if state != "PENDING"]
        self.assertEqual(missing, [], "acknowledged but not on the replica yet")
        # A replica that cannot take writes for a second (frozen): no submit
        # is answered until it has taken them.
        self.replica.signal(signal.SIGSTOP)
        try:
            with ThreadPoolExecutor(10) as pool:
                calls = [pool.submit(self.submit, "frozen-%d" % i) for i in range(10)]
                time.sleep(1.0)
                early = sum(c.done() for c in calls)
                self.replica.signal(signal.SIGCONT)
                ids = [c.result().task_id for c in calls]
        finally:
            self.replica.signal(signal.SIGCONT)
        self.assertEqual(early, 0, "answered while the replica could not have the task")
        self.assertEqual([self.on_replica("EXISTS", self.record_key(t)) for t in ids], ["1"] * 10)

    def test_with_the_replica_stopped_submitdoc_is_unavailable_saying_the_task_may_exist(self):
        """with DOCQ_REDIS_MIN_REPLICAS=1 and the replica stopped, SubmitDoc is UNAVAILABLE
        within DOCQ_REDIS_WAIT_MS saying the task may exist"""
        self.stack.start_server(DOCQ_REDIS_MIN_REPLICAS="1", DOCQ_REDIS_WAIT_MS="300")
        port = metrics_port(self.stack.server)
        self.submit_stored()
        self.stop_replica()
        before = scrape(port)["docq_submit_unreplicated_total"].get()
        started = time.monotonic()
        with self.assertRaises(grpc.RpcError) as raised:
            self.submit()
        took = time.monotonic() - started
        err = raised.exception
        self.assertEqual(err.code(), grpc.StatusCode.UNAVAILABLE, err.details())
        self.assertIn("DOCQ_REDIS_MIN_REPLICAS", err.details())
        self.assertIn("may exist", err.details())
        self.assertIn("confirmed on only 0 of 1 replicas within 300 ms", err.details())
        self.assertLess(took, 5.0)
        # It says which task: that task was stored on the primary.
        task_id = re.search(r"task (\S+) stored", err.details()).group(1)
        self.assertEqual(self.stack.redis_cli("HGET", self.record_key(task_id), "state"), "PENDING")
        self.assertEqual(scrape(port)["docq_submit_unreplicated_total"].get(), before + 1)

    def test_with_min_replicas_0_no_wait_is_sent(self):
        """with DOCQ_REDIS_MIN_REPLICAS=0 no WAIT is sent"""
        self.stack.start_server()
        self.stack.redis_cli("CONFIG", "RESETSTAT")
        for i in range(5):
            self.submit("doc-%d" % i)
        stats = self.stack.redis_cli("INFO", "commandstats")
        self.assertIn("cmdstat_evalsha", stats)
        self.assertNotIn("cmdstat_wait", stats)

    def test_a_rate_limited_submit_with_the_replica_stopped_is_still_resource_exhausted(self):
        """a submit refused by the rate limit under DOCQ_REDIS_MIN_REPLICAS=1 with the replica
        stopped is still RESOURCE_EXHAUSTED, not UNAVAILABLE"""
        self.stack.start_server(DOCQ_REDIS_MIN_REPLICAS="1", DOCQ_REDIS_WAIT_MS="300", DOCQ_RATE_LIMIT="1")
        self.submit_stored()
        self.stop_replica()
        with self.assertRaises(grpc.RpcError) as raised:
            self.submit()
        self.assertEqual(raised.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED,
                         raised.exception.details())


if __name__ == "__main__":
    unittest.main()
