"""What the workers leave in Redis over time: consumers of the group and dead letters
stay bounded (a stopped worker's consumers go, dead-letter streams are trimmed), and
consumer names stay unique."""
import signal
import unittest

from stack import Stack, pb, wait_for

FAST = {"DOCQ_HEARTBEAT_MS": "100", "DOCQ_VISIBILITY_TIMEOUT_MS": "600000"}


class Consumers(unittest.TestCase):
    def setUp(self):
        self.stack = Stack()
        self.addCleanup(self.stack.stop)

    def consumers(self, shard):
        """{name: pending} of the group's consumers on shard's stream."""
        out = self.stack.redis_cli("XINFO", "CONSUMERS", self.stack.stream_key(shard), "workers").splitlines()
        found = {}
        for i, field in enumerate(out):
            if field == "name":
                name = out[i + 1]
            elif field == "pending":
                found[name] = int(out[i + 1])
        return found

    def ghosts(self, shard=0):
        """Two consumers of stopped workers on shard: "ghost-busy", which holds one
        pending entry (read before the other was made, so it is the idler of the
        two), and "ghost-idle", which holds none."""
        s, key = self.stack, self.stack.stream_key(shard)
        s.redis_cli("XGROUP", "CREATE", key, "workers", "0", "MKSTREAM")
        s.redis_cli("XADD", key, "*", "task_id", "s%d-held" % shard, "doc_id", "held")
        s.redis_cli("XREADGROUP", "GROUP", "workers", "ghost-busy", "COUNT", "1", "STREAMS", key, ">")
        s.redis_cli("XGROUP", "CREATECONSUMER", key, "workers", "ghost-idle")
        self.assertEqual(self.consumers(shard), {"ghost-busy": 1, "ghost-idle": 0})

    def test_a_worker_stopped_cleanly_leaves_no_consumer_in_the_group(self):
        """a worker stopped cleanly leaves no consumer in the group"""
        s = self.stack.start_all(workers=1, **FAST)
        tid = s.stub().SubmitDoc(pb.SubmitDocRequest(doc_id="one"), timeout=5).task_id
        self.assertEqual(s.wait_terminal(tid).state, pb.Task.SUCCESS)
        self.assertTrue(any(self.consumers(shard) for shard in range(s.shards)))
        w = s.workers[0]
        w.signal(signal.SIGTERM)
        self.assertEqual(w.wait(timeout=30), 0, w.text()[-3000:])
        for shard in range(s.shards):
            self.assertEqual(self.consumers(shard), {}, "shard %d" % shard)

    def test_a_consumer_idle_past_docq_consumer_idle_ms_with_nothing_pending_is_deleted(self):
        """a consumer idle past DOCQ_CONSUMER_IDLE_MS with nothing pending is deleted"""
        s = self.stack.start_redis().start_ai()
        self.ghosts()
        w = s.start_worker(DOCQ_CONSUMER_IDLE_MS="300", **FAST)
        wait_for(lambda: "ghost-idle" not in self.consumers(0), timeout=30, what="ghost-idle to be deleted")
        self.assertIn("idle for 300 ms or more with nothing pending", w.text())

    def test_a_consumer_with_pending_entries_is_never_deleted(self):
        """a consumer with pending entries is never deleted"""
        s = self.stack.start_redis().start_ai()
        self.ghosts()
        s.start_worker(DOCQ_CONSUMER_IDLE_MS="300", **FAST)
        # ghost-busy is idler than ghost-idle in the pass that deletes
        # ghost-idle; a second witness proves a later pass too.
        wait_for(lambda: "ghost-idle" not in self.consumers(0), timeout=30, what="ghost-idle to be deleted")
        s.redis_cli("XGROUP", "CREATECONSUMER", s.stream_key(0), "workers", "ghost-idle-2")
        wait_for(lambda: "ghost-idle-2" not in self.consumers(0), timeout=30, what="ghost-idle-2 to be deleted")
        self.assertEqual(self.consumers(0).get("ghost-busy"), 1)
        self.assertEqual(s.redis_cli("XLEN", s.stream_key(0)), "1")

    def test_the_dead_letter_stream_is_trimmed_to_about_docq_dead_maxlen(self):
        """the dead-letter stream is trimmed to about DOCQ_DEAD_MAXLEN"""
        s = self.stack.start_redis()
        # Trimming with MAXLEN ~ drops whole stream nodes only: with 4 entries
        # a node, a stream trimmed to ~5 keeps between 5 and 5 + 3 entries.
        s.redis_cli("CONFIG", "SET", "stream-node-max-entries", "4")
        s.start_ai().start_server()
        stub = s.stub()
        ids = [stub.SubmitDoc(pb.SubmitDocRequest(doc_id="poison_%d" % i), timeout=5).task_id for i in range(30)]
        shard = s.shard_of(ids[0])
        for tid in ids:  # As if each had killed 100 workers already.
            s.redis_cli("HSET", "docq:{s%d}:task:%s" % (shard, tid), "deliveries", "100")
        s.start_worker(DOCQ_MAX_DELIVERIES="1", DOCQ_DEAD_MAXLEN="5", **FAST)
        for tid in ids:
            t = s.wait_terminal(tid)
            self.assertIn("dead-letter stream", t.error)
        n = int(s.redis_cli("XLEN", s.stream_key(shard, "dead")))
        self.assertGreaterEqual(n, 5)
        self.assertLessEqual(n, 8)


if __name__ == "__main__":
    unittest.main()
