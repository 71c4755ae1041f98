"""grpc.health.v1 on the server, and /healthz and /readyz on both binaries:
what Kubernetes probes and load balancers see as Redis comes and goes and as
a server shuts down."""
import hashlib
import os
import signal
import socket
import threading
import time
import unittest

import grpc

from probes import NOT_SERVING, SERVICE_UNKNOWN, SERVING, HealthWatch, health_check, http_get, metrics_port
from stack import Stack, pb, wait_for


class Health(unittest.TestCase):
    def setUp(self):
        self.stack = Stack().start_redis()
        self.addCleanup(self.stack.stop)

    def channel(self):
        ch = grpc.insecure_channel(self.stack.address())
        self.addCleanup(ch.close)
        return ch

    def test_check_needs_no_api_key_nor_rate_limit_and_knows_only_its_services(self):
        """Health Check needs no API key nor rate limit, is SERVING for its two services and
        NOT_FOUND for others"""
        path = os.path.join(self.stack.dir, "keys")
        with open(path, "w") as f:
            f.write("alice %s\n" % hashlib.sha256(b"key-alice").hexdigest())
        self.stack.start_server(DOCQ_API_KEYS_FILE=path, DOCQ_READ_RATE_LIMIT="1")
        ch = self.channel()
        # The API is closed to callers without a key...
        with self.assertRaises(grpc.RpcError) as cm:
            self.stack.stub().GetStatus(pb.GetStatusRequest(task_id="s0-" + "0" * 32), timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        # ...but health answers anyone, as often as asked.
        for _ in range(20):
            self.assertEqual(health_check(ch, ""), SERVING)
            self.assertEqual(health_check(ch, "docq.v1.DocQueue"), SERVING)
        for service in ("docq.v1.Nope", "grpc.health.v1.Health", "x" * 300):
            with self.assertRaises(grpc.RpcError) as cm:
                health_check(ch, service)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND, service)
            self.assertIn("unknown service", cm.exception.details())
        # A Watch of an unknown service says SERVICE_UNKNOWN and stays open.
        w = HealthWatch(ch, "docq.v1.Nope")
        w.wait_statuses([SERVICE_UNKNOWN])
        time.sleep(0.3)
        self.assertIsNone(w.code)
        w.call.cancel()
        w.finish()
        self.assertEqual(w.code, grpc.StatusCode.CANCELLED)

    def test_check_and_watch_follow_redis_going_down_and_coming_back(self):
        """Health Check and Watch turn NOT_SERVING when Redis stops and SERVING when it is back"""
        s = self.stack
        s.start_server(DOCQ_HEALTH_INTERVAL_MS="100")
        ch = self.channel()
        port = metrics_port(s.server)
        watches = [HealthWatch(ch, ""), HealthWatch(ch, "docq.v1.DocQueue")]
        for w in watches:
            w.wait_statuses([SERVING])
        self.assertEqual(http_get(port, "/readyz")[0], 200)
        s.stop_redis()
        for w in watches:
            w.wait_statuses([SERVING, NOT_SERVING])
        self.assertEqual(health_check(ch, ""), NOT_SERVING)
        self.assertEqual(health_check(ch, "docq.v1.DocQueue"), NOT_SERVING)
        self.assertEqual(http_get(port, "/readyz")[0], 503)
        self.assertEqual(http_get(port, "/healthz")[0], 200)
        s.start_redis()
        for w in watches:
            w.wait_statuses([SERVING, NOT_SERVING, SERVING])
        self.assertEqual(health_check(ch, ""), SERVING)
        self.assertEqual(http_get(port, "/readyz")[0], 200)
        self.assertTrue(s.stub().SubmitDoc(pb.SubmitDocRequest(doc_id="after"), timeout=10).task_id)
        for w in watches:
            self.assertIsNone(w.code, s.logs())
            w.call.cancel()
            w.finish()

    def test_health_watch_and_reflection_streams_count_against_the_per_caller_stream_limit(self):
        """health Watch and reflection streams count against the per-caller stream limit"""
        from reflection.v1 import reflection_pb2 as v1
        from test_reflection import reflection_stream
        self.stack.start_server(DOCQ_MAX_WATCHES_PER_CALLER="3")
        ch = self.channel()
        watches = [HealthWatch(ch, "") for _ in range(2)]
        for w in watches:
            w.wait_statuses([SERVING])
        requests, responses = reflection_stream(ch)
        requests.put(v1.ServerReflectionRequest(list_services=""))
        self.assertTrue(next(responses).HasField("list_services_response"))
        # 127.0.0.1 holds 3 streams: a 4th of any kind is refused, saying why.
        refused = HealthWatch(ch, "").finish(timeout=20)
        self.assertEqual(refused.code, grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertEqual(refused.details, "too many open streams (WatchStatus, health Watch and reflection count "
                                          "together): at most 3 per caller (127.0.0.1); end one first")
        more, more_responses = reflection_stream(ch)
        more.put(v1.ServerReflectionRequest(list_services=""))
        with self.assertRaises(grpc.RpcError) as cm:
            next(more_responses)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        task = self.stack.stub().SubmitDoc(pb.SubmitDocRequest(doc_id="d"), timeout=10).task_id
        with self.assertRaises(grpc.RpcError) as cm:
            next(self.stack.stub().WatchStatus(pb.WatchStatusRequest(task_id=task), timeout=10))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        # Closing one (a cancelled watch, a half-closed reflection stream) lets another open.
        watches[0].call.cancel()
        watches[0].finish()
        requests.put(None)
        self.assertEqual(list(responses), [])

        def opens():
            w = HealthWatch(ch, "")
            wait_for(lambda: w.statuses or w.code, timeout=10, what="the watch to answer")
            return w if w.statuses == [SERVING] else None
        wait_for(opens, timeout=10, what="a new watch to be admitted")
        wait_for(opens, timeout=10, what="a second new watch to be admitted")
        self.assertEqual(HealthWatch(ch, "").finish().code, grpc.StatusCode.RESOURCE_EXHAUSTED)

    def test_sigterm_turns_health_not_serving_before_the_drain(self):
        """SIGTERM turns health NOT_SERVING before the drain while calls are still served"""
        s = self.stack
        s.start_server(DOCQ_SHUTDOWN_DELAY_MS="2000")
        ch = self.channel()
        w = HealthWatch(ch, "")
        w.wait_statuses([SERVING])
        t0 = time.monotonic()
        s.server.signal(signal.SIGTERM)
        w.wait_statuses([SERVING, NOT_SERVING], timeout=10)
        # During DOCQ_SHUTDOWN_DELAY_MS: NOT_SERVING, yet everything is still served.
        self.assertEqual(health_check(ch, ""), NOT_SERVING)
        self.assertTrue(s.stub().SubmitDoc(pb.SubmitDocRequest(doc_id="during"), timeout=5).task_id)
        self.assertLess(w.times[1] - t0, 1.5, "NOT_SERVING came only after the delay")
        w.finish(timeout=30)
        self.assertEqual(w.code, grpc.StatusCode.UNAVAILABLE, w.details)
        self.assertEqual(w.statuses, [SERVING, NOT_SERVING])
        self.assertEqual(s.server.wait(timeout=30), 0, s.server.text()[-3000:])
        self.assertGreaterEqual(time.monotonic() - t0, 2.0)


class WorkerProbes(unittest.TestCase):
    def setUp(self):
        self.stack = Stack().start_redis().start_ai()
        self.addCleanup(self.stack.stop)

    def test_worker_healthz_is_200_while_it_runs_and_readyz_503_while_redis_is_down(self):
        """worker /healthz is 200 while it runs and /readyz is 503 while Redis is down, 200 after"""
        s = self.stack
        w = s.start_worker()
        port = metrics_port(w)
        wait_for(lambda: http_get(port, "/readyz")[0] == 200, what="the worker to be ready")
        self.assertEqual(http_get(port, "/healthz"), (200, "text/plain; charset=utf-8", "ok\n"))
        self.assertEqual(http_get(port, "/nope")[0], 404)
        s.stop_redis()
        wait_for(lambda: http_get(port, "/readyz")[0] == 503, what="readyz to say 503", timeout=15)
        self.assertEqual(http_get(port, "/healthz")[0], 200)
        s.start_redis()
        wait_for(lambda: http_get(port, "/readyz")[0] == 200, what="readyz to be 200 again", timeout=15)
        # Ready means working: a task submitted now runs.
        s.start_server()
        tid = s.stub().SubmitDoc(pb.SubmitDocRequest(doc_id="ready"), timeout=10).task_id
        self.assertEqual(s.wait_terminal(tid).state, pb.Task.SUCCESS, s.logs())
        w.signal(signal.SIGTERM)
        self.assertEqual(w.wait(timeout=30), 0)

    def test_a_worker_started_before_redis_is_not_ready_until_redis_is_up(self):
        """a worker started before Redis is not ready until Redis is up"""
        s = self.stack
        s.stop_redis()
        w = s.start_worker()
        port = metrics_port(w)
        self.assertEqual(http_get(port, "/readyz")[0], 503)
        self.assertEqual(http_get(port, "/healthz")[0], 200)
        s.start_redis()
        wait_for(lambda: http_get(port, "/readyz")[0] == 200, what="readyz to be 200", timeout=15)


if __name__ == "__main__":
    unittest.main()


class SlowClients(unittest.TestCase):
    """The HTTP endpoint serves every connection from one poll loop: a client
    that trickles its request, or a flood of idle connections, cannot stall
    the probes nor the shutdown."""

    def setUp(self):
        self.stack = Stack().start_redis().start_ai()
        self.addCleanup(self.stack.stop)

    def slow_client(self, port):
        """A client that sends one byte of a request a second until closed."""
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        stop = threading.Event()

        def trickle():
            for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 100:
                if stop.wait(1.0):
                    return
                try:
                    sock.send(bytes([b]))
                except OSError:
                    return

        sock.send(b"G")
        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        self.addCleanup(lambda: (stop.set(), t.join(), sock.close()))
        time.sleep(0.2)  # The endpoint has accepted it and read its first byte.

    def assert_three_healthz_within_a_second_each(self, port, who):
        for i in range(3):
            self.assertEqual(http_get(port, "/healthz", timeout=1)[0], 200, "%s, call %d" % (who, i))

    def endpoints(self, **env):
        """Start a server and a worker with env; [(proc, metrics port)],
        worker first, each once its /readyz says 200."""
        s = self.stack.start_server(**env)
        w = s.start_worker(**env)
        out = [(w, metrics_port(w)), (s.server, metrics_port(s.server))]
        for proc, port in out:
            wait_for(lambda: http_get(port, "/readyz")[0] == 200, what="%s to be ready" % proc.name)
        return out

    def test_a_client_sending_one_byte_a_second_does_not_delay_three_healthz_calls(self):
        """a client sending one byte a second does not delay three /healthz calls with a 1 s
        timeout"""
        for proc, port in self.endpoints():
            self.slow_client(port)
            self.assert_three_healthz_within_a_second_each(port, proc.name)

    def test_sigterm_with_a_1s_grace_exits_within_3s_while_a_slow_client_is_connected(self):
        """SIGTERM with a 1 s grace exits within 3 s while a slow client is connected to /healthz"""
        for proc, port in self.endpoints(DOCQ_SHUTDOWN_GRACE_MS="1000"):
            self.slow_client(port)
            t0 = time.monotonic()
            proc.signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=30), 0, proc.text()[-3000:])
            self.assertLess(time.monotonic() - t0, 3.0, "%s took too long to stop" % proc.name)

    def test_many_idle_connections_do_not_stop_healthz_answering(self):
        """200 idle connections to the HTTP endpoint do not stop /healthz answering: the oldest
        make room"""
        for proc, port in self.endpoints():
            idle, deadline = [], time.monotonic() + 30
            self.addCleanup(lambda idle=idle: [c.close() for c in idle])
            for _ in range(200):  # A serial endpoint stops accepting these (2 s each past its backlog).
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
                self.assertLess(time.monotonic(), deadline, "%s stopped accepting connections" % proc.name)
            # Past the cap of 64, each new connection closes the oldest one.
            self.assert_three_healthz_within_a_second_each(port, proc.name)
