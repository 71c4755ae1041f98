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
        cls.stack = Stack().start_all(workers=1, ai_args=("--latency-ms", "300"))

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

    def run_node(self, version, doc):
        r = subprocess.run(["node", "client.js", self.stack.address(), version, doc], cwd=NODE_DIR,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr + self.stack.logs())
        return json.loads(r.stdout)

    @needs("DOCQ_NODE_CLIENT")
    def test_a_node_client_discovers_docqueue_through_reflection_and_reads_its_task_back(self):
        """a Node.js client discovers DocQueue through reflection v1 and v1alpha, submits and
        reads its task back"""
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
            # The same task, seen by the generated Python client, runs to the end.
            self.assertEqual(self.stack.wait_terminal(out["submitted"]["task_id"]).doc_id, doc)


if __name__ == "__main__":
    unittest.main()
