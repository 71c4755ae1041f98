"""SubmitDoc's request_id (an idempotent submit: the same caller sending the
same request_id again gets the same task) and queue_timeout (a task still
PENDING after it ends FAILURE, never sent to the AI), on the real stack."""
import hashlib
import os
import signal
import threading
import time
import unittest

import grpc
from google.protobuf import duration_pb2

from stack import Stack, pb, wait_for


def error_of(fn, *args, **kwargs):
    """(code, details) of a call that fails; the test fails when it does not."""
    try:
        fn(*args, **kwargs)
    except grpc.RpcError as e:
        return e.code(), e.details()
    raise AssertionError("the call succeeded")


def seconds(s):
    return duration_pb2.Duration(seconds=s)


class RequestId(unittest.TestCase):
    def setUp(self):
        self.stack = Stack()
        self.addCleanup(self.stack.stop)

    def task_records(self):
        return [k for k in self.stack.task_keys() if ":task:" in k]

    def test_20_simultaneous_submits_with_one_request_id_make_one_task_and_one_ai_call(self):
        """20 simultaneous submits with one request_id make one task and one AI call"""
        s = self.stack.start_all(workers=1, ai_args=("--latency-ms", "50"))
        stubs = [s.stub(new_channel=True) for _ in range(20)]
        barrier, answers, errors = threading.Barrier(20), [], []

        def submit(stub):
            barrier.wait()
            try:
                answers.append(stub.SubmitDoc(pb.SubmitDocRequest(doc_id="doc_1", request_id="order-1"), timeout=10))
            except grpc.RpcError as e:
                errors.append(e)
        threads = [threading.Thread(target=submit, args=(stub,)) for stub in stubs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len({a.task_id for a in answers}), 1, answers)
        task_id = answers[0].task_id
        self.assertEqual(s.wait_terminal(task_id).state, pb.Task.SUCCESS)
        stats = s.ai_stats()
        self.assertEqual((stats["requests"], stats["distinct_tasks"]), (1, 1))
        self.assertEqual(len(self.task_records()), 1)
        self.assertEqual(s.queued_count(), 0)
        again = s.stub().SubmitDoc(pb.SubmitDocRequest(doc_id="doc_1", request_id="order-1"), timeout=10)
        self.assertEqual((again.task_id, again.state), (task_id, pb.Task.SUCCESS), "its state now")
        self.assertEqual(s.ai_stats()["requests"], 1)

    def test_a_retry_after_a_server_restart_gets_the_same_task(self):
        """a retry after a server restart gets the same task"""
        s = self.stack.start_redis().start_ai().start_server()
        first = s.stub().SubmitDoc(pb.SubmitDocRequest(doc_id="doc_1", request_id="r1"), timeout=10)
        self.assertEqual(first.state, pb.Task.PENDING)
        s.server.signal(signal.SIGTERM)
        s.server.wait()
        s._channel.close()
        s._channel = None
        s.start_server()
        again = s.stub().SubmitDoc(pb.SubmitDocRequest(doc_id="doc_1", request_id="r1"), timeout=10)
        self.assertEqual((again.task_id, again.state), (first.task_id, pb.Task.PENDING))
        s.start_worker()
        self.assertEqual(s.wait_terminal(first.task_id).state, pb.Task.SUCCESS)
        again = s.stub().SubmitDoc(pb.SubmitDocRequest(doc_id="doc_1", request_id="r1"), timeout=10)
        self.assertEqual((again.task_id, again.state), (first.task_id, pb.Task.SUCCESS))
        self.assertEqual(s.ai_stats()["requests"], 1)
        self.assertEqual(len(self.task_records()), 1)

    def test_the_same_request_id_with_another_doc_id_is_already_exists(self):
        """the same request_id with another doc_id is ALREADY_EXISTS, saying so, and makes no task"""
        s = self.stack.start_redis().start_server()
        stub = s.stub()
        first = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="doc_1", request_id="r1"), timeout=10)
        code, details = error_of(stub.SubmitDoc, pb.SubmitDocRequest(doc_id="doc_2", request_id="r1"), timeout=10)
        self.assertEqual(code, grpc.StatusCode.ALREADY_EXISTS)
        self.assertIn("request_id", details)
        self.assertIn("another doc_id", details)
        self.assertIn(first.task_id, details)
        self.assertEqual(len(self.task_records()), 1)

    def test_two_callers_with_the_same_request_id_get_two_tasks(self):
        """two callers (API keys) with the same request_id get two tasks"""
        keys = {"acme": "key-acme-" + "1" * 16, "beta": "key-beta-" + "2" * 16}
        path = os.path.join(self.stack.dir, "keys")
        with open(path, "w") as f:
            for caller, key in keys.items():
                f.write("%s %s\n" % (caller, hashlib.sha256(key.encode()).hexdigest()))
        s = self.stack.start_redis().start_server(DOCQ_API_KEYS_FILE=path)
        stub = s.stub()
        ids = {}
        for caller in ("acme", "beta", "acme", "beta"):
            md = [("authorization", "Bearer " + keys[caller])]
            r = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="doc_1", request_id="same"), timeout=10, metadata=md)
            ids.setdefault(caller, set()).add(r.task_id)
        self.assertEqual([len(ids["acme"]), len(ids["beta"])], [1, 1], "each caller's retry: its own task")
        self.assertNotEqual(ids["acme"], ids["beta"])
        self.assertEqual(len(self.task_records()), 2)

    def test_a_retry_of_an_admitted_request_is_not_counted_by_the_rate_limit(self):
        """a retry of an admitted request is not counted by the rate limit: at a limit of 1 the
        retry gets the same task and a new request is RESOURCE_EXHAUSTED"""
        s = self.stack.start_redis().start_server(DOCQ_RATE_LIMIT="1", DOCQ_RATE_WINDOW_S="3600")
        stub = s.stub()
        first = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="doc_1", request_id="r1"), timeout=10)
        for _ in range(3):
            again, call = stub.SubmitDoc.with_call(pb.SubmitDocRequest(doc_id="doc_1", request_id="r1"), timeout=10)
            self.assertEqual(again.task_id, first.task_id)
            self.assertEqual(dict(call.initial_metadata()).get("ratelimit-remaining"), "0")
        for request in (pb.SubmitDocRequest(doc_id="doc_2", request_id="r2"), pb.SubmitDocRequest(doc_id="doc_3")):
            self.assertEqual(error_of(stub.SubmitDoc, request, timeout=10)[0], grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertEqual(s.redis_cli("ZCARD", "docq:{s%d}:rate:127.0.0.1" % s.shard_of(first.task_id)), "1")

    def test_bad_request_ids_are_invalid_argument_saying_why(self):
        """bad request_ids are INVALID_ARGUMENT saying why, and store nothing"""
        s = self.stack.start_redis().start_server()
        stub = s.stub()
        for bad, why in (("x" * 65, "65 bytes long, the limit is 64"), ("a\tb", "byte 0x09 at byte 1"),
                         ("caf\u00e9", "byte 0xc3 at byte 3"), ("a\x7f", "byte 0x7f"), ("\x1b[31m", "byte 0x1b")):
            code, details = error_of(stub.SubmitDoc, pb.SubmitDocRequest(doc_id="doc_1", request_id=bad), timeout=10)
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, bad)
            self.assertIn("request_id", details)
            self.assertIn(why, details)
        self.assertEqual(self.task_records(), [])
        for good in ("x" * 64, " ", "~!@#$%^&*()_+{}|:\"<>?", "3f1c0e2a-0b1d-4c5e-9f00-1234567890ab"):
            stub.SubmitDoc(pb.SubmitDocRequest(doc_id="doc_1", request_id=good), timeout=10)
        self.assertEqual(len(self.task_records()), 4)

    def test_docq_submit_request_id_prints_the_same_task_id_twice(self):
        """docq submit --request-id prints the same task id when sent twice"""
        s = self.stack.start_redis().start_server()
        outs = [s.cli("submit", "--request-id", "cli-1", "doc_1") for _ in range(2)]
        for out in outs:
            self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(outs[0].stdout, outs[1].stdout)
        self.assertRegex(outs[0].stdout, r"^s\d+-[0-9a-f]{32}\n$")
        out = s.cli("submit", "--request-id", "cli-1", "doc_2")
        self.assertEqual(out.returncode, 1)
        self.assertIn("ALREADY_EXISTS", out.stderr)
        out = s.cli("submit", "--request-id", "cli-2", "doc_1", "doc_2")
        self.assertEqual(out.returncode, 2, "one request id names one task")


class QueueTimeout(unittest.TestCase):
    def setUp(self):
        self.stack = Stack()
        self.addCleanup(self.stack.stop)

    def test_a_task_past_its_queue_timeout_with_no_worker_ends_failure_for_watch_and_get_status(self):
        """a task still PENDING past its queue_timeout, with no worker running, ends FAILURE "expired
        in queue after N s" for a WatchStatus (which ends) and GetStatus, and a worker started
        later never calls the AI for it"""
        # Positions are refreshed only every minute: the watch must end by the deadline alone.
        s = self.stack.start_redis().start_ai().start_server(DOCQ_POSITION_REFRESH_MS="60000")
        stub = s.stub()
        t0 = time.monotonic()
        r = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="doc_1", queue_timeout=seconds(1)), timeout=10)
        watched = list(stub.WatchStatus(pb.WatchStatusRequest(task_id=r.task_id), timeout=30))
        elapsed = time.monotonic() - t0
        self.assertEqual([m.state for m in watched], [pb.Task.PENDING, pb.Task.FAILURE])
        self.assertEqual(watched[-1].error, "expired in queue after 1 s")
        self.assertGreaterEqual(elapsed, 1.0)
        self.assertLess(elapsed, 6.0, "ended by its deadline, not by a refresh a minute later")
        t = s.task(r.task_id)
        self.assertEqual((t.state, t.error, t.attempts), (pb.Task.FAILURE, "expired in queue after 1 s", 0))
        self.assertTrue(t.finished_at.ToMilliseconds() >= t.created_at.ToMilliseconds() + 1000)
        self.assertGreater(int(s.redis_cli("TTL", "docq:{s%d}:task:%s" % (s.shard_of(r.task_id), r.task_id))), 0)
        s.start_worker()
        wait_for(lambda: s.queued_count() == 0, what="the worker to acknowledge the expired task's entry")
        self.assertEqual(s.ai_stats()["requests"], 0)
        self.assertEqual(s.task(r.task_id).version, t.version, "the worker wrote nothing more")

    def test_a_worker_never_starts_a_task_past_its_queue_timeout(self):
        """a worker receiving a task past its queue_timeout ends it FAILURE and acknowledges it
        without an AI call, and starts the others"""
        s = self.stack.start_redis().start_ai().start_server()
        stub = s.stub()
        late = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="late", queue_timeout=duration_pb2.Duration(nanos=1)),
                              timeout=10)
        timely = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="timely", queue_timeout=seconds(3600)), timeout=10)
        time.sleep(0.1)  # Past the first deadline (1 ms); nothing reads the task meanwhile.
        w = s.start_worker()
        self.assertEqual(s.wait_terminal(timely.task_id).state, pb.Task.SUCCESS)
        wait_for(lambda: s.queued_count() == 0, what="every entry to be acknowledged")
        t = s.task(late.task_id)
        self.assertEqual((t.state, t.error, t.attempts), (pb.Task.FAILURE, "expired in queue after 0.001 s", 0))
        stats = s.ai_stats()
        self.assertEqual((stats["requests"], stats["distinct_tasks"]), (1, 1))
        self.assertRegex(w.text(), r'queue_timeout.*"task_id":"%s"' % late.task_id)

    def test_a_queue_timeout_over_the_maximum_or_negative_is_invalid_argument(self):
        """a queue_timeout over DOCQ_MAX_QUEUE_TIMEOUT_S, negative or malformed is INVALID_ARGUMENT
        naming why, and one at the maximum is accepted"""
        s = self.stack.start_redis().start_server(DOCQ_MAX_QUEUE_TIMEOUT_S="60")
        stub = s.stub()
        for bad, why in ((seconds(61), "DOCQ_MAX_QUEUE_TIMEOUT_S"),
                         (duration_pb2.Duration(seconds=60, nanos=1), "DOCQ_MAX_QUEUE_TIMEOUT_S"),
                         (seconds(-1), "negative"), (duration_pb2.Duration(nanos=-5), "negative"),
                         (duration_pb2.Duration(seconds=1, nanos=-5), "not a valid Duration")):
            code, details = error_of(stub.SubmitDoc, pb.SubmitDocRequest(doc_id="d", queue_timeout=bad), timeout=10)
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, bad)
            self.assertIn("queue_timeout", details)
            self.assertIn(why, details)
        self.assertEqual([k for k in s.task_keys() if ":task:" in k], [])
        r = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="d", queue_timeout=seconds(60)), timeout=10)
        deadline = s.redis_cli("HGET", "docq:{s%d}:task:%s" % (s.shard_of(r.task_id), r.task_id), "deadline")
        created = s.task(r.task_id).created_at.ToMilliseconds()
        self.assertEqual(int(deadline), created + 60000)
        r = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="d", queue_timeout=seconds(0)), timeout=10)
        self.assertEqual(s.redis_cli("HGET", "docq:{s%d}:task:%s" % (s.shard_of(r.task_id), r.task_id),
                                     "deadline"), "", "0: no limit")

    def test_docq_submit_queue_timeout_sets_the_deadline(self):
        """docq submit --queue-timeout sets the task's queue deadline"""
        s = self.stack.start_redis().start_server()
        out = s.cli("submit", "--queue-timeout", "90s", "doc_1")
        self.assertEqual(out.returncode, 0, out.stderr)
        tid = out.stdout.strip()
        deadline = int(s.redis_cli("HGET", "docq:{s%d}:task:%s" % (s.shard_of(tid), tid), "deadline"))
        self.assertEqual(deadline, s.task(tid).created_at.ToMilliseconds() + 90000)
        out = s.cli("submit", "--queue-timeout", "soon", "doc_1")
        self.assertEqual(out.returncode, 2)
        self.assertIn("DOCQ_QUEUE_TIMEOUT", out.stderr)


if __name__ == "__main__":
    unittest.main()
