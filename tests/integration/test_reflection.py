"""gRPC server reflection: a client with nothing but the server's address
finds docq.v1.DocQueue and calls it, as grpcurl does."""
import json
import os
import signal
import subprocess
import sys
import unittest

import grpc

import probes
from probes import NOT_SERVING, SERVING, HealthWatch, RequestQueue, metrics_port, scrape
from stack import PYGEN, Stack, labels, pb, wait_for
from reflection.v1 import reflection_pb2 as v1  # noqa: E402
from test_shutdown import VALGRIND, leak_summary

CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop", "reflection_client.py")
SERVICES = ["docq.v1.DocQueue", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection"]


def reflection_stream(channel, version="v1"):
    """A raw ServerReflectionInfo call: (requests queue, responses iterator)."""
    requests = RequestQueue()
    call = channel.stream_stream("/grpc.reflection.%s.ServerReflection/ServerReflectionInfo" % version,
                                 request_serializer=v1.ServerReflectionRequest.SerializeToString,
                                 response_deserializer=v1.ServerReflectionResponse.FromString)
    return requests, call(iter(requests), timeout=60)


class Reflection(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = Stack().start_redis()
        cls.stack.start_server()

    @classmethod
    def tearDownClass(cls):
        cls.stack.stop()

    def run_client(self, version, doc_id):
        # The client runs alone: no module of docq's API is ever imported into it.
        r = subprocess.run([sys.executable, CLIENT, self.stack.address(), version, doc_id], capture_output=True,
                           text=True, timeout=60, env={"DOCQ_PYGEN": PYGEN, "PATH": os.environ.get("PATH", "")})
        self.assertEqual(r.returncode, 0, r.stderr + self.stack.logs())
        return json.loads(r.stdout)

    def check_client(self, version):
        doc = "refl_%s" % version
        out = self.run_client(version, doc)
        self.assertEqual(out["services"], SERVICES)
        self.assertEqual(out["files"], ["docq/v1/docq.proto", "google/protobuf/duration.proto",
                                        "google/protobuf/empty.proto", "google/protobuf/timestamp.proto"])
        self.assertEqual(out["methods"], ["SubmitDoc", "GetStatus", "WatchStatus", "CancelTask", "ListTasks", "DeleteTask"])
        self.assertEqual(out["not_found"], [grpc.StatusCode.NOT_FOUND.value[0]] * 2)
        self.assertEqual(out["answers_on_one_stream"], 4)
        self.assertEqual(out["end_of_stream"], "OK")
        self.assertEqual(out["status"], {"task_id": out["task_id"], "doc_id": doc, "state": "PENDING"})
        # The task is real: the generated client reads it back too.
        task = self.stack.task(out["task_id"])
        self.assertEqual((task.doc_id, task.state), (doc, pb.Task.PENDING))

    def test_a_client_without_docq_proto_calls_docqueue_through_reflection_v1(self):
        """a client without docq's proto calls SubmitDoc and GetStatus through reflection v1"""
        self.check_client("v1")

    def test_a_client_without_docq_proto_calls_docqueue_through_reflection_v1alpha(self):
        """a client without docq's proto calls SubmitDoc and GetStatus through reflection v1alpha"""
        self.check_client("v1alpha")

    def test_answers_come_in_request_order_with_not_found_for_unknown_names(self):
        """reflection answers in request order, with NOT_FOUND for unknown symbols and files"""
        ch = grpc.insecure_channel(self.stack.address())
        self.addCleanup(ch.close)
        requests, responses = reflection_stream(ch)
        asks = [v1.ServerReflectionRequest(file_by_filename="google/protobuf/timestamp.proto"),
                v1.ServerReflectionRequest(file_containing_symbol="docq.v1.Nope"),
                v1.ServerReflectionRequest(list_services=""),
                v1.ServerReflectionRequest(file_by_filename="docq/v1/nope.proto"),
                v1.ServerReflectionRequest(file_containing_symbol="grpc.health.v1.Health.Check"),
                v1.ServerReflectionRequest(all_extension_numbers_of_type="docq.v1.Task"),
                v1.ServerReflectionRequest(all_extension_numbers_of_type="docq.v1.Nope")]
        for a in asks:
            requests.put(a)
        answers = [next(responses) for _ in asks]
        for a, r in zip(asks, answers):
            self.assertEqual(r.original_request, a)
        kinds = [r.WhichOneof("message_response") for r in answers]
        self.assertEqual(kinds, ["file_descriptor_response", "error_response", "list_services_response",
                                 "error_response", "file_descriptor_response",
                                 "all_extension_numbers_response", "error_response"])
        for i in (1, 3, 6):
            self.assertEqual(answers[i].error_response.error_code, grpc.StatusCode.NOT_FOUND.value[0])
            self.assertIn("not found", answers[i].error_response.error_message)
        self.assertEqual(len(answers[4].file_descriptor_response.file_descriptor_proto), 1)
        requests.put(None)
        self.assertEqual(list(responses), [])
        self.assertEqual(responses.code(), grpc.StatusCode.OK)

    def test_a_malformed_request_ends_the_stream_with_invalid_argument_and_the_server_keeps_serving(self):
        """a malformed reflection request is INVALID_ARGUMENT and the server keeps serving"""
        ch = grpc.insecure_channel(self.stack.address())
        self.addCleanup(ch.close)
        raw = ch.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
        with self.assertRaises(grpc.RpcError) as cm:
            list(raw(iter([b"\x0a\xff\xff\xff\xff\x0f"]), timeout=10))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        requests, responses = reflection_stream(ch, "v1alpha")
        requests.put(v1.ServerReflectionRequest(list_services=""))
        self.assertEqual(sorted(s.name for s in next(responses).list_services_response.service), SERVICES)
        requests.put(None)
        self.assertEqual(list(responses), [])


class ReflectionOff(unittest.TestCase):
    def test_with_docq_reflection_0_reflection_is_unimplemented(self):
        """with DOCQ_REFLECTION=0 reflection is UNIMPLEMENTED"""
        s = Stack().start_redis()
        self.addCleanup(s.stop)
        s.start_server(DOCQ_REFLECTION="0")
        ch = grpc.insecure_channel(s.address())
        self.addCleanup(ch.close)
        for version in ("v1", "v1alpha"):
            requests, responses = reflection_stream(ch, version)
            requests.put(v1.ServerReflectionRequest(list_services=""))
            requests.put(None)
            with self.assertRaises(grpc.RpcError) as cm:
                list(responses)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED, version)
        self.assertEqual(probes.health_check(ch, ""), SERVING)
        self.assertTrue(s.stub().SubmitDoc(pb.SubmitDocRequest(doc_id="no_reflection"), timeout=10).task_id)


class StreamsAtShutdown(unittest.TestCase):
    @labels("valgrind")
    def test_the_server_under_valgrind_ends_reflection_and_health_streams_on_sigterm_with_no_leaks(self):
        """the server under valgrind ends reflection and health streams on SIGTERM with no leaks
        and no errors"""
        s = Stack().start_redis()
        self.addCleanup(s.stop)
        s.start_server(wrap=VALGRIND)
        ch = grpc.insecure_channel(s.address())
        self.addCleanup(ch.close)
        # A reflection stream with one answer read and the stream left open...
        requests, responses = reflection_stream(ch)
        requests.put(v1.ServerReflectionRequest(file_containing_symbol="docq.v1.DocQueue"))
        self.assertEqual(len(next(responses).file_descriptor_response.file_descriptor_proto), 4)
        # ...one that ended, one malformed, a health watch open, a page scraped.
        done_q, done = reflection_stream(ch, "v1alpha")
        done_q.put(v1.ServerReflectionRequest(list_services=""))
        done_q.put(None)
        self.assertEqual(len(list(done)), 1)
        with self.assertRaises(grpc.RpcError):
            list(ch.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")(
                iter([b"\xff"]), timeout=30))
        watch = HealthWatch(ch, "")
        watch.wait_statuses([SERVING], timeout=60)
        families = scrape(metrics_port(s.server))
        opened = families["docq_grpc_streams_open"]
        self.assertEqual(opened.value(method="grpc.reflection.v1.ServerReflection/ServerReflectionInfo"), 1)
        self.assertEqual(opened.value(method="grpc.health.v1.Health/Watch"), 1)
        s.server.signal(signal.SIGTERM)
        watch.finish(timeout=60)
        self.assertEqual(watch.statuses, [SERVING, NOT_SERVING])
        self.assertEqual(watch.code, grpc.StatusCode.UNAVAILABLE, watch.details)
        with self.assertRaises(grpc.RpcError) as cm:
            next(responses)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(s.server.wait(timeout=60), 0, s.server.text()[-3000:])
        self.assertEqual(leak_summary(s.server.text()), 0, s.server.text()[-3000:])
        self.assertIn("ERROR SUMMARY: 0 errors", s.server.text())
        wait_for(lambda: not s.server.alive(), what="the server to exit")


if __name__ == "__main__":
    unittest.main()
