"""ListTasks and DeleteTask (issue 16, task control): a caller's own tasks,
newest first, a page at a time, and ended tasks deleted on request."""
import hashlib
import os
import unittest

import grpc
from google.protobuf import empty_pb2

from probes import metrics_port, scrape
import signal

from stack import Stack, labels, pb, wait_for


def code_of(fn, req, **kw):
    """The status code and details of a call that must fail."""
    try:
        fn(req, timeout=10, **kw)
    except grpc.RpcError as e:
        return e.code(), e.details()
    raise AssertionError("the call succeeded")


def list_all(stub, page_size=0, states=(), md=None):
    """Every task ListTasks returns, following next_page_token: (ids, pages)."""
    ids, token, pages = [], "", 0
    while True:
        r = stub.ListTasks(pb.ListTasksRequest(page_size=page_size, page_token=token, states=list(states)),
                           timeout=10, metadata=md)
        ids += [t.task_id for t in r.tasks]
        pages += 1
        token = r.next_page_token
        if not token:
            return ids, pages


def index_key(task_id, caller="127.0.0.1"):
    return "docq:{%s}:owned:%s" % (task_id.split("-")[0], caller)


class ListTasks(unittest.TestCase):
    def setUp(self):
        self.stack = Stack().start_redis()
        self.addCleanup(self.stack.stop)

    def submit(self, n, prefix="doc", stub=None, md=None):
        stub = stub or self.stack.stub()
        return [stub.SubmitDoc(pb.SubmitDocRequest(doc_id="%s_%d" % (prefix, i)), timeout=10, metadata=md).task_id
                for i in range(n)]

    def test_pages_taken_while_tasks_are_added_hold_each_task_once_newest_first(self):
        """pages of 25 taken while 40 tasks are added hold each of the first 120 tasks exactly once, newest
        first"""
        stub = self.stack.start_server().stub()
        first = self.submit(120)
        got, token, added = [], "", []
        while True:
            r = stub.ListTasks(pb.ListTasksRequest(page_size=25, page_token=token), timeout=10)
            self.assertLessEqual(len(r.tasks), 25)
            got += [t.task_id for t in r.tasks]
            token = r.next_page_token
            if not token:
                break
            added += self.submit(10, prefix="late_%d" % len(added))
        self.assertEqual(len(added), 40)
        self.assertEqual(got, first[::-1])
        docs = [t.doc_id for t in stub.ListTasks(pb.ListTasksRequest(page_size=3), timeout=10).tasks]
        self.assertEqual(docs, ["late_30_9", "late_30_8", "late_30_7"])
        self.assertEqual(list_all(stub, page_size=1000)[0], (first + added)[::-1])

    def test_a_states_filter_returns_only_tasks_in_those_states_across_pages(self):
        """a states filter returns only the tasks in those states, across pages too"""
        s = self.stack
        s.start_ai("--reject-prefix", "bad").start_server()
        worker = s.start_worker()
        ok, bad = self.submit(3, "ok"), self.submit(2, "bad")
        for t in ok + bad:
            s.wait_terminal(t)
        worker.kill()
        pending = self.submit(2, "later")
        stub = s.stub()
        self.assertEqual(list_all(stub, states=[pb.Task.FAILURE])[0], bad[::-1])
        self.assertEqual(list_all(stub, page_size=1, states=[pb.Task.FAILURE])[0], bad[::-1])
        self.assertEqual(sorted(list_all(stub, states=[pb.Task.SUCCESS, pb.Task.PENDING, pb.Task.SUCCESS])[0]),
                         sorted(ok + pending))
        self.assertEqual(list_all(stub, states=[pb.Task.STARTED, pb.Task.CANCELLED])[0], [])
        r = stub.ListTasks(pb.ListTasksRequest(states=[pb.Task.PENDING]), timeout=10)
        self.assertEqual([t.state for t in r.tasks], [pb.Task.PENDING] * 2)
        self.assertEqual([t.doc_id for t in r.tasks], ["later_1", "later_0"])
        for bad_state in (0, 6, 99):
            code, details = code_of(stub.ListTasks, pb.ListTasksRequest(states=[bad_state]))
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, bad_state)
            self.assertIn("states", details)

    def test_page_size_is_50_by_default_at_most_1000_and_never_negative(self):
        """page_size is 50 by default and at most 1000, and a negative or larger one is INVALID_ARGUMENT"""
        stub = self.stack.start_server().stub()
        ids = self.submit(60)
        r = stub.ListTasks(pb.ListTasksRequest(), timeout=10)
        self.assertEqual([t.task_id for t in r.tasks], ids[::-1][:50])
        self.assertTrue(r.next_page_token)
        r = stub.ListTasks(pb.ListTasksRequest(page_size=1000), timeout=10)
        self.assertEqual(len(r.tasks), 60)
        self.assertEqual(r.next_page_token, "")
        for size in (-1, 1001, 2 ** 31 - 1, -2 ** 31):
            code, details = code_of(stub.ListTasks, pb.ListTasksRequest(page_size=size))
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, size)
            self.assertIn("page_size", details)

    def test_a_malformed_page_token_is_invalid_argument(self):
        """a malformed page_token is INVALID_ARGUMENT and a real one goes on where its page ended"""
        stub = self.stack.start_server().stub()
        ids = self.submit(3)
        token = stub.ListTasks(pb.ListTasksRequest(page_size=1), timeout=10).next_page_token
        for bad in ["zz", "abc", token[:-2], token + "00", token.upper(), "31" * 10, (b"12.nope").hex(),
                    (b"-5." + ids[0].encode()).hex(), (b"." + ids[0].encode()).hex(), "ab" * 100]:
            code, details = code_of(stub.ListTasks, pb.ListTasksRequest(page_token=bad))
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, bad)
            self.assertIn("page_token", details)
        r = stub.ListTasks(pb.ListTasksRequest(page_token=token), timeout=10)
        self.assertEqual([t.task_id for t in r.tasks], ids[::-1][1:])

    def test_a_task_whose_record_expired_is_not_listed_and_its_index_entry_is_gone(self):
        """a task whose record expired is not listed and its index entry is gone"""
        s = Stack(result_ttl_s=1).start_redis()
        self.addCleanup(s.stop)
        s.start_ai().start_server()
        worker = s.start_worker()
        stub = s.stub()
        done = self.submit(3, "short", stub=stub)
        for t in done:
            s.wait_terminal(t)
        worker.kill()
        wait_for(lambda: all(s.redis_cli("EXISTS", "docq:{%s}:task:%s" % (t.split("-")[0], t)) == "0"
                             for t in done), timeout=20, what="the records to expire")
        self.assertEqual(s.redis_cli("ZCARD", index_key(done[0])), "3")
        live = self.submit(1, "live", stub=stub)
        self.assertEqual(list_all(stub)[0], live)
        self.assertEqual(s.redis_cli("ZRANGE", index_key(live[0]), 0, -1), live[0])


class Ownership(unittest.TestCase):
    KEYS = {"acme": "key-acme-0123", "beta": "key-beta-4567"}

    def test_another_caller_sees_none_of_my_tasks_and_cannot_delete_them(self):
        """another caller (API keys) lists none of my tasks and DeleteTask of one of them is NOT_FOUND"""
        s = Stack().start_redis()
        self.addCleanup(s.stop)
        path = os.path.join(s.dir, "keys")
        with open(path, "w") as f:
            for caller, key in self.KEYS.items():
                f.write("%s %s\n" % (caller, hashlib.sha256(key.encode()).hexdigest()))
        s.start_ai().start_server(DOCQ_API_KEYS_FILE=path)
        s.start_worker()
        stub = s.stub()
        md = {c: [("authorization", "Bearer " + k)] for c, k in self.KEYS.items()}
        mine = [stub.SubmitDoc(pb.SubmitDocRequest(doc_id="acme_%d" % i), timeout=10, metadata=md["acme"]).task_id
                for i in range(3)]
        for t in mine:
            wait_for(lambda: stub.GetStatus(pb.GetStatusRequest(task_id=t), timeout=10,
                                            metadata=md["acme"]).state == pb.Task.SUCCESS, what="the task to end")
        self.assertEqual(list_all(stub, md=md["beta"])[0], [])
        self.assertEqual(list_all(stub, md=md["acme"])[0], mine[::-1])
        unknown = mine[0].split("-")[0] + "-" + "ab" * 16
        _, never = code_of(stub.DeleteTask, pb.DeleteTaskRequest(task_id=unknown), metadata=md["beta"])
        code, details = code_of(stub.DeleteTask, pb.DeleteTaskRequest(task_id=mine[0]), metadata=md["beta"])
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        self.assertEqual(details, never.replace(unknown, mine[0]))
        self.assertEqual(list_all(stub, md=md["acme"])[0], mine[::-1])
        stub.DeleteTask(pb.DeleteTaskRequest(task_id=mine[0]), timeout=10, metadata=md["acme"])
        self.assertEqual(list_all(stub, md=md["acme"])[0], mine[:0:-1])
        code, _ = code_of(stub.ListTasks, pb.ListTasksRequest())
        self.assertEqual(code, grpc.StatusCode.UNAUTHENTICATED)


class DeleteTask(unittest.TestCase):
    def setUp(self):
        self.stack = Stack().start_redis()
        self.addCleanup(self.stack.stop)

    def test_a_running_task_is_failed_precondition_and_an_ended_one_is_deleted(self):
        """DeleteTask of a running task is FAILED_PRECONDITION, of an ended one deletes it (GetStatus
        NOT_FOUND, not listed) and again is NOT_FOUND, and of an id of another shard is NOT_FOUND"""
        s = self.stack
        s.start_ai("--latency-ms", "3000").start_server(DOCQ_READ_RATE_LIMIT="0")
        s.start_worker()
        stub = s.stub()
        keep = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="keep"), timeout=10).task_id
        t = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="slow"), timeout=10).task_id
        s.wait_task(t, lambda x: x.state == pb.Task.STARTED, what="the task to start")
        code, details = code_of(stub.DeleteTask, pb.DeleteTaskRequest(task_id=t))
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("STARTED", details)
        self.assertIn("cancel it first", details)
        self.assertEqual(s.task(t).state, pb.Task.STARTED)
        s.wait_terminal(t)
        self.assertEqual(stub.DeleteTask(pb.DeleteTaskRequest(task_id=t), timeout=10), empty_pb2.Empty())
        code, details = code_of(stub.GetStatus, pb.GetStatusRequest(task_id=t))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        self.assertEqual(s.redis_cli("EXISTS", "docq:{%s}:task:%s" % (t.split("-")[0], t)), "0")
        self.assertEqual(list_all(stub)[0], [keep])
        self.assertEqual(s.redis_cli("ZRANGE", index_key(t), 0, -1), keep)
        self.assertEqual(code_of(stub.DeleteTask, pb.DeleteTaskRequest(task_id=t))[0], grpc.StatusCode.NOT_FOUND)
        self.assertEqual(s.wait_terminal(keep).state, pb.Task.SUCCESS)
        for bad in ["", "nope", "s1-xyz", "s1-" + "AB" * 16]:
            code, details = code_of(stub.DeleteTask, pb.DeleteTaskRequest(task_id=bad))
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, bad)
            self.assertIn("task_id", details)
        self.assertEqual(code_of(stub.DeleteTask, pb.DeleteTaskRequest(task_id="s999-" + "ab" * 16))[0],
                         grpc.StatusCode.NOT_FOUND)
        other = "s%d-%s" % ((int(t.split("-")[0][1:]) + 1) % s.shards, "ab" * 16)
        self.assertEqual(code_of(stub.DeleteTask, pb.DeleteTaskRequest(task_id=other))[0], grpc.StatusCode.NOT_FOUND,
                         "another shard's id, no read limit")

    def test_the_read_limit_counts_list_tasks_and_delete_task(self):
        """the read limit counts ListTasks and DeleteTask (another shard's task id too) and /metrics counts them by
        method and code"""
        s = self.stack
        s.start_server(DOCQ_READ_RATE_LIMIT="4", DOCQ_READ_RATE_WINDOW_S="60")
        port, stub = metrics_port(s.server), s.stub()
        before = scrape(port)
        mine = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="a"), timeout=10).task_id
        other = "s%d-%s" % ((int(mine.split("-")[0][1:]) + 1) % s.shards, "ab" * 16)
        r, call = stub.ListTasks.with_call(pb.ListTasksRequest(), timeout=10)
        self.assertEqual([t.task_id for t in r.tasks], [mine])
        self.assertEqual(dict(call.initial_metadata())["ratelimit-remaining"], "3")
        self.assertEqual(code_of(stub.DeleteTask, pb.DeleteTaskRequest(task_id=mine))[0],
                         grpc.StatusCode.FAILED_PRECONDITION)
        code, _ = code_of(stub.DeleteTask, pb.DeleteTaskRequest(task_id=other))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        stub.GetStatus(pb.GetStatusRequest(task_id=mine), timeout=10)
        for fn, req in [(stub.ListTasks, pb.ListTasksRequest()), (stub.DeleteTask, pb.DeleteTaskRequest(task_id=mine)),
                        (stub.DeleteTask, pb.DeleteTaskRequest(task_id=other))]:
            try:
                fn(req, timeout=10)
                self.fail("the call was admitted")
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
                self.assertIn("retry in", e.details())
                self.assertEqual(dict(e.trailing_metadata())["ratelimit-remaining"], "0")
        # Bad requests are answered before the limit and are not counted.
        self.assertEqual(code_of(stub.ListTasks, pb.ListTasksRequest(page_size=-1))[0],
                         grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(s.redis_cli("ZCARD", "docq:{%s}:rate-read:127.0.0.1" % mine.split("-")[0]), "4")
        after = scrape(port)
        for method, code, n in [("ListTasks", "OK", 1), ("ListTasks", "RESOURCE_EXHAUSTED", 1),
                                ("ListTasks", "INVALID_ARGUMENT", 1), ("DeleteTask", "FAILED_PRECONDITION", 1),
                                ("DeleteTask", "NOT_FOUND", 1), ("DeleteTask", "RESOURCE_EXHAUSTED", 2)]:
            labels = {"method": "docq.v1.DocQueue/" + method, "code": code}
            self.assertEqual(after["docq_grpc_requests_total"].value(**labels) -
                             before["docq_grpc_requests_total"].get(0.0, "", **labels), n, (method, code))

    @labels("valgrind")
    def test_list_tasks_and_delete_task_leave_no_leak_under_valgrind(self):
        """ListTasks and DeleteTask answers of every kind leave no leak in the server under valgrind"""
        from test_shutdown import VALGRIND, leak_summary
        s = self.stack
        s.start_ai().start_server(wrap=VALGRIND, DOCQ_READ_RATE_LIMIT="12")
        stub = s.stub()
        ids = [stub.SubmitDoc(pb.SubmitDocRequest(doc_id="vg_%d" % i), timeout=60).task_id for i in range(5)]
        s.start_worker()
        # Read from Redis, not by GetStatus, which would use up the read limit.
        for t in ids:
            wait_for(lambda: s.redis_cli("HGET", "docq:{%s}:task:%s" % (t.split("-")[0], t), "state") == "SUCCESS",
                     timeout=120, what="the task to end")
        self.assertEqual(list_all(stub, page_size=2, states=[pb.Task.SUCCESS])[0], ids[::-1])
        stub.DeleteTask(pb.DeleteTaskRequest(task_id=ids[0]), timeout=60)
        for fn, req in [(stub.ListTasks, pb.ListTasksRequest(page_token="zz")),
                        (stub.ListTasks, pb.ListTasksRequest(page_size=-1)),
                        (stub.DeleteTask, pb.DeleteTaskRequest(task_id="nope")),
                        (stub.DeleteTask, pb.DeleteTaskRequest(task_id=ids[0]))]:
            self.assertNotEqual(code_of(fn, req)[0], grpc.StatusCode.OK)
        # Up to the read limit, then one refusal of each.
        while True:
            try:
                stub.ListTasks(pb.ListTasksRequest(), timeout=60)
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
                break
        self.assertEqual(code_of(stub.DeleteTask, pb.DeleteTaskRequest(task_id=ids[1]))[0],
                         grpc.StatusCode.RESOURCE_EXHAUSTED)
        s.server.signal(signal.SIGTERM)
        self.assertEqual(s.server.wait(timeout=60), 0, s.server.text()[-3000:])
        self.assertEqual(leak_summary(s.server.text()), 0, s.server.text()[-3000:])


if __name__ == "__main__":
    unittest.main()
