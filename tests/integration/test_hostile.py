"""Hostile clients: malformed bytes, garbage connections, huge metadata,
thousands of streams opened and dropped, readers that never read. The server
answers or hangs up on each, keeps serving everyone else, and gives back what
they made it hold.

The well-behaved clients are Python grpcio channels; the hostile ones mostly
raw sockets speaking HTTP/2 by hand (h2raw.py)."""
import os
import random
import struct
import time
import unittest

import grpc

from h2raw import (CONTINUATION, DATA, END_HEADERS, END_STREAM, HEADERS, PREFACE, RST_STREAM, SETTINGS, Connection,
                   frame, grpc_headers, grpc_message, wait_until)
from probes import metrics_port, scrape
from stack import Stack, pb, pb_grpc, rss_env, wait_for

WATCH = "/docq.v1.DocQueue/WatchStatus"
STATUS = "/docq.v1.DocQueue/GetStatus"
SUBMIT = "/docq.v1.DocQueue/SubmitDoc"
UNKNOWN_ID = "s0-" + "0" * 32


def raw(ch, method, streaming=False):
    make = ch.unary_stream if streaming else ch.unary_unary
    return make(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)


def code_of(fn, *args, **kwargs):
    try:
        result = fn(*args, **kwargs)
        if hasattr(result, "__iter__") and not isinstance(result, bytes):
            list(result)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


class Hostile(unittest.TestCase):
    def setUp(self):
        self.stack = Stack().start_redis()
        self.addCleanup(self.stack.stop)

    def served(self, stub, task_id):
        """One well-behaved call, answered in time, as everyone else's are."""
        t = stub.GetStatus(pb.GetStatusRequest(task_id=task_id), timeout=15)
        self.assertEqual(t.task_id, task_id)

    def test_malformed_request_bytes_are_invalid_argument_and_the_server_keeps_serving(self):
        """malformed protobuf bytes and broken gRPC framing are INVALID_ARGUMENT and the server
        keeps serving"""
        s = self.stack
        s.start_server()
        stub = s.stub()
        tid = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="good"), timeout=10).task_id
        ch = grpc.insecure_channel(s.address())
        malformed = [
            b"\x0a",                          # a length-delimited field without its length
            b"\x0a\x05ab",                    # a length past the end
            b"\x0a\xff\xff\xff\xff\x0f",      # a 4 GiB length
            b"\x10",                          # a varint field without its varint
            b"\x10" + b"\xff" * 11,           # a varint of 11 bytes
            b"\x0f", b"\x0e",                 # wire types 7 and 6
            b"\x00\x01",                      # field number 0
            b"\x0b\x0a\x01a",                 # a group that never ends
            b"\x0a\x03a\x00b",                # a string with a NUL byte
            b"\x0a\x02\xff\xfe",              # a string that is not UTF-8
            b"\x0a\x81\x80\x80\x80\x80\x00",  # an overlong length varint
        ]
        for method, streaming in [(SUBMIT, False), (STATUS, False), (WATCH, True)]:
            for data in malformed:
                self.assertEqual(code_of(raw(ch, method, streaming), data, timeout=10),
                                 grpc.StatusCode.INVALID_ARGUMENT, (method, data))
        # Random bytes: whatever they parse as, an answer and never a crash.
        rng = random.Random(9)
        allowed = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}
        for i in range(600):
            data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 300)))
            method, streaming = [(SUBMIT, False), (STATUS, False), (WATCH, True)][i % 3]
            self.assertIn(code_of(raw(ch, method, streaming), data, timeout=10), allowed, (method, data))
        # Broken gRPC framing, sent by hand: a compressed flag without an
        # encoding, a message shorter than its length, a 4 GiB length.
        for payload in [grpc_message(b"\x0a\x01x", compressed=True), b"\x00\x00\x00\x00\x10\x0a", b"\x00\xff\xff\xff\xff"]:
            c = Connection(s.server_port)
            self.assertTrue(c.settings_acked.wait(10))
            c.send(frame(HEADERS, END_HEADERS, 1, grpc_headers(STATUS)) + frame(DATA, END_STREAM, 1, payload))
            self.assertTrue(wait_until(lambda: any(f[0] == HEADERS and f[1] & END_STREAM for f in c.frames), 10),
                            payload)
            trailers = [f[3] for f in c.frames if f[0] == HEADERS and f[1] & END_STREAM][0]
            self.assertIn(b"grpc-status\x013", trailers)  # INVALID_ARGUMENT.
            c.close()
        self.served(stub, tid)
        self.assertTrue(s.server.alive())

    def test_garbage_connections_are_closed_and_the_server_keeps_serving(self):
        """connections sending garbage are closed and the server keeps serving"""
        s = self.stack
        s.start_server()
        stub = s.stub()
        tid = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="good"), timeout=10).task_id
        rng = random.Random(7)
        garbage = {
            "random bytes": bytes(rng.getrandbits(8) for _ in range(4096)),
            "an HTTP/1.1 request": b"GET /docq.v1.DocQueue/GetStatus HTTP/1.1\r\nHost: x\r\n\r\n",
            "a frame longer than allowed": PREFACE + frame(SETTINGS, 0, 0) + b"\xff\xff\xff\x00\x00\x00\x00\x00\x01",
            "undecodable headers": PREFACE + frame(SETTINGS, 0, 0) + frame(HEADERS, END_HEADERS, 1, b"\xff" * 8),
            "a window over 2^31-1": PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 0x80000000)),
        }
        for round_ in range(3):
            conns = {}
            for name, data in garbage.items():
                conns[name] = c = Connection(s.server_port, preface=False)
                c.send(data)
            for name, c in conns.items():
                self.assertTrue(c.wait_closed(15), "the server kept a connection that sent %s" % name)
                c.close()
            self.served(stub, tid)
        self.assertTrue(s.server.alive())

    def test_huge_metadata_is_refused_and_the_server_keeps_serving(self):
        """huge metadata from raw HTTP/2 clients is refused and the server keeps serving"""
        s = self.stack
        s.start_server()
        stub = s.stub()
        tid = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="good"), timeout=10).task_id
        request = pb.GetStatusRequest(task_id=tid).SerializeToString()

        def headers(extra):
            """HEADERS and CONTINUATION frames of 16 KiB carrying a call with extra."""
            block = grpc_headers(STATUS, extra)
            pieces = [block[i:i + 16384] for i in range(0, len(block), 16384)]
            out = frame(HEADERS, END_HEADERS if len(pieces) == 1 else 0, 1, pieces[0])
            for i, p in enumerate(pieces[1:], 1):
                out += frame(CONTINUATION, END_HEADERS if i == len(pieces) - 1 else 0, 1, p)
            return out + frame(DATA, END_STREAM, 1, grpc_message(request))

        def refused(c):
            """Hung up on, or the call ended (reset, or an error status)
            without its answer: no response message came."""
            def ended():
                return c.closed.is_set() or any(
                    f[2] == 1 and (f[0] == RST_STREAM or (f[0] == HEADERS and f[1] & END_STREAM)) for f in c.frames)
            return wait_until(ended, 15) and not any(f[0] == DATA and f[2] == 1 for f in c.frames)

        for round_ in range(4):
            for extra in ([("x-huge", "v" * 1_000_000)], [("x-h%d" % i, "v") for i in range(20000)],
                          [("x-medium", "v" * 9000)]):
                c = Connection(s.server_port)
                self.assertTrue(c.settings_acked.wait(10))
                c.send(headers(extra))
                self.assertTrue(refused(c), "metadata of %d bytes was served" % sum(len(k) + len(v) for k, v in extra))
                c.close()
            self.served(stub, tid)
        # No assertion on RSS after free (the allocator decides it): a leak
        # is LeakSanitizer's to find, in the ASan build, when the server exits.
        self.assertTrue(s.server.alive())

    def test_thousands_of_streams_opened_and_dropped_leave_the_server_as_it_was(self):
        """thousands of streams opened and dropped leave the server serving, with no watch open
        and no bytes held"""
        s = self.stack
        s.start_server(DOCQ_MAX_WATCHES_PER_CALLER="0")
        port, stub = metrics_port(s.server), s.stub()
        tid = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="watched"), timeout=10).task_id
        watch = pb.WatchStatusRequest(task_id=tid).SerializeToString()
        closed_before = [0]

        def round_of_streams():
            conns = [Connection(s.server_port) for _ in range(5)]
            for c in conns:
                self.assertTrue(c.settings_acked.wait(10))
            # More streams open at once than DOCQ_MAX_CONCURRENT_STREAMS
            # (1000; their requests never come): the connection is dropped.
            for _ in range(1100):
                conns[4].open_stream(STATUS, None, end_stream=False)
            self.assertTrue(conns[4].wait_closed(30), "a connection over the stream limit was kept")
            # 1000 calls whose request never comes, then reset.
            waiting = [conns[3].open_stream(STATUS, None, end_stream=False) for _ in range(1000)]
            # 1000 watches, each reset as soon as it is sent.
            for _ in range(1000):
                conns[0].reset(conns[0].open_stream(WATCH, watch))
            # 1000 watches open at once, then all reset.
            ids = [conns[1].open_stream(WATCH, watch) for _ in range(1000)]
            # 1000 watches, left open when the connection drops.
            for _ in range(1000):
                conns[2].open_stream(WATCH, watch)
            self.served(stub, tid)  # Others are served in the middle of it.
            wait_until(lambda: s.open_watches() >= 1900, 30)
            for sid in waiting:
                conns[3].reset(sid)
            for sid in ids:
                conns[1].reset(sid)
            conns[2].close()
            for c in conns:
                c.close()
            wait_for(lambda: s.open_watches() == 0, timeout=60, what="every dropped watch to end")
            self.served(stub, tid)
            closed_before[0] += 1
            # The server gives the memory back after a wave of watches.
            wait_for(lambda: s.server.text().count(" to 0, in ") >= closed_before[0], timeout=30,
                     what="the memory trim after the wave")
            # What the server accounts for itself is back to nothing (its RSS
            # after free is the allocator's business; leaks are LeakSanitizer's).
            page = scrape(port)
            self.assertEqual(page["docq_watches_open"].value(), 0)
            self.assertEqual(page["docq_watch_held_bytes"].value(), 0)

        for _ in range(4):
            round_of_streams()
        self.assertTrue(s.server.alive())

    def test_slow_readers_hold_one_message_per_watch_and_others_are_served(self):
        """slow readers hold one message per watch, others are served, and the held bytes go back
        to 0 when they go"""
        s = self.stack
        s.start_ai("--pad-bytes", "400000", "--latency-ms", "200").start_server(DOCQ_MAX_WATCHES_PER_CALLER="0", **rss_env())
        port, stub = metrics_port(s.server), s.stub()
        tids = [stub.SubmitDoc(pb.SubmitDocRequest(doc_id="d%d" % i), timeout=10).task_id for i in range(10)]
        watches = [pb.WatchStatusRequest(task_id=t).SerializeToString() for t in tids]
        rss_before = s.rss_kib()
        # A reader that grants a window of one byte and never more: nothing
        # it is sent can reach it. 40 watches of each task.
        slow = Connection(s.server_port, window=1)
        self.assertTrue(slow.settings_acked.wait(10))
        for i in range(400):
            slow.open_stream(WATCH, watches[i % 10])
        wait_for(lambda: s.open_watches() == 400, timeout=30, what="the slow reader's 400 watches")
        # A normal watcher of the same tasks gets every change meanwhile.
        fast = [stub.WatchStatus(pb.WatchStatusRequest(task_id=t), timeout=120) for t in tids]
        s.start_worker()
        for t, w in zip(tids, fast):
            states = [m.state for m in w]
            self.assertEqual(states[-1], pb.Task.SUCCESS, t)
            self.assertEqual(w.code(), grpc.StatusCode.OK)
        # Each result is 400 kB: a copy queued per watch would be 160 MB.
        # Each watch holds at most the one message it could not send, and
        # the newest record of its task is kept once for all its watchers:
        # the hub holds the 10 results once (its own count), and the peak
        # RSS stays far below a copy per watch.
        held = scrape(port)["docq_watch_held_bytes"].value()
        self.assertGreater(held, 10 * 400000)
        self.assertLess(held, 10 * 401000)
        grew = s.rss_kib() - rss_before
        self.assertLess(grew, 60000, "RSS grew by %d KiB" % grew)
        self.assertLessEqual(sum(len(f[3]) for f in slow.frames_of(DATA)), 400)
        self.assertEqual(s.open_watches(), 400)
        # The reader goes away: its watches end and the memory comes back.
        slow.close()
        wait_for(lambda: s.open_watches() == 0, timeout=30, what="the slow reader's watches to end")
        wait_for(lambda: scrape(port)["docq_watch_held_bytes"].value() == 0, timeout=10,
                 what="the held bytes to go back to 0")
        self.served(stub, tids[0])


if __name__ == "__main__":
    unittest.main()
