"""The docq CLI and the settings of every binary."""
import hashlib
import os
import re
import signal
import subprocess
import threading
import time
import unittest

from stack import BIN_DIR, Stack, free_port, pb, read_pty, wait_for


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
        """docq submit prints a task id and docq status shows the result"""
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

    def test_docq_list_prints_a_page_or_every_page_filtered_by_state_and_docq_delete_deletes_an_ended_task(self):
        """docq list prints a table of one page or with --all every page, --state filters, and docq delete
        deletes an ended task and refuses a pending one"""
        s = self.stack.start_redis().start_ai("--reject-prefix", "bad").start_server()
        worker = s.start_worker()
        done = s.cli("submit", "doc_a", "bad_b").stdout.split()
        for tid in done:
            s.wait_terminal(tid)
        worker.kill()
        pending = s.cli("submit", "doc_c", "doc_d", "doc_e").stdout.split()
        ids = (done + pending)[::-1]
        out = s.cli("list", "--page-size", "2")
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["TASK", "ID", "STATE", "DOC", "ID", "CREATED"])
        self.assertEqual([line.split()[0] for line in lines[1:]], ids[:2])
        self.assertIn("--all", out.stderr)
        out = s.cli("list", "--all", "--page-size", "2")
        rows = [line.split() for line in out.stdout.splitlines()[1:]]
        self.assertEqual([r[0] for r in rows], ids)
        self.assertEqual(rows[-1][1:3], ["SUCCESS", "doc_a"])
        self.assertRegex(rows[-1][3], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(out.stderr, "")
        out = s.cli("list", "--state", "failure", "--state", "SUCCESS")
        self.assertEqual([line.split()[0] for line in out.stdout.splitlines()[1:]], done[::-1])
        out = s.cli("list", "--state", "DONE")
        self.assertEqual(out.returncode, 2)
        self.assertIn("DOCQ_LIST_STATE", out.stderr)
        out = s.cli("delete", pending[0])
        self.assertEqual(out.returncode, 1)
        self.assertIn("FAILED_PRECONDITION", out.stderr)
        out = s.cli("delete", done[0])
        self.assertEqual((out.returncode, out.stdout), (0, "deleted %s\n" % done[0]), out.stderr)
        out = s.cli("list", "--all")
        self.assertNotIn(done[0], out.stdout)
        out = s.cli("delete", done[0])
        self.assertEqual(out.returncode, 1)
        self.assertIn("NOT_FOUND", out.stderr)

    def test_docq_status_of_an_unknown_id_prints_not_found_and_fails(self):
        """docq status of an unknown id prints NOT_FOUND and fails"""
        s = self.stack.start_redis().start_server()
        st = s.cli("status", "s0-" + "0" * 32)
        self.assertNotEqual(st.returncode, 0)
        self.assertIn("NOT_FOUND", st.stderr)

    def test_docq_against_a_stopped_server_prints_unavailable_and_fails(self):
        """docq against a stopped server prints UNAVAILABLE and fails"""
        out = run("docq", "--server", "127.0.0.1:1", "--deadline-ms", "2000", "submit", "doc_1")
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("UNAVAILABLE", out.stderr)

    def test_docq_submit_of_an_invalid_doc_id_queues_nothing_and_says_why(self):
        """docq submit of an invalid doc_id queues nothing and says why"""
        s = self.stack.start_redis().start_server()
        out = s.cli("submit", "doc_ok", "x" * 300)
        self.assertEqual(out.returncode, 2)
        self.assertIn("300 bytes", out.stderr)
        self.assertEqual(out.stdout, "")
        self.assertEqual(s.task_keys(), [])


LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (s\d+-[0-9a-f]{32}) (PENDING|STARTED|SUCCESS|FAILURE) "
                  r"version=(\d+) attempts=(\d+) position=(\d+)( (result|error)=.*)?$")


class LineReader:
    """Runs the CLI and collects its stdout lines as they come."""

    def __init__(self, stack, *args):
        self.p = subprocess.Popen([os.path.join(BIN_DIR, "docq"), "--server", stack.address()] + list(args),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait(self, timeout=60):
        code = self.p.wait(timeout=timeout)
        self.reader.join(10)
        return code, self.p.stderr.read()

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def parse_lines(test, lines):
    """(task_id, state, version, attempts, position, tail) for each line,
    failing on a line of another shape."""
    out = []
    for line in lines:
        m = LINE.match(line)
        test.assertTrue(m, "unexpected line %r" % line)
        out.append((m.group(1), m.group(2), int(m.group(3)), int(m.group(4)), int(m.group(5)), m.group(6) or ""))
    return out


class WatchCli(unittest.TestCase):
    def setUp(self):
        self.stack = Stack()
        self.addCleanup(self.stack.stop)

    def watch(self, *args):
        r = LineReader(self.stack, *args)
        self.addCleanup(r.kill)
        return r

    def test_docq_watch_prints_one_line_per_change_and_exits_0_on_success(self):
        """docq watch prints one line per change and exits 0 on SUCCESS"""
        s = self.stack.start_redis().start_ai("--latency-ms", "800").start_server()
        tid = s.stub().SubmitDoc(pb.SubmitDocRequest(doc_id="doc_1"), timeout=10).task_id
        r = self.watch("watch", tid)
        wait_for(lambda: r.lines, what="the first line")
        s.start_worker()
        code, err = r.wait()
        self.assertEqual(code, 0, err)
        rows = parse_lines(self, r.lines)
        self.assertTrue(all(row[0] == tid for row in rows))
        changes = [(state, version) for _, state, version, _, _, _ in rows]
        self.assertEqual(sorted(set(changes), key=changes.index), [("PENDING", 1), ("STARTED", 2), ("SUCCESS", 3)])
        self.assertEqual(rows[-1][3], 1)
        self.assertIn('result={"doc_id":"doc_1","summary":"processed doc_1"}', rows[-1][5])

    def test_docq_submit_wait_sends_the_api_key_to_a_server_that_requires_keys(self):
        """docq submit --wait sends the API key, and a watch without one is UNAUTHENTICATED"""
        path = os.path.join(self.stack.dir, "keys")
        with open(path, "w") as f:
            f.write("alice %s\n" % hashlib.sha256(b"key-alice").hexdigest())
        s = self.stack.start_redis().start_ai()
        s.start_server(DOCQ_API_KEYS_FILE=path)
        s.start_worker()
        docq = [os.path.join(BIN_DIR, "docq"), "--server", s.address()]
        keyed = dict(os.environ, DOCQ_API_KEY="key-alice")
        out = subprocess.run(docq + ["submit", "--wait", "doc_k"], capture_output=True, text=True, env=keyed,
                             timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        tid = out.stdout.split()[0]
        self.assertIn("SUCCESS", out.stdout)
        unkeyed = {k: v for k, v in os.environ.items() if k != "DOCQ_API_KEY"}
        out = subprocess.run(docq + ["watch", tid], capture_output=True, text=True, env=unkeyed, timeout=60)
        self.assertEqual(out.returncode, 1)
        self.assertIn("UNAUTHENTICATED", out.stderr)

    def test_docq_watch_exits_1_when_the_task_ends_failure(self):
        """docq watch exits 1 when the task ends FAILURE"""
        s = self.stack.start_all(workers=1, ai_args=("--fail-status", "500", "--fail-every", "0"))
        tid = s.stub().SubmitDoc(pb.SubmitDocRequest(doc_id="doc_bad"), timeout=10).task_id
        r = self.watch("watch", tid)
        code, err = r.wait()
        self.assertEqual(code, 1, err)
        self.assertEqual(err, "")
        last = parse_lines(self, r.lines)[-1]
        self.assertEqual(last[1], "FAILURE")
        self.assertIn("error=", last[5])
        self.assertIn("500", last[5])

    def test_docq_submit_wait_submits_then_watches_each_task_until_it_ends(self):
        """docq submit --wait submits, then watches each task until it ends"""
        s = self.stack.start_all(workers=1, ai_args=("--latency-ms", "300"))
        r = self.watch("submit", "doc_1", "--wait", "doc_2")
        code, err = r.wait()
        self.assertEqual(code, 0, err)
        ids = r.lines[:2]
        for tid in ids:
            self.assertRegex(tid, r"^s\d+-[0-9a-f]{32}$")
        rows = parse_lines(self, r.lines[2:])
        self.assertEqual([row[0] for row in rows], sorted((row[0] for row in rows), key=ids.index))
        for tid, doc in zip(ids, ["doc_1", "doc_2"]):
            mine = [row for row in rows if row[0] == tid]
            self.assertEqual(mine[-1][1], "SUCCESS", r.lines)
            self.assertIn("processed " + doc, mine[-1][5])

    def test_docq_watch_on_a_terminal_shows_a_live_line_with_the_queue_position(self):
        """docq watch on a terminal shows a live line with the queue position and elapsed time"""
        s = self.stack = Stack(shards=1)
        self.addCleanup(s.stop)
        s.start_redis().start_ai("--latency-ms", "1500").start_server(DOCQ_POSITION_REFRESH_MS="200")
        s.start_worker(DOCQ_WORKER_CONCURRENCY="1")
        wait_for(lambda: s.redis_cli("EXISTS", "docq:{s0}:tasks") == "1", what="the worker's consumer group")
        stub = s.stub()
        first, second = [stub.SubmitDoc(pb.SubmitDocRequest(doc_id=d), timeout=10).task_id for d in ("a", "b")]
        code, out, err = read_pty([os.path.join(BIN_DIR, "docq"), "--server", s.address(), "watch", second],
                                  timeout=60)
        self.assertEqual(code, 0, (out, err))
        text = out.decode()
        self.assertIn("\r\x1b[K" + second + "  PENDING  position 1 in queue", text)
        self.assertIn("STARTED  attempt 1", text)
        self.assertRegex(text, r"SUCCESS  attempt 1  0:00:0\d elapsed")
        self.assertIn('result: {"doc_id":"b","summary":"processed b"}', text)
        self.assertNotIn("version=", text)

    def test_docq_watch_reopens_after_a_server_restart_and_misses_no_change(self):
        """docq watch reopens after a server restart and misses no change"""
        s = self.stack
        port = free_port()
        s.start_redis().start_ai("--latency-ms", "3000").start_server(DOCQ_LISTEN="127.0.0.1:%d" % port)
        s.start_worker()
        tid = s.stub().SubmitDoc(pb.SubmitDocRequest(doc_id="doc_r"), timeout=10).task_id
        r = self.watch("watch", tid)
        wait_for(lambda: any(" STARTED " in line for line in r.lines), what="the task to start")
        s.server.signal(signal.SIGTERM)
        self.assertEqual(s.server.wait(timeout=30), 0)
        s.start_server(DOCQ_LISTEN="127.0.0.1:%d" % port)
        code, err = r.wait()
        self.assertEqual(code, 0, (r.lines, err))
        self.assertIn("UNAVAILABLE: server shutting down; reopen the watch; reopening the watch after version 2", err)
        versions = [row[2] for row in parse_lines(self, r.lines)]
        self.assertEqual(versions, sorted(set(versions)), r.lines)
        self.assertEqual(versions[-2:], [2, 3], r.lines)
        self.assertEqual(parse_lines(self, r.lines)[-1][1], "SUCCESS")

    def test_docq_watch_resumes_when_the_server_ages_its_connection_out(self):
        """docq watch resumes when the server ages its connection out
        (DOCQ_MAX_CONNECTION_AGE_MS)"""
        s = self.stack.start_redis().start_ai("--latency-ms", "9000")
        s.start_server(DOCQ_MAX_CONNECTION_AGE_MS="4000", DOCQ_SHUTDOWN_GRACE_MS="1500")
        s.start_worker()
        tid = s.stub(new_channel=True).SubmitDoc(pb.SubmitDocRequest(doc_id="doc_age"), timeout=10).task_id
        r = self.watch("watch", tid)
        code, err = r.wait(timeout=60)
        self.assertEqual(code, 0, (r.lines, err))
        # The connection was closed at 4 s (+-10 %) + 1.5 s, mid-AI call; the
        # watch came back after the version it had seen and got the rest.
        self.assertIn("reopening the watch after version 2", err)
        rows = parse_lines(self, r.lines)
        versions = [row[2] for row in rows]
        self.assertEqual(versions, sorted(set(versions)), r.lines)
        self.assertEqual(versions[-2:], [2, 3], r.lines)
        self.assertEqual(rows[-1][1], "SUCCESS")

    def test_docq_watch_of_an_unknown_id_prints_not_found_and_exits_1(self):
        """docq watch of an unknown id prints NOT_FOUND and exits 1"""
        s = self.stack.start_redis().start_server()
        out = s.cli("watch", "s0-" + "0" * 32)
        self.assertEqual(out.returncode, 1)
        self.assertIn("docq: NOT_FOUND: ", out.stderr)
        self.assertEqual(out.stdout, "")


class Settings(unittest.TestCase):
    def test_every_binary_lists_its_settings_with_help(self):
        """every binary lists its settings with help"""
        for binary, must in [("docq-server", ["--listen", "DOCQ_REDIS_URL", "DOCQ_SHARDS", "DOCQ_GROUP",
                                              "DOCQ_KEEPALIVE_MS", "DOCQ_MAX_CONNECTION_AGE_MS",
                                              "DOCQ_POSITION_REFRESH_MS", "DOCQ_REQUEST_ID_TTL_S",
                                              "DOCQ_MAX_QUEUE_TIMEOUT_S", "DOCQ_RESULT_TTL_S"]),
                             ("docq-worker", ["--ai-url", "DOCQ_AI_TIMEOUT_MS", "DOCQ_GROUP",
                                              "DOCQ_RESULT_TTL_S"]),
                             ("docq", ["--server", "DOCQ_SERVER", "--wait", "DOCQ_KEEPALIVE_MS", "watch TASK_ID",
                                       "--request-id", "--queue-timeout"])]:
            out = run(binary, "--help")
            self.assertEqual(out.returncode, 0, binary)
            for word in must:
                self.assertIn(word, out.stdout, binary)

    def test_a_bad_setting_exits_2_naming_the_setting_and_the_value(self):
        """a bad setting exits 2 naming the setting and the value"""
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
        """a Redis password never appears in an error"""
        out = run("docq-server", env={"DOCQ_REDIS_URL": "redis://:sekret@host:99999"})
        self.assertEqual(out.returncode, 2)
        self.assertNotIn("sekret", out.stderr)

    def test_flags_override_the_environment(self):
        """flags override the environment"""
        out = run("docq", "--server", "127.0.0.1:1", "--deadline-ms", "1000", "status", "s0-" + "0" * 32,
                  env={"DOCQ_SERVER": "bad:bad"})
        # The environment's bad value is overridden by the good flag: the call is tried.
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertTrue(re.search(r"UNAVAILABLE|DEADLINE_EXCEEDED", out.stderr), out.stderr)


if __name__ == "__main__":
    unittest.main()
