"""/metrics of the server and the worker: strict Prometheus text whose
counters move exactly with the traffic sent."""
import signal
import time
import unittest

import grpc

from probes import ParseError, health_check, metrics_port, parse_prometheus, scrape
from stack import Stack, pb, wait_for
from test_watch import Watcher

GOOD_PAGE = """# HELP docq_x_total Things.
# TYPE docq_x_total counter
docq_x_total{kind="a\\"b\\\\c\\nd"} 1
docq_x_total{kind="e"} 2.5e3
# HELP docq_h_seconds Times.
# TYPE docq_h_seconds histogram
docq_h_seconds_bucket{le="0.5"} 1
docq_h_seconds_bucket{le="+Inf"} 2
docq_h_seconds_sum 0.75
docq_h_seconds_count 2
"""


def delta(before, after, family, suffix="", **labels):
    return after[family].get(suffix=suffix, **labels) - before[family].get(suffix=suffix, **labels)


class Parser(unittest.TestCase):
    def test_the_tests_prometheus_parser_refuses_what_prometheus_would(self):
        """the tests' Prometheus parser refuses what Prometheus would"""
        fams = parse_prometheus(GOOD_PAGE)
        self.assertEqual(fams["docq_x_total"].value(kind='a"b\\c\nd'), 1)
        self.assertEqual(fams["docq_h_seconds"].value("_count"), 2)
        broken = {
            "no newline at the end": GOOD_PAGE[:-1],
            "no TYPE": GOOD_PAGE.replace("# TYPE docq_x_total counter\n", ""),
            "no HELP": GOOD_PAGE.replace("# HELP docq_x_total Things.\n", ""),
            "a counter without _total": GOOD_PAGE.replace("docq_x_total", "docq_x"),
            "an unknown type": GOOD_PAGE.replace("counter", "countr"),
            "a bad escape": GOOD_PAGE.replace("\\n", "\\t"),
            "an unquoted label": GOOD_PAGE.replace('kind="e"', "kind=e"),
            "a bad value": GOOD_PAGE.replace("2.5e3", "2,5"),
            "a series twice": GOOD_PAGE.replace('kind="e"', 'kind="a\\"b\\\\c\\nd"'),
            "buckets not cumulative": GOOD_PAGE.replace('le="+Inf"} 2', 'le="+Inf"} 0'),
            "no +Inf bucket": GOOD_PAGE.replace('le="+Inf"', 'le="1"'),
            "_count not the +Inf bucket": GOOD_PAGE.replace("_count 2", "_count 3"),
            "a family split": GOOD_PAGE + 'docq_x_total{kind="z"} 1\n',
            "a name without docq_": GOOD_PAGE.replace("docq_x_total", "x_total"),
            "a negative counter": GOOD_PAGE.replace("} 1\n", "} -1\n", 1),
        }
        for why, page in broken.items():
            with self.assertRaises(ParseError, msg=why):
                parse_prometheus(page)


class ServerMetrics(unittest.TestCase):
    def test_server_metrics_parse_and_count_calls_by_method_and_code_refusals_and_watches(self):
        """server /metrics counts calls by method and code, rate-limit refusals, submits and open
        watches"""
        s = Stack().start_redis()
        self.addCleanup(s.stop)
        s.start_server(DOCQ_RATE_LIMIT="2", DOCQ_READ_RATE_LIMIT="4")
        port, stub = metrics_port(s.server), s.stub()
        ch = grpc.insecure_channel(s.address())
        self.addCleanup(ch.close)
        before = scrape(port)
        ids = [stub.SubmitDoc(pb.SubmitDocRequest(doc_id="m_%d" % i), timeout=10).task_id for i in range(2)]

        def code_of(fn, *args):
            with self.assertRaises(grpc.RpcError) as cm:
                fn(*args)
            return cm.exception.code()
        self.assertEqual(code_of(stub.SubmitDoc, pb.SubmitDocRequest(doc_id="m_2"), 10),
                         grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertEqual(code_of(ch.unary_unary("/docq.v1.DocQueue/SubmitDoc"), b"\x0a\xff\xff\xff\xff\x0f", 10),
                         grpc.StatusCode.INVALID_ARGUMENT)
        stub.GetStatus(pb.GetStatusRequest(task_id=ids[0]), timeout=10)                       # read 1
        self.assertEqual(code_of(stub.GetStatus, pb.GetStatusRequest(task_id="s0-" + "0" * 32), 10),
                         grpc.StatusCode.NOT_FOUND)                                            # read 2
        w = Watcher(stub, ids[1])                                                              # read 3
        wait_for(lambda: w.messages, what="the watch's first message")
        during = scrape(port)
        self.assertEqual(during["docq_watches_open"].value(), 1)
        self.assertEqual(during["docq_grpc_streams_open"].value(method="docq.v1.DocQueue/WatchStatus"), 1)
        w.call.cancel()
        w.finish()
        stub.GetStatus(pb.GetStatusRequest(task_id=ids[0]), timeout=10)                       # read 4
        self.assertEqual(code_of(stub.GetStatus, pb.GetStatusRequest(task_id=ids[0]), 10),
                         grpc.StatusCode.RESOURCE_EXHAUSTED)                                   # read 5
        self.assertEqual(code_of(ch.unary_unary("/docq.v1.DocQueue/Nope"), b"", 10), grpc.StatusCode.UNIMPLEMENTED)
        health_check(ch, "")
        wait_for(lambda: scrape(port)["docq_watches_open"].value() == 0, what="the watch to be gone")
        after = scrape(port)

        calls = {("docq.v1.DocQueue/SubmitDoc", "OK"): 2, ("docq.v1.DocQueue/SubmitDoc", "RESOURCE_EXHAUSTED"): 1,
                 ("docq.v1.DocQueue/SubmitDoc", "INVALID_ARGUMENT"): 1, ("docq.v1.DocQueue/GetStatus", "OK"): 2,
                 ("docq.v1.DocQueue/GetStatus", "NOT_FOUND"): 1,
                 ("docq.v1.DocQueue/GetStatus", "RESOURCE_EXHAUSTED"): 1,
                 ("docq.v1.DocQueue/WatchStatus", "CANCELLED"): 1, ("docq.v1.DocQueue/WatchStatus", "OK"): 0,
                 ("unknown", "UNIMPLEMENTED"): 1, ("grpc.health.v1.Health/Check", "OK"): 1}
        for (method, code), n in calls.items():
            self.assertEqual(delta(before, after, "docq_grpc_requests_total", method=method, code=code), n,
                             (method, code))
        self.assertEqual(sum(v for _, _, v in after["docq_grpc_requests_total"].samples) -
                         sum(v for _, _, v in before["docq_grpc_requests_total"].samples), sum(calls.values()))
        lat = "docq_grpc_request_duration_seconds"
        self.assertEqual(delta(before, after, lat, "_count", method="docq.v1.DocQueue/SubmitDoc"), 4)
        self.assertEqual(delta(before, after, lat, "_count", method="docq.v1.DocQueue/GetStatus"), 4)
        self.assertGreater(delta(before, after, lat, "_sum", method="docq.v1.DocQueue/SubmitDoc"), 0)
        self.assertEqual(delta(before, after, "docq_rate_limited_total", kind="submit"), 1)
        self.assertEqual(delta(before, after, "docq_rate_limited_total", kind="read"), 1)
        self.assertEqual(delta(before, after, "docq_tasks_submitted_total"), 2)
        self.assertEqual(after["docq_serving"].value(), 1)
        self.assertGreater(after["process_resident_memory_bytes"].value(), 1 << 20)
        self.assertGreater(after["process_open_fds"].value(), 3)
        self.assertLess(abs(after["process_start_time_seconds"].value() - time.time()), 600)
        for f in after.values():
            self.assertTrue(f.name.startswith(("docq_", "process_")), f.name)


class WorkerMetrics(unittest.TestCase):
    def setUp(self):
        self.stack = Stack().start_redis()
        self.addCleanup(self.stack.stop)

    def test_worker_metrics_count_tasks_by_outcome_ai_latency_errors_by_kind_and_retries(self):
        """worker /metrics counts tasks by outcome, AI latency, AI errors by kind and retries"""
        s = self.stack
        s.start_ai("--latency-ms", "50", "--fail-first", "1", "--fail-status", "503", "--reject-prefix", "bad_")
        s.start_server()
        w = s.start_worker(DOCQ_MAX_ATTEMPTS="2", DOCQ_RETRY_BASE_MS="50", DOCQ_RETRY_MAX_MS="100",
                           DOCQ_AI_TIMEOUT_MS="1500", DOCQ_AI_CONNECT_TIMEOUT_MS="500")
        port, stub = metrics_port(w), s.stub()
        before = scrape(port)

        def run(doc):
            tid = stub.SubmitDoc(pb.SubmitDocRequest(doc_id=doc), timeout=10).task_id
            return s.wait_terminal(tid, timeout=60).state
        # Each of ok_1, ok_2: 503, then a retry that succeeds; bad_1: 422 at once.
        self.assertEqual([run(d) for d in ("ok_1", "ok_2", "bad_1")],
                         [pb.Task.SUCCESS, pb.Task.SUCCESS, pb.Task.FAILURE], s.logs())
        # No AI at all: two attempts that cannot connect.
        ai_port = s.ai_port
        s.ai.kill()
        self.assertEqual(run("down_1"), pb.Task.FAILURE, s.logs())
        # An AI slower than DOCQ_AI_TIMEOUT_MS: two attempts that time out.
        s.start_ai("--latency-ms", "3000", port=ai_port)
        self.assertEqual(run("slow_1"), pb.Task.FAILURE, s.logs())
        after = scrape(port)
        want = {("docq_tasks_total", "outcome", "success"): 2, ("docq_tasks_total", "outcome", "failure"): 3,
                ("docq_tasks_total", "outcome", "dead_lettered"): 0,
                ("docq_tasks_total", "outcome", "superseded"): 0,
                ("docq_ai_errors_total", "kind", "http_5xx"): 2, ("docq_ai_errors_total", "kind", "http_4xx"): 1,
                ("docq_ai_errors_total", "kind", "connect"): 2, ("docq_ai_errors_total", "kind", "timeout"): 2,
                ("docq_ai_errors_total", "kind", "body"): 0, ("docq_ai_errors_total", "kind", "other"): 0}
        for (family, label, value), n in want.items():
            self.assertEqual(delta(before, after, family, **{label: value}), n, (family, value))
        self.assertEqual(delta(before, after, "docq_retries_total"), 4)
        self.assertEqual(delta(before, after, "docq_dead_lettered_total"), 0)
        ai = "docq_ai_request_duration_seconds"
        self.assertEqual(delta(before, after, ai, "_count"), 9)
        # Five answered calls of >= 50 ms and two timeouts of >= 1.5 s.
        self.assertGreaterEqual(delta(before, after, ai, "_sum"), 5 * 0.05 + 2 * 1.5)
        # Within 1 s: the answered calls and the refused connections, not the timeouts.
        self.assertEqual(delta(before, after, ai, "_bucket", le="1"), 7)
        self.assertLessEqual(delta(before, after, ai, "_bucket", le="0.025"), 2)
        self.assertEqual(after["docq_worker_ready"].value(), 1)
        self.assertEqual(after["docq_ai_calls_in_flight"].value(), 0)
        w.signal(signal.SIGTERM)
        self.assertEqual(w.wait(timeout=30), 0)

    def test_worker_metrics_show_calls_in_flight_the_queue_length_and_the_group_lag(self):
        """worker /metrics shows calls in flight, the queue length and the consumer-group lag"""
        s = self.stack
        s.start_ai("--latency-ms", "1500")
        s.start_server()
        w = s.start_worker(DOCQ_WORKER_CONCURRENCY="1", DOCQ_METRICS_REFRESH_MS="100")
        port, stub = metrics_port(w), s.stub()
        wait_for(lambda: scrape(port).get("docq_queue_length"), what="the first queue refresh")
        ids = [stub.SubmitDoc(pb.SubmitDocRequest(doc_id="q_%d" % i), timeout=10).task_id for i in range(4)]

        def gauges():
            f = scrape(port)
            return (f["docq_ai_calls_in_flight"].value(), f["docq_queue_length"].value(),
                    f["docq_consumer_group_lag"].value())
        # One call in flight, its entry and three more in the stream, three not yet delivered.
        wait_for(lambda: gauges() == (1, 4, 3), timeout=10, what="gauges (1, 4, 3), have %s" % (gauges(),))
        for tid in ids:
            self.assertEqual(s.wait_terminal(tid, timeout=60).state, pb.Task.SUCCESS)
        wait_for(lambda: gauges() == (0, 0, 0), timeout=10, what="gauges back to 0, have %s" % (gauges(),))
        self.assertEqual(scrape(port)["docq_tasks_total"].value(outcome="success"), 4)


if __name__ == "__main__":
    unittest.main()
