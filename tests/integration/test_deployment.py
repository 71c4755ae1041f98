"""A deployment set up inconsistently refuses to start instead of leaving
tasks PENDING forever: the first server records the deployment's shape
(DOCQ_SHARDS and DOCQ_GROUP) in <prefix>:shape and its prefix in
docq-deployments; servers and workers that differ exit 2 naming the setting
and both values. Also: the heartbeat's bound and Redis ACL users."""
import os
import subprocess
import unittest

from probes import http_get, metrics_port
from stack import BIN_DIR, Stack, pb, wait_for


class Shape(unittest.TestCase):
    def setUp(self):
        self.stack = Stack(shards=4).start_redis().start_ai()
        self.addCleanup(self.stack.stop)

    def refused(self, proc, *says):
        """proc exits 2 and its log (stderr) says every one of says."""
        self.assertEqual(proc.wait(timeout=30), 2, proc.text()[-3000:])
        for word in says:
            self.assertIn(word, proc.text(), proc.text()[-3000:])

    def test_a_worker_with_another_shard_count_than_the_servers_refuses_to_start_naming_both_values(self):
        """a worker with another DOCQ_SHARDS than the servers refuses to start naming both values"""
        s = self.stack.start_server()
        self.refused(s.start_worker(DOCQ_SHARDS="16"), "DOCQ_SHARDS is 16 here but 4 in the deployment")
        self.assertTrue(s.server.alive())

    def test_a_worker_with_another_group_than_the_servers_refuses_to_start_naming_both_values(self):
        """a worker with another DOCQ_GROUP than the servers refuses to start naming both values"""
        s = self.stack.start_server()
        self.refused(s.start_worker(DOCQ_GROUP="others"), "DOCQ_GROUP is 'others' here but 'workers'")

    def test_a_worker_with_a_prefix_no_server_uses_refuses_to_start_naming_the_prefixes_in_use(self):
        """a worker with a DOCQ_KEY_PREFIX no server uses refuses to start naming the prefixes in
        use"""
        s = self.stack.start_server()
        s.start_replica("server-b", DOCQ_KEY_PREFIX="teamb")
        self.refused(s.start_worker(DOCQ_KEY_PREFIX="typo"), "DOCQ_KEY_PREFIX is 'typo' here", "docq", "teamb")

    def test_a_second_server_with_another_shard_count_refuses_to_start(self):
        """a second server with another DOCQ_SHARDS refuses to start"""
        s = self.stack.start_server()
        env = dict(s.common_env(), DOCQ_LISTEN="127.0.0.1:0", DOCQ_SHARDS="8")
        b = s._start("server-8-shards", [os.path.join(BIN_DIR, "docq-server")], env)
        self.refused(b, "DOCQ_SHARDS is 8 here but 4 in the deployment")

    def test_a_server_started_before_redis_refuses_to_run_once_redis_shows_another_shape(self):
        """a server started before Redis refuses to run (exit 2) once Redis shows another shape"""
        s = Stack(shards=4)
        self.addCleanup(s.stop)
        s.start_redis(persist=True)
        self.assertEqual(s.redis_cli("SET", "docq:shape", "shards=8 group=workers"), "OK")
        s.stop_redis()
        s.start_server()
        s.start_redis(persist=True)
        self.refused(s.server, "DOCQ_SHARDS is 4 here but 8 in the deployment")

    def test_a_worker_started_before_any_server_works_and_is_refused_once_a_server_records_another_shape(self):
        """a worker started before any server works, and is refused once a server records another
        shape"""
        s = self.stack
        good = s.start_worker()
        bad = s.start_worker(DOCQ_SHARDS="16")
        for w in (good, bad):
            port = metrics_port(w)
            wait_for(lambda: http_get(port, "/readyz")[0] == 200, what="%s to be ready" % w.name)
            self.assertIn("no server has recorded the deployment's shape", w.text())
        s.start_server()
        self.refused(bad, "DOCQ_SHARDS is 16 here but 4 in the deployment")
        tid = s.stub().SubmitDoc(pb.SubmitDocRequest(doc_id="shape"), timeout=10).task_id
        self.assertEqual(s.wait_terminal(tid).state, pb.Task.SUCCESS, s.logs())
        self.assertTrue(good.alive())

    def test_after_redis_loses_its_data_a_running_server_records_the_shape_again(self):
        """after Redis loses its data a running server records the deployment's shape again"""
        s = self.stack.start_server(DOCQ_HEALTH_INTERVAL_MS="100")
        wait_for(lambda: s.redis_cli("GET", "docq:shape") == "shards=4 group=workers", what="the shape")
        s.stop_redis()
        s.start_redis()
        wait_for(lambda: s.redis_cli("GET", "docq:shape") == "shards=4 group=workers", what="the shape again")
        self.assertEqual(s.redis_cli("SMEMBERS", "docq-deployments"), "docq")
        self.refused(s.start_worker(DOCQ_SHARDS="2"), "DOCQ_SHARDS is 2 here but 4")


class Settings(unittest.TestCase):
    def setUp(self):
        self.stack = Stack().start_ai()
        self.addCleanup(self.stack.stop)

    def test_a_heartbeat_above_a_third_of_the_visibility_timeout_is_refused(self):
        """a heartbeat above a third of the visibility timeout is refused"""
        w = self.stack.start_worker(DOCQ_HEARTBEAT_MS="400", DOCQ_VISIBILITY_TIMEOUT_MS="1000")
        self.assertEqual(w.wait(timeout=30), 2, w.text())
        for word in ("DOCQ_HEARTBEAT_MS", "'400'", "DOCQ_VISIBILITY_TIMEOUT_MS", "(1000)", "a third"):
            self.assertIn(word, w.text())

    def test_an_acl_user_in_the_redis_url_is_authenticated_as_that_user(self):
        """an ACL user in the Redis URL is authenticated as that user"""
        s = self.stack
        # Only AUTH app <its password> opens this Redis: the default user's
        # password is another one.
        s.start_redis(password="default-only")
        self.assertEqual(s.redis_cli("ACL", "SETUSER", "app", "on", ">app-secret", "~*", "&*", "+@all"), "OK")
        self.assertIn("NOAUTH", subprocess.run(["redis-cli", "-p", str(s.redis_port), "PING"],
                                               capture_output=True, text=True).stdout)
        url = "redis://app:app-secret@127.0.0.1:%d" % s.redis_port
        s.start_server(DOCQ_REDIS_URL=url)
        path = os.path.join(s.dir, "redis-password")
        with open(path, "w") as f:
            f.write("app-secret\n")
        s.start_worker(DOCQ_REDIS_URL="redis://app@127.0.0.1:%d" % s.redis_port, DOCQ_REDIS_PASSWORD_FILE=path)
        tid = s.stub().SubmitDoc(pb.SubmitDocRequest(doc_id="acl"), timeout=10).task_id
        self.assertEqual(s.wait_terminal(tid).state, pb.Task.SUCCESS, s.logs())
        clients = s.redis_cli("CLIENT", "LIST").splitlines()
        self.assertGreaterEqual(len([c for c in clients if " user=app " in c]), 3, clients)
        self.assertEqual([c for c in clients if " user=default " in c and "cmd=client" not in c], [], clients)
