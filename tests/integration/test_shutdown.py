"""Clean stops: SIGTERM finishes what is in flight and releases everything."""
import re
import signal
import threading
import time
import unittest

import grpc

from stack import Stack, labels, pb, wait_for
from test_watch import Watcher

VALGRIND = ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite", "--error-exitcode=99"]


def leak_summary(text):
    """Bytes valgrind says were definitely lost (0 when nothing was left)."""
    if "All heap blocks were freed -- no leaks are possible" in text:
        return 0
    m = re.search(r"definitely lost: ([\d,]+) bytes", text)
    return int(m.group(1).replace(",", "")) if m else None


class Shutdown(unittest.TestCase):
    def setUp(self):
        self.stack = Stack()
        self.addCleanup(self.stack.stop)

    @labels("valgrind")
    def test_server_and_worker_stop_on_sigterm_with_no_leaks_under_valgrind(self):
        """server and worker stop on SIGTERM with no leaks under valgrind"""
        s = self.stack.start_redis().start_ai()
        s.start_server(wrap=VALGRIND)
        w = s.start_worker(wrap=VALGRIND)
        stub = s.stub()
        ids = [stub.SubmitDoc(pb.SubmitDocRequest(doc_id="vg_%d" % i), timeout=30).task_id for i in range(5)]
        for tid in ids:
            self.assertEqual(s.wait_terminal(tid, timeout=60).state, pb.Task.SUCCESS, s.logs())
        with self.assertRaises(grpc.RpcError):
            stub.GetStatus(pb.GetStatusRequest(task_id="bad"), timeout=30)
        for p in (s.server, w):
            p.signal(signal.SIGTERM)
            self.assertEqual(p.wait(timeout=60), 0, p.text()[-3000:])
            self.assertEqual(leak_summary(p.text()), 0, p.text()[-3000:])
            self.assertIn("ERROR SUMMARY: 0 errors", p.text())

    @labels("valgrind")
    def test_the_server_under_valgrind_ends_open_watches_on_sigterm_with_no_leaks(self):
        """the server under valgrind ends open watches on SIGTERM with no leaks and no errors"""
        s = self.stack.start_redis().start_ai("--latency-ms", "200")
        s.start_server(wrap=VALGRIND, DOCQ_POSITION_REFRESH_MS="100")
        w = s.start_worker()
        stub = s.stub()
        # Watches that run to the end...
        done = [Watcher(stub, stub.SubmitDoc(pb.SubmitDocRequest(doc_id="vgw_%d" % i), timeout=30).task_id)
                for i in range(3)]
        for watcher in done:
            watcher.finish(timeout=60)
            self.assertEqual(watcher.code, grpc.StatusCode.OK, s.logs())
            self.assertEqual(watcher.messages[-1].state, pb.Task.SUCCESS)
        w.signal(signal.SIGTERM)
        self.assertEqual(w.wait(timeout=30), 0)
        # ...one refused, one cancelled, and five open through SIGTERM.
        with self.assertRaises(grpc.RpcError):
            list(stub.WatchStatus(pb.WatchStatusRequest(task_id="s0-" + "0" * 32), timeout=30))
        ids = [stub.SubmitDoc(pb.SubmitDocRequest(doc_id="vgp_%d" % i), timeout=30).task_id for i in range(3)]
        cancelled = stub.WatchStatus(pb.WatchStatusRequest(task_id=ids[0]), timeout=60)
        self.assertEqual(next(cancelled).state, pb.Task.PENDING)
        cancelled.cancel()
        wait_for(lambda: "watch cancelled" in s.server.text(), timeout=30, what="the cancellation")
        open_ = [Watcher(stub, tid) for tid in ids + ids[:2]]
        wait_for(lambda: all(o.messages for o in open_), timeout=30, what="the watches to open")
        s.server.signal(signal.SIGTERM)
        for o in open_:
            o.finish(timeout=60)
            self.assertEqual(o.code, grpc.StatusCode.UNAVAILABLE, o.details)
        self.assertEqual(s.server.wait(timeout=60), 0, s.server.text()[-3000:])
        self.assertEqual(leak_summary(s.server.text()), 0, s.server.text()[-3000:])
        self.assertIn("ERROR SUMMARY: 0 errors", s.server.text())

    def test_a_unary_call_in_flight_when_sigterm_arrives_is_answered(self):
        """a unary call in flight when SIGTERM arrives is answered"""
        s = self.stack.start_redis()
        s.start_server()
        stub = s.stub()
        # Redis sleeps for a second, so the call is surely in flight at SIGTERM.
        blocker = threading.Thread(target=s.redis_cli, args=("DEBUG", "SLEEP", "1"))
        blocker.start()
        time.sleep(0.1)
        fut = stub.SubmitDoc.future(pb.SubmitDocRequest(doc_id="inflight"), timeout=10)
        time.sleep(0.2)
        s.server.signal(signal.SIGTERM)
        r = fut.result()
        blocker.join()
        self.assertTrue(r.task_id)
        self.assertEqual(s.server.wait(timeout=30), 0)
        self.assertIn("docq-server stopped", s.server.text())

    def test_a_second_server_on_a_busy_port_fails_instead_of_sharing_it(self):
        """a second server on a busy port fails instead of sharing it"""
        s = self.stack.start_redis()
        s.start_server()
        other = s._start("server2", [s.server.p.args[0]],
                         dict(s.common_env(), DOCQ_LISTEN="127.0.0.1:%d" % s.server_port))
        code = other.wait(timeout=30)
        self.assertNotEqual(code, 0)
        self.assertIn("cannot listen", other.text())
        wait_for(lambda: s.server.alive(), what="the first server to stay up")


if __name__ == "__main__":
    unittest.main()
