"""The docq CLI and the settings of every binary."""
import os
import re
import subprocess
import unittest

from stack import BIN_DIR, Stack


def run(binary, *args, env=None):
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    e.update(env or {})
    return subprocess.run([os.path.join(BIN_DIR, binary)] + list(args), capture_output=True, text=True,
                          env=e, timeout=30)


class Cli(unittest.TestCase):
    def setUp(self):
        self.stack = Stack()
        self.addCleanup(self.stack.stop)

    def test_docq_submit_prints_a_task_id_and_docq_status_shows_the_result(self):
        s = self.stack.start_all(workers=1)
        out = s.cli("submit", "doc_1", "doc_2")
        self.assertEqual(out.returncode, 0, out.stderr)
        ids = out.stdout.split()
        self.assertEqual(len(ids), 2)
        for tid in ids:
            self.assertRegex(tid, r"^s\d+-[0-9a-f]{32}$")
            s.wait_terminal(tid)
        st = s.cli("status", ids[0])
        self.assertEqual(st.returncode, 0, st.stderr)
        self.assertIn("SUCCESS", st.stdout)
        self.assertIn("doc_1", st.stdout)
        self.assertIn("processed doc_1", st.stdout)
        self.assertRegex(st.stdout, r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")

    def test_docq_status_of_an_unknown_id_prints_not_found_and_fails(self):
        s = self.stack.start_redis().start_server()
        st = s.cli("status", "s0-" + "0" * 32)
        self.assertNotEqual(st.returncode, 0)
        self.assertIn("NOT_FOUND", st.stderr)

    def test_docq_against_a_stopped_server_prints_unavailable_and_fails(self):
        out = run("docq", "--server", "127.0.0.1:1", "--deadline-ms", "2000", "submit", "doc_1")
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("UNAVAILABLE", out.stderr)

    def test_docq_submit_of_an_invalid_doc_id_queues_nothing_and_says_why(self):
        s = self.stack.start_redis().start_server()
        out = s.cli("submit", "doc_ok", "x" * 300)
        self.assertEqual(out.returncode, 2)
        self.assertIn("300 bytes", out.stderr)
        self.assertEqual(out.stdout, "")
        self.assertEqual(s.redis_cli("DBSIZE"), "0")


class Settings(unittest.TestCase):
    def test_every_binary_lists_its_settings_with_help(self):
        for binary, must in [("docq-server", ["--listen", "DOCQ_REDIS_URL", "DOCQ_SHARDS"]),
                             ("docq-worker", ["--ai-url", "DOCQ_AI_TIMEOUT_MS", "DOCQ_GROUP",
                                              "DOCQ_RESULT_TTL_S"]),
                             ("docq", ["--server", "DOCQ_SERVER"])]:
            out = run(binary, "--help")
            self.assertEqual(out.returncode, 0, binary)
            for word in must:
                self.assertIn(word, out.stdout, binary)

    def test_a_bad_setting_exits_2_naming_the_setting_and_the_value(self):
        cases = [("docq-server", ["--shards", "0"], {}, "DOCQ_SHARDS", "'0'"),
                 ("docq-server", [], {"DOCQ_LISTEN": "nowhere"}, "DOCQ_LISTEN", "nowhere"),
                 ("docq-worker", [], {"DOCQ_AI_TIMEOUT_MS": "soon"}, "DOCQ_AI_TIMEOUT_MS", "soon"),
                 ("docq-worker", ["--redis-url=http://x"], {}, "DOCQ_REDIS_URL", "http://x"),
                 ("docq", ["--server", "x:y", "status", "s0-" + "0" * 32], {}, "DOCQ_SERVER", "x:y")]
        for binary, args, env, name, value in cases:
            out = run(binary, *args, env=env)
            self.assertEqual(out.returncode, 2, (binary, args, env, out.stderr))
            lines = out.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, out.stderr)
            self.assertIn(name, lines[0])
            self.assertIn(value, lines[0])

    def test_a_redis_password_never_appears_in_an_error(self):
        out = run("docq-server", env={"DOCQ_REDIS_URL": "redis://:sekret@host:99999"})
        self.assertEqual(out.returncode, 2)
        self.assertNotIn("sekret", out.stderr)

    def test_flags_override_the_environment(self):
        out = run("docq", "--server", "127.0.0.1:1", "--deadline-ms", "1000", "status", "s0-" + "0" * 32,
                  env={"DOCQ_SERVER": "bad:bad"})
        # The environment's bad value is overridden by the good flag: the call is tried.
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertTrue(re.search(r"UNAVAILABLE|DEADLINE_EXCEEDED", out.stderr), out.stderr)


if __name__ == "__main__":
    unittest.main()
