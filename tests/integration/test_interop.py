"""Clients docq did not write: a Python client generated from proto/, and a
Node.js client that finds the service through reflection alone."""
import json
import os
import subprocess
import unittest

import grpc
from google.protobuf import duration_pb2

from stack import Stack, needs, pb
from test_watch import Watcher, check_stream

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop", "node")


class Interop(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Documents named hold_... stay in the AI's hands until cancelled.
        cls.stack = Stack().start_all(workers=1, ai_args=("--latency-ms", "300", "--hold-prefix", "hold_"))

    @classmethod
    def tearDownClass(cls):
        cls.stack.stop()

    def test_a_python_client_generated_from_proto_submits_gets_status_and_watches(self):
        """a Python client generated from proto/ submits (with a request_id and a queue_timeout),
        gets status and watches"""
        stub = self.stack.stub(new_channel=True)
        request = pb.SubmitDocRequest(doc_id="py_interop", request_id="py-interop-1",
                                      queue_timeout=duration_pb2.Duration(seconds=3600))
        r = stub.SubmitDoc(request, timeout=10)
        self.assertEqual(r.state, pb.Task.PENDING)
        self.assertEqual(stub.SubmitDoc(request, timeout=10).task_id, r.task_id, "the same request_id: the same task")
        t = stub.GetStatus(pb.GetStatusRequest(task_id=r.task_id), timeout=10)
        self.assertEqual((t.task_id, t.doc_id), (r.task_id, "py_interop"))
        w = Watcher(stub, r.task_id).finish(timeout=60)
        self.assertEqual(w.code, grpc.StatusCode.OK, w.details)
        check_stream(self, w.messages, r.task_id)
        self.assertEqual(w.messages[-1].state, pb.Task.SUCCESS)
        self.assertIn("processed py_interop", w.messages[-1].result)

    def test_a_python_client_generated_from_proto_cancels_a_task(self):
        """a Python client generated from proto/ cancels a task and reads it back CANCELLED"""
        stub = self.stack.stub(new_channel=True)
        r = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="hold_py_cancel"), timeout=10)
        t = stub.CancelTask(pb.CancelTaskRequest(task_id=r.task_id), timeout=10)
        self.assertEqual((t.task_id, t.doc_id, t.state, t.error),
                         (r.task_id, "hold_py_cancel", pb.Task.CANCELLED, "cancelled by the caller"))
        self.assertEqual(stub.GetStatus(pb.GetStatusRequest(task_id=r.task_id), timeout=10), t)
    def test_a_python_client_generated_from_proto_lists_its_tasks_and_deletes_an_ended_one(self):
        """a Python client generated from proto/ lists its tasks newest first, is refused the deletion of a
        pending task and deletes an ended one"""
        s = Stack().start_redis().start_ai().start_server()
        self.addCleanup(s.stop)
        stub = s.stub(new_channel=True)
        ids = [stub.SubmitDoc(pb.SubmitDocRequest(doc_id="py_list_%d" % i), timeout=10).task_id for i in range(3)]
        page = stub.ListTasks(pb.ListTasksRequest(page_size=2), timeout=10)
        self.assertEqual([t.task_id for t in page.tasks], ids[:0:-1])
        self.assertEqual(page.tasks[0].doc_id, "py_list_2")
        rest = stub.ListTasks(pb.ListTasksRequest(page_size=1, page_token=page.next_page_token), timeout=10)
        self.assertEqual(([t.task_id for t in rest.tasks], rest.next_page_token), ([ids[0]], ""))
        with self.assertRaises(grpc.RpcError) as cm:
            stub.DeleteTask(pb.DeleteTaskRequest(task_id=ids[2]), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION, "no worker: still PENDING")
        s.start_worker()
        s.wait_terminal(ids[2])
        stub.DeleteTask(pb.DeleteTaskRequest(task_id=ids[2]), timeout=10)
        listed = [t.task_id for t in stub.ListTasks(pb.ListTasksRequest(), timeout=10).tasks]
        self.assertEqual(listed, ids[1::-1])

    def run_node(self, version, doc):
        r = subprocess.run(["node", "client.js", self.stack.address(), version, doc], cwd=NODE_DIR,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr + self.stack.logs())
        return json.loads(r.stdout)

    @needs("DOCQ_NODE_CLIENT")
    def test_a_node_client_discovers_docqueue_through_reflection_and_reads_its_task_back(self):
        """a Node.js client discovers DocQueue through reflection v1 and v1alpha, submits, reads its
        task back and cancels another"""
        for version in ("v1", "v1alpha"):
            doc = "node_%s" % version
            out = self.run_node(version, doc)
            self.assertIn("docq.v1.DocQueue", out["services"])
            self.assertEqual(out["methods"], ["SubmitDoc", "GetStatus", "WatchStatus", "CancelTask", "ListTasks", "DeleteTask"])
            self.assertEqual(out["submitted"]["state"], "PENDING")
            self.assertEqual(out["again"]["task_id"], out["submitted"]["task_id"], "the same request_id: the same task")
            self.assertEqual(out["status"]["task_id"], out["submitted"]["task_id"])
            self.assertEqual(out["status"]["doc_id"], doc)
            self.assertIn(out["status"]["state"], ("PENDING", "STARTED", "SUCCESS"))
            self.assertEqual(out["cancelled"]["task_id"], out["cancelled"]["asked"])
            self.assertEqual((out["cancelled"]["state"], out["cancelled"]["error"]),
                             ("CANCELLED", "cancelled by the caller"))
            self.assertEqual(out["listed"][0], out["submitted"]["task_id"])
            self.assertEqual((out["ended"], out["deleted"]), ("SUCCESS", True))
            self.assertEqual((out["status_after_delete"], out["delete_again"]), ("NOT_FOUND", "NOT_FOUND"))
            # The generated Python client no longer finds the deleted task either.
            with self.assertRaises(grpc.RpcError) as cm:
                self.stack.stub().GetStatus(pb.GetStatusRequest(task_id=out["submitted"]["task_id"]), timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)


if __name__ == "__main__":
    unittest.main()
