"""AI answers that cannot or must not be shown as they are (a NUL byte,
terminal escape codes), and the warnings the CLI and the worker give about
settings that put clients at risk."""
import os
import subprocess
import time
import unittest

from stack import BIN_DIR, Stack, pb, read_pty, wait_for

# A valid UTF-8 answer holding C0 and C1 controls: ESC [ 2 J (clear the
# screen), BEL, U+009B (CSI), DEL, an OSC title sequence, and a newline.
ESCAPES = b"a\x1b[2Jb\x07c\xc2\x9b31md\x7fe\x1b]0;title\x07\nline2"
# What `docq status` shows of it: each control a space, the newline kept.
SHOWN = "a [2Jb c 31md e ]0;title \nline2"


def cli_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCQ_")}
    env.update(extra)
    return env


class Answers(unittest.TestCase):
    def setUp(self):
        self.stack = Stack(shards=1)
        self.addCleanup(self.stack.stop)

    def test_an_ai_answer_with_a_nul_byte_fails_the_task_for_good_after_one_ai_call(self):
        """an AI answer with a NUL byte fails the task for good, naming the offset, after one AI
        call"""
        s = self.stack.start_redis().start_ai("--answer-hex", b"ok\x00yes".hex()).start_server()
        s.start_worker(DOCQ_MAX_ATTEMPTS="5")
        tid = s.stub().SubmitDoc(pb.SubmitDocRequest(doc_id="doc_nul"), timeout=10).task_id
        t = s.wait_terminal(tid)
        self.assertEqual(t.state, pb.Task.FAILURE, (t, s.logs()))
        self.assertIn("AI answer contains a NUL byte at offset 2", t.error)
        self.assertEqual(t.result, "")
        self.assertEqual(t.attempts, 1)
        time.sleep(0.5)  # A retry, were there one, would call the AI again.
        self.assertEqual(s.ai_stats()["requests"], 1)

    def finished_with_escapes(self):
        s = self.stack.start_redis().start_ai("--answer-hex", ESCAPES.hex()).start_server()
        s.start_worker()
        tid = s.stub().SubmitDoc(pb.SubmitDocRequest(doc_id="doc_esc"), timeout=10).task_id
        t = s.wait_terminal(tid)
        self.assertEqual(t.result.encode(), ESCAPES)  # Stored and returned whole.
        return s, tid

    def test_docq_status_on_a_terminal_shows_no_control_character_of_a_result(self):
        """docq status on a terminal shows no control character of a result: no ESC, BEL, DEL or
        C1"""
        s, tid = self.finished_with_escapes()
        code, out, err = read_pty([os.path.join(BIN_DIR, "docq"), "--server", s.address(), "status", tid])
        self.assertEqual(code, 0, err)
        for raw in (b"\x1b", b"\x07", b"\x7f", b"\xc2\x9b"):
            self.assertNotIn(raw, out)
        self.assertIn(("result:   " + SHOWN.replace("\n", "\r\n")).encode(), out)

    def test_docq_status_into_a_pipe_shows_no_control_character_of_a_result_either(self):
        """docq status into a pipe shows no control character of a result either, as docq watch
        does"""
        s, tid = self.finished_with_escapes()
        out = subprocess.run([os.path.join(BIN_DIR, "docq"), "--server", s.address(), "status", tid],
                             capture_output=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        for raw in (b"\x1b", b"\x07", b"\x7f", b"\xc2\x9b"):
            self.assertNotIn(raw, out.stdout)
        self.assertIn(("result:   " + SHOWN + "\n").encode(), out.stdout)


WARNING = "docq: warning: sending the API key without TLS to "


class Warnings(unittest.TestCase):
    def setUp(self):
        self.stack = Stack(shards=1)
        self.addCleanup(self.stack.stop)

    def test_the_cli_warns_once_when_it_sends_an_api_key_without_tls_to_a_non_loopback_server(self):
        """the CLI warns once when it sends an API key without TLS to a non-loopback server"""
        # 192.0.2.1 (TEST-NET-1) is never routed: the call fails, and the
        # warning comes before it, so no second machine is needed.
        docq = [os.path.join(BIN_DIR, "docq"), "--server", "192.0.2.1:50051", "--deadline-ms", "1000"]
        out = subprocess.run(docq + ["submit", "a", "b", "c"], capture_output=True, text=True, timeout=60,
                             env=cli_env(DOCQ_API_KEY="key-alice"))
        self.assertNotEqual(out.returncode, 0)
        self.assertEqual(out.stderr.count(WARNING), 1, out.stderr)
        self.assertIn(WARNING + "192.0.2.1:50051; use --tls", out.stderr)
        self.assertNotIn("key-alice", out.stderr)
        unkeyed = subprocess.run(docq + ["submit", "a"], capture_output=True, text=True, timeout=60, env=cli_env())
        self.assertNotIn(WARNING, unkeyed.stderr)
        tls = subprocess.run(docq + ["--tls", "submit", "a"], capture_output=True, text=True, timeout=60,
                             env=cli_env(DOCQ_API_KEY="key-alice"))
        self.assertNotIn(WARNING, tls.stderr)

    def test_the_cli_sends_an_api_key_to_a_loopback_server_without_a_warning(self):
        """the CLI sends an API key to a loopback server without a warning"""
        s = self.stack.start_redis().start_server()
        out = subprocess.run([os.path.join(BIN_DIR, "docq"), "--server", s.address(), "submit", "a", "b"],
                             capture_output=True, text=True, timeout=60, env=cli_env(DOCQ_API_KEY="key-alice"))
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(len(out.stdout.split()), 2)
        self.assertNotIn("warning", out.stderr)

    def test_a_worker_warns_at_start_when_results_may_pass_the_clients_4_mib_receive_limit(self):
        """a worker warns at start when DOCQ_MAX_RESULT_BYTES lets results pass the clients' 4
        MiB receive limit"""
        s = self.stack.start_redis().start_ai()
        big = s.start_worker(DOCQ_MAX_RESULT_BYTES=str(5 * 1024 * 1024))
        default = s.start_worker()
        for w in (big, default):
            wait_for(lambda: "joined group" in w.text(), timeout=30, what="the worker to start")
        self.assertIn("DOCQ_MAX_RESULT_BYTES=5242880", big.text())
        self.assertIn("clients must raise their max receive message size", big.text())
        self.assertIn('"level":"warn"', [l for l in big.text().splitlines() if "DOCQ_MAX_RESULT_BYTES" in l][0])
        self.assertNotIn("DOCQ_MAX_RESULT_BYTES", default.text())
        self.assertNotIn("max receive message size", default.text())


if __name__ == "__main__":
    unittest.main()
