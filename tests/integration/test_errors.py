"""Bad input and unknown things get clear gRPC statuses and never crash anything."""
import unittest

import grpc

from stack import Stack, pb


class Errors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = Stack().start_redis()
        cls.stack.start_server()
        cls.stub = cls.stack.stub()

    @classmethod
    def tearDownClass(cls):
        cls.stack.stop()

    def status_of(self, call, req):
        with self.assertRaises(grpc.RpcError) as cm:
            call(req, timeout=5)
        return cm.exception.code(), cm.exception.details()

    def submit_error(self, doc_id):
        return self.status_of(self.stub.SubmitDoc, pb.SubmitDocRequest(doc_id=doc_id))

    def test_an_unknown_task_id_is_not_found(self):
        """an unknown task id is NOT_FOUND"""
        code, details = self.status_of(self.stub.GetStatus, pb.GetStatusRequest(task_id="s1-" + "ab" * 16))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        self.assertIn("not found", details)

    def test_a_task_id_of_a_shard_that_does_not_exist_is_not_found(self):
        """a task id of a shard that does not exist is NOT_FOUND"""
        code, _ = self.status_of(self.stub.GetStatus, pb.GetStatusRequest(task_id="s999-" + "ab" * 16))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)

    def test_a_malformed_task_id_is_invalid_argument(self):
        """a malformed task id is INVALID_ARGUMENT"""
        for tid in ["", "nope", "s1-xyz", "s1-" + "AB" * 16, "s1-" + "ab" * 17]:
            code, details = self.status_of(self.stub.GetStatus, pb.GetStatusRequest(task_id=tid))
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, tid)
            self.assertIn("task_id", details)

    def test_an_empty_doc_id_is_invalid_argument(self):
        """an empty doc_id is INVALID_ARGUMENT"""
        code, details = self.submit_error("")
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("empty", details)

    def test_an_oversized_doc_id_is_invalid_argument(self):
        """an oversized doc_id is INVALID_ARGUMENT"""
        code, details = self.submit_error("x" * 257)
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("257", details)
        ok = self.stub.SubmitDoc(pb.SubmitDocRequest(doc_id="x" * 256), timeout=5)
        self.assertEqual(ok.state, pb.Task.PENDING)

    def test_a_doc_id_with_control_characters_is_invalid_argument(self):
        """a doc_id with control characters is INVALID_ARGUMENT"""
        for doc in ["a\nb", "tab\there", "del\x7f", "c1\x85"]:
            code, details = self.submit_error(doc)
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, repr(doc))
            self.assertIn("control character", details)
        # A NUL must not be silently cut off (protobuf-c strings are C strings).
        code, details = self.submit_error("nul\x00x")
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("NUL", details)

    def test_a_refused_submit_leaves_nothing_in_redis(self):
        """a refused submit leaves nothing in Redis"""
        before = self.stack.redis_cli("DBSIZE")
        self.submit_error("")
        self.submit_error("bad\x01")
        self.assertEqual(self.stack.redis_cli("DBSIZE"), before)

    def test_a_unicode_doc_id_is_accepted_and_read_back_unchanged(self):
        """a unicode doc_id is accepted and read back unchanged"""
        doc = "Résumé — 日本語 📄"
        r = self.stub.SubmitDoc(pb.SubmitDocRequest(doc_id=doc), timeout=5)
        t = self.stub.GetStatus(pb.GetStatusRequest(task_id=r.task_id), timeout=5)
        self.assertEqual(t.doc_id, doc)
        self.assertEqual(t.state, pb.Task.PENDING)
        self.assertEqual(t.attempts, 0)
        self.assertFalse(t.HasField("started_at"))

    def test_malformed_request_bytes_are_invalid_argument(self):
        """malformed request bytes are INVALID_ARGUMENT and the server keeps serving"""
        channel = grpc.insecure_channel(self.stack.address())
        self.addCleanup(channel.close)
        raw = channel.unary_unary("/docq.v1.DocQueue/SubmitDoc")
        with self.assertRaises(grpc.RpcError) as cm:
            raw(b"\x0a\xff\xff\xff\xff\x0f", timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        # The server is still serving.
        self.assertTrue(self.stub.SubmitDoc(pb.SubmitDocRequest(doc_id="after"), timeout=5).task_id)

    def test_an_unknown_method_is_unimplemented(self):
        """an unknown method is UNIMPLEMENTED"""
        channel = grpc.insecure_channel(self.stack.address())
        self.addCleanup(channel.close)
        with self.assertRaises(grpc.RpcError) as cm:
            channel.unary_unary("/docq.v1.DocQueue/Nope")(b"", timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
        self.assertIn("/docq.v1.DocQueue/Nope", cm.exception.details())

    def watch_error(self, task_id):
        with self.assertRaises(grpc.RpcError) as cm:
            list(self.stub.WatchStatus(pb.WatchStatusRequest(task_id=task_id), timeout=5))
        return cm.exception.code(), cm.exception.details()

    def test_watch_status_of_an_unknown_or_malformed_task_id_fails_at_once(self):
        """WatchStatus of an unknown task id is NOT_FOUND and of a malformed one INVALID_ARGUMENT"""
        code, details = self.watch_error("s1-" + "ab" * 16)
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        self.assertIn("not found", details)
        self.assertEqual(self.watch_error("s999-" + "ab" * 16)[0], grpc.StatusCode.NOT_FOUND)
        code, details = self.watch_error("s1-xyz")
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("task_id", details)
        # Refused watches leave nothing open behind them.
        self.assertEqual(self.stack.open_watches(), 0)

if __name__ == "__main__":
    unittest.main()
