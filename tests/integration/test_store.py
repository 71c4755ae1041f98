"""The store's scripts against a real redis-server: the worker's fenced steps are
idempotent per attempt, so a resend after a lost reply changes nothing, and a resent
start counts no second delivery."""
import os
import re
import subprocess
import unittest

from stack import BIN_DIR, Stack


class Store(unittest.TestCase):
    def setUp(self):
        self.stack = Stack()
        self.addCleanup(self.stack.stop)
        self.stack.start_redis()

    def run_twice(self):
        out = subprocess.run([os.path.join(BIN_DIR, "docq-store-twice"), str(self.stack.redis_port)],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        calls = {}
        for line in out.stdout.splitlines():
            step, call, rest = line.split(" ", 2)
            calls[(step, int(call))] = dict(re.findall(r"(\w+)=(\S*)", rest))
        return calls

    def test_retry_restart_and_finish_sent_twice_change_nothing_the_second_time(self):
        """retry, restart and finish sent twice by one attempt change nothing the second time,
        and a start sent twice counts one delivery"""
        c = self.run_twice()
        # start: the resend is no new delivery (the record counts 1, whatever
        # XPENDING says); it is a new attempt, whose token the worker uses.
        a1, a2 = c[("start", 1)], c[("start", 2)]
        self.assertEqual((a1["rc"], a1["value"], a1["attempts"], a1["state"]), ("0", "1", "1", "STARTED"))
        self.assertEqual((a2["rc"], a2["value"], a2["attempts"]), ("0", "1", "2"))
        # retry: one failure counted, one version, the same count returned twice.
        r1, r2 = c[("retry", 1)], c[("retry", 2)]
        self.assertEqual((r1["rc"], r1["value"], r1["failures"]), ("0", "1", "1"))
        self.assertEqual(r2, r1)
        # restart: attempt 2 -> 3 once; the resend returns attempt 3 again.
        s1, s2 = c[("restart", 1)], c[("restart", 2)]
        self.assertEqual((s1["rc"], s1["value"], s1["attempts"]), ("0", "3", "3"))
        self.assertEqual(int(s1["version"]), int(r1["version"]) + 1)
        self.assertEqual(s2, s1)
        # finish: written once (entry acked and deleted); the resend says written, changes nothing.
        f1, f2 = c[("finish", 1)], c[("finish", 2)]
        self.assertEqual((f1["rc"], f1["state"], f1["queued"], f1["pending"]), ("0", "SUCCESS", "0", "0"))
        self.assertEqual(int(f1["version"]), int(s1["version"]) + 1)
        self.assertEqual(f2, f1)


if __name__ == "__main__":
    unittest.main()
