"""docq's core on a real Redis Cluster (cluster.py's ClusterStack: 3 primaries and
3 replicas, docq given the address of one primary): submits, GetStatus, WatchStatus,
the rate limit and worker takeover, with tasks on every primary.

The classes below the first rerun tests of test_e2e.py, test_watch.py,
test_ratelimit.py and test_takeover.py with a ClusterStack in place of their
Stack (their STACK attribute): each such test here calls the standalone test
by name under a sentence of its own."""
import json
import unittest
from concurrent.futures import ThreadPoolExecutor

import grpc

import test_e2e
import test_ratelimit
import test_takeover
import test_watch
from cluster import ClusterStack
from stack import free_port, labels, pb
from test_watch import Watcher, check_stream

SHARDS = 16


class ClusterCore(unittest.TestCase):
    def setUp(self):
        self.stack = ClusterStack(shards=SHARDS)
        self.addCleanup(self.stack.stop)

    @labels("cluster")
    def test_tasks_of_50_callers_over_16_shards_succeed_and_stream_every_change_with_keys_on_every_primary(self):
        """on a Redis cluster the tasks of 50 callers over 16 shards all succeed through two workers,
        each watch streams PENDING STARTED SUCCESS and their keys are on every primary"""
        s = self.stack
        # Callers are the x-forwarded-for addresses of a trusted proxy, so
        # that the tasks spread over the shards (a caller's share one).
        s.start_redis().start_ai("--latency-ms", "20").start_server(DOCQ_TRUSTED_PROXIES="127.0.0.1")
        stub = s.stub()
        docs = {}
        for i in range(50):
            r = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="doc_%d" % i), timeout=10,
                               metadata=[("x-forwarded-for", "10.0.0.%d" % i)])
            self.assertEqual(r.state, pb.Task.PENDING)
            docs[r.task_id] = "doc_%d" % i
        watchers = {tid: Watcher(stub, tid) for tid in docs}
        shards = {s.shard_of(tid) for tid in docs}
        self.assertGreater(len(shards), 8, shards)
        # Each shard's keys live in its slot's primary: all three hold tasks.
        by_primary = s.keys_by_primary()
        self.assertEqual(sum(by_primary.values()), 50, by_primary)
        self.assertEqual(len([n for n in by_primary.values() if n]), 3, by_primary)

        s.start_worker()
        s.start_worker()
        for tid, doc in docs.items():
            t = s.wait_terminal(tid, timeout=60)
            self.assertEqual(t.state, pb.Task.SUCCESS, "%s: %s\n%s" % (tid, t.error, s.logs()))
            self.assertEqual(t.doc_id, doc)
            self.assertEqual(json.loads(t.result), {"doc_id": doc, "summary": "processed " + doc})
            self.assertEqual(t.attempts, 1)
            self.assertTrue(t.created_at.ToMilliseconds() <= t.started_at.ToMilliseconds()
                            <= t.finished_at.ToMilliseconds())
        for tid, w in watchers.items():
            w.finish(timeout=60)
            self.assertEqual(w.code, grpc.StatusCode.OK, (tid, w.details, s.logs()))
            check_stream(self, w.messages, tid)
            self.assertEqual([m.state for m in w.messages if m.state != pb.Task.PENDING],
                             [pb.Task.STARTED, pb.Task.SUCCESS], (tid, w.messages))
            self.assertEqual(w.messages[0].state, pb.Task.PENDING, (tid, w.messages))
        stats = s.ai_stats()
        self.assertEqual((stats["requests"], stats["duplicate_tasks"]), (50, 0))
        self.assertEqual(s.pending_count(), 0)
        self.assertEqual(s.queued_count(), 0)
        self.assertEqual(s.open_watches(), 0)

        # An id never issued is NOT_FOUND on every shard, whichever primary serves it.
        for shard in range(SHARDS):
            with self.assertRaises(grpc.RpcError) as cm:
                stub.GetStatus(pb.GetStatusRequest(task_id="s%d-%s" % (shard, "ab" * 16)), timeout=5)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND, (shard, cm.exception.details()))
        with self.assertRaises(grpc.RpcError) as cm:
            list(stub.WatchStatus(pb.WatchStatusRequest(task_id="s3-" + "cd" * 16), timeout=5))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)

    @labels("cluster")
    def test_a_server_and_a_worker_whose_first_seed_is_down_find_the_cluster_from_the_next(self):
        """on a Redis cluster a server and a worker whose first seed is down find the cluster from
        the next seed"""
        s = self.stack.start_redis().start_ai()
        seeds = "redis://127.0.0.1:%d,redis://127.0.0.1:%d" % (free_port(), s.redis_port)
        s.start_server(DOCQ_REDIS_URL=seeds)
        s.start_worker(DOCQ_REDIS_URL=seeds)
        r = s.stub().SubmitDoc(pb.SubmitDocRequest(doc_id="seeded"), timeout=10)
        self.assertEqual(s.wait_terminal(r.task_id).state, pb.Task.SUCCESS, s.logs())

    @labels("cluster")
    def test_every_acknowledged_task_is_on_a_replica_of_its_primary_when_submitdoc_answers(self):
        """on a Redis cluster with DOCQ_REDIS_MIN_REPLICAS=1 every acknowledged task of 50 concurrent
        callers is on the replica of its shard's primary when SubmitDoc answers"""
        s = self.stack.start_redis()
        s.start_server(DOCQ_TRUSTED_PROXIES="127.0.0.1", DOCQ_REDIS_MIN_REPLICAS="1", DOCQ_REDIS_WAIT_MS="5000")
        owners, replicas = s.cluster.slot_owners(), s.cluster.replicas_of()
        primary = {n: int(owners[s.cluster.key_slot(s.stream_key(n))].rsplit(":", 1)[1]) for n in range(SHARDS)}
        stub = s.stub()
        for port in s.cluster.primary_ports():
            s.cluster.cli(port, "CONFIG", "RESETSTAT")

        # Each check runs as soon as its own answer arrives, while other
        # submits are still in flight.
        def submit_and_check(i):
            tid = stub.SubmitDoc(pb.SubmitDocRequest(doc_id="doc_%d" % i), timeout=20,
                                 metadata=[("x-forwarded-for", "10.0.1.%d" % i)]).task_id
            key = "docq:{s%d}:task:%s" % (s.shard_of(tid), tid)
            return tid, primary[s.shard_of(tid)], [s.cluster.read_replica(r, "HGET", key, "state")
                                                   for r in replicas[primary[s.shard_of(tid)]]]
        with ThreadPoolExecutor(50) as pool:
            seen = list(pool.map(submit_and_check, range(50)))
        self.assertEqual(len({t for t, _, _ in seen}), 50)
        self.assertEqual(len({p for _, p, _ in seen}), 3)
        missing = [(t, states) for t, _, states in seen if states != ["PENDING"]]
        self.assertEqual(missing, [], "acknowledged but not on the replica yet")
        # The WAIT went to each primary that stored tasks, after its submits.
        for port in s.cluster.primary_ports():
            self.assertIn("cmdstat_wait:", s.cluster.cli(port, "INFO", "commandstats"), port)


class ClusterEndToEnd(test_e2e.EndToEnd):
    STACK = ClusterStack

    @labels("cluster")
    def test_cluster_200_tasks_from_30_clients(self):
        """on a Redis cluster 200 tasks from 30 concurrent clients all succeed with one AI call each"""
        self.test_200_tasks_from_30_clients_all_succeed_with_one_ai_call_each()

    @labels("cluster")
    def test_cluster_finished_records_expire(self):
        """on a Redis cluster finished task records expire after the result TTL"""
        self.test_finished_task_records_expire_after_the_result_ttl()


class ClusterWatch(test_watch.Watch):
    STACK = ClusterStack

    @labels("cluster")
    def test_cluster_every_transition_of_200_watched_tasks(self):
        """on a Redis cluster every transition arrives in order for 200 concurrent watched tasks"""
        self.test_every_transition_arrives_in_order_for_200_concurrent_watched_tasks()

    @labels("cluster")
    def test_cluster_watch_reopened_with_after_version(self):
        """on a Redis cluster a watch reopened with after_version gets only newer versions"""
        self.test_a_watch_reopened_with_after_version_gets_only_newer_versions()


class ClusterLimits(test_ratelimit.Limits):
    STACK = ClusterStack

    @labels("cluster")
    def test_cluster_two_servers_admit_exactly_the_limit(self):
        """on a Redis cluster two servers admit exactly 50 of 200 concurrent submits from one caller
        and queue exactly 50"""
        self.test_two_replicas_admit_exactly_50_of_200_concurrent_submits_from_one_caller()


class ClusterTakeover(test_takeover.Takeover):
    STACK = ClusterStack

    @labels("cluster")
    def test_cluster_task_of_a_killed_worker_is_finished_by_another(self):
        """on a Redis cluster a task of a worker killed mid-call is finished by another worker"""
        self.test_a_task_of_a_worker_killed_mid_call_is_finished_by_another_worker()

    @labels("cluster")
    def test_cluster_restarted_worker_reclaims(self):
        """on a Redis cluster a restarted worker reclaims what its killed predecessor left"""
        self.test_a_restarted_worker_reclaims_what_its_killed_predecessor_left()


def load_tests(loader, standard_tests, pattern):
    """Only the tests written in this file: the classes inherit every test of
    the standalone class they extend, which runs in its own file."""
    suite = unittest.TestSuite()
    for cls in (ClusterCore, ClusterEndToEnd, ClusterWatch, ClusterLimits, ClusterTakeover):
        for name in sorted(vars(cls)):
            if name.startswith("test"):
                suite.addTest(cls(name))
    return suite


if __name__ == "__main__":
    unittest.main()
