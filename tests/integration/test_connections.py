"""Client connections: idle ones are closed, watched ones are not, and the
server makes room for many (RLIMIT_NOFILE)."""
import threading
import time
import unittest

import grpc

from probes import SERVING, HealthWatch
from stack import Stack, wait_for


class Connections(unittest.TestCase):
    def setUp(self):
        self.stack = Stack().start_redis()
        self.addCleanup(self.stack.stop)

    def channel(self):
        """A channel with a connection of its own, and the list of the
        connectivity states it went through."""
        ch = grpc.insecure_channel(self.stack.address(), options=[("grpc.use_local_subchannel_pool", 1)])
        self.addCleanup(ch.close)
        states, lock = [], threading.Lock()

        def seen(state):
            with lock:
                states.append(state)
        ch.subscribe(seen, try_to_connect=False)
        return ch, states

    def test_an_idle_connection_is_closed_after_the_idle_timeout_and_one_with_an_open_watch_is_not(self):
        """an idle connection is closed after DOCQ_MAX_CONNECTION_IDLE_MS and one with an open
        watch is not"""
        self.stack.start_server(DOCQ_MAX_CONNECTION_IDLE_MS="1000")
        idle, idle_states = self.channel()
        watched, watched_states = self.channel()
        w = HealthWatch(watched, "")
        w.wait_statuses([SERVING])
        grpc.channel_ready_future(idle).result(timeout=10)
        self.assertEqual(idle_states[-1], grpc.ChannelConnectivity.READY)
        # The server closes the idle connection (GOAWAY): the channel leaves READY.
        wait_for(lambda: idle_states[-1] != grpc.ChannelConnectivity.READY, timeout=20,
                 what="the idle connection to be closed (states %s)" % idle_states)
        # Three idle timeouts later the watched connection still serves its watch.
        time.sleep(3)
        self.assertIsNone(w.code, w.details)
        ready = grpc.ChannelConnectivity.READY
        self.assertEqual(watched_states[watched_states.index(ready):], [ready])

    def test_the_server_raises_its_open_files_limit_to_the_hard_limit_and_warns_when_it_is_low(self):
        """the server raises its open files limit to the hard limit and warns when that is low"""
        s = self.stack.start_server(wrap=["prlimit", "--nofile=1024:4096", "--"])
        with open("/proc/%d/limits" % s.server.p.pid) as f:
            line = [l for l in f if l.startswith("Max open files")][0].split()
        self.assertEqual(line[3:5], ["4096", "4096"])
        self.assertIn("open files limited to 4096 (hard limit): fewer than 10000 client connections fit",
                      s.server.text())


if __name__ == "__main__":
    unittest.main()
