"""docq on a real Redis Cluster that changes under load: a primary SIGKILLed (its
replica takes over) and a shard's slot moved to another primary key by key (ASK
redirections while it is split). 16 callers, one per shard (API keys), submit
through two servers while two workers run; every acknowledged task must end
SUCCESS and nothing may stay pending. And the same changes while tasks are
watched: every watch still ends with the task's last version."""
import hashlib
import os
import re
import sys
import threading
import time
import unittest

import grpc

from cluster import ClusterStack
from stack import labels, pb, pb_grpc, shard_for, wait_for
from test_watch import Watcher, check_stream

SHARDS = 16
OUTAGE_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def callers_one_per_shard(shards=SHARDS):
    """{caller id: API key}: for each shard, the first caller-N whose id
    picks it (docq_shard_for), so that the load reaches every shard."""
    chosen = {}
    n = 0
    while len(chosen) < shards:
        chosen.setdefault(shard_for("caller-%d" % n, shards), "caller-%d" % n)
        n += 1
    return {chosen[s]: "key-%s-%d" % (chosen[s], s) for s in range(shards)}


class Load:
    """Each caller submits in a thread of its own, through the servers in
    turn, and reads each acknowledged task back (GetStatus) through the
    other server, with a pause between submits, until stop(). Keeps every
    answer: acked [(monotonic time, caller, task id)], errors and
    read_errors [(time, caller, code, details)]."""

    def __init__(self, addresses, keys, pause=0.1, timeout=3.0):
        self.keys, self.pause, self.timeout = keys, pause, timeout
        self.channels = [grpc.insecure_channel(a) for a in addresses]
        self.acked, self.errors, self.read_errors = [], [], []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.began = time.monotonic()
        self.ended = None
        self.threads = [threading.Thread(target=self.run, args=(c,), daemon=True) for c in keys]
        for t in self.threads:
            t.start()

    def run(self, caller):
        stubs = [pb_grpc.DocQueueStub(ch) for ch in self.channels]
        md = [("authorization", "Bearer " + self.keys[caller])]
        n = 0
        while not self.done.is_set():
            try:
                r = stubs[n % len(stubs)].SubmitDoc(pb.SubmitDocRequest(doc_id="%s-%d" % (caller, n)),
                                                    timeout=self.timeout, metadata=md)
                with self.lock:
                    self.acked.append((time.monotonic(), caller, r.task_id))
            except grpc.RpcError as e:
                with self.lock:
                    self.errors.append((time.monotonic(), caller, e.code(), e.details()))
                r = None
            n += 1
            if r is not None:
                try:
                    stubs[n % len(stubs)].GetStatus(pb.GetStatusRequest(task_id=r.task_id),
                                                    timeout=self.timeout, metadata=md)
                except grpc.RpcError as e:
                    with self.lock:
                        self.read_errors.append((time.monotonic(), caller, e.code(), e.details()))
            self.done.wait(self.pause)

    def stop(self):
        self.done.set()
        for t in self.threads:
            t.join(30)
        self.ended = time.monotonic()
        for ch in self.channels:
            ch.close()

    def acked_by(self, caller):
        return [t for t, c, _ in self.acked if c == caller]

    def longest_gap(self, caller):
        """(seconds, start) of the longest time the caller went without an
        acknowledged submit, from the start of the load to its end."""
        times = [self.began] + sorted(self.acked_by(caller)) + [self.ended]
        return max((b - a, a) for a, b in zip(times, times[1:]))


class ClusterUnderLoad(unittest.TestCase):
    def setUp(self):
        self.keys = callers_one_per_shard()

    def start(self, replicas=1, ai_latency_ms=50, **server_env):
        """A ClusterStack with two servers (API keys) and two workers."""
        s = self.stack = ClusterStack(shards=SHARDS, replicas=replicas)
        self.addCleanup(s.stop)
        path = os.path.join(s.dir, "keys")
        with open(path, "w") as f:
            for caller, key in self.keys.items():
                f.write("%s %s\n" % (caller, hashlib.sha256(key.encode()).hexdigest()))
        s.start_redis().start_ai("--latency-ms", str(ai_latency_ms))
        s.start_server(DOCQ_API_KEYS_FILE=path, **server_env)
        _, port2 = s.start_replica("server-2", DOCQ_API_KEYS_FILE=path, **server_env)
        self.addresses = [s.address(), "127.0.0.1:%d" % port2]
        fast = {"DOCQ_VISIBILITY_TIMEOUT_MS": "3000", "DOCQ_HEARTBEAT_MS": "500"}
        s.start_worker(**fast)
        s.start_worker(**fast)
        return s

    def check_all_succeed(self, load, timeout=180):
        """Every acknowledged task ends SUCCESS (GetStatus by its owner),
        within timeout; then nothing is queued or pending. Returns {task id:
        its final Task}."""
        s = self.stack
        stubs = [pb_grpc.DocQueueStub(grpc.insecure_channel(a)) for a in self.addresses]
        left = {tid: caller for _, caller, tid in load.acked}
        self.assertEqual(len(left), len(load.acked))
        deadline = time.monotonic() + timeout
        lost, failed, last_error, done = [], [], None, {}
        while left and time.monotonic() < deadline:
            for n, (tid, caller) in enumerate(list(left.items())):
                md = [("authorization", "Bearer " + self.keys[caller])]
                try:
                    t = stubs[n % 2].GetStatus(pb.GetStatusRequest(task_id=tid), timeout=5, metadata=md)
                except grpc.RpcError as e:
                    if e.code() == grpc.StatusCode.NOT_FOUND:
                        lost.append(tid)
                        del left[tid]
                    last_error = (e.code(), e.details())
                    continue
                if t.state == pb.Task.SUCCESS:
                    done[tid] = t
                    del left[tid]
                elif t.state == pb.Task.FAILURE:
                    failed.append((tid, t.error))
                    del left[tid]
            if left:
                time.sleep(0.5)
        self.assertEqual(lost, [], "acknowledged tasks NOT_FOUND (lost)\n" + s.logs())
        self.assertEqual(failed, [], s.logs())
        self.assertEqual(left, {}, "tasks not finished after %d s (last GetStatus error %s)\n%s" % (
            timeout, last_error, s.logs()))
        wait_for(lambda: s.pending_count() == 0 and s.queued_count() == 0, timeout=30,
                 what="no entry left pending or queued")
        return done

    def outage_errors(self, load):
        """The submit and read errors other than UNAVAILABLE and
        DEADLINE_EXCEEDED (a read NOT_FOUND: an acknowledged task lost)."""
        return [(round(t - load.began, 2), c, code, d) for t, c, code, d in load.errors + load.read_errors
                if code not in OUTAGE_CODES]

    def summary(self, load):
        return "submits: %d acknowledged, %d failed %s; reads: %d failed %s" % (
            len(load.acked), len(load.errors), sorted({e[2].name for e in load.errors}),
            len(load.read_errors), sorted({e[2].name for e in load.read_errors}))

    @labels("cluster")
    def test_a_killed_primary_pauses_its_shards_under_10_s_and_loses_no_acknowledged_task(self):
        """on a Redis cluster with DOCQ_REDIS_MIN_REPLICAS=1 a SIGKILLed primary pauses submits for
        less than 10 s, fails them only UNAVAILABLE or DEADLINE_EXCEEDED and loses no acknowledged
        task"""
        # Two replicas per primary, so that the promoted one still has a
        # replica to confirm new tasks (WAIT 1).
        s = self.start(replicas=2, DOCQ_REDIS_MIN_REPLICAS="1")
        load = Load(self.addresses, self.keys)
        try:
            wait_for(lambda: all(load.acked_by(c) for c in self.keys), timeout=30,
                     what="every caller's first acknowledged submit")
            time.sleep(2)
            by_primary = s.keys_by_primary()
            victim = max(by_primary, key=by_primary.get)
            owned = {slot for slot, node in s.cluster.slot_owners().items() if node.endswith(":%d" % victim)}
            victim_callers = [c for c in self.keys
                              if s.cluster.key_slot(s.stream_key(shard_for(c, SHARDS))) in owned]
            killed_at = time.monotonic()
            s.cluster.kill(victim)
            sys.stderr.write("killed primary :%d holding %d of %d task keys (%s) at %.1f s of load\n" % (
                victim, by_primary[victim], sum(by_primary.values()), by_primary, killed_at - load.began))

            def promoted():
                owners = s.cluster.slot_owners()
                return all(owners.get(slot) not in (None, "127.0.0.1:%d" % victim) for slot in owned)
            wait_for(promoted, timeout=60, interval=0.2, what="a replica to take over the killed primary's slots")
            sys.stderr.write("the cluster promoted a replica %.1f s after the kill\n" % (
                time.monotonic() - killed_at))
            time.sleep(15)
        finally:
            load.stop()
        gaps = {c: load.longest_gap(c) for c in self.keys}
        worst = max(gaps, key=lambda c: gaps[c][0])
        sys.stderr.write(self.summary(load) + "\n")
        sys.stderr.write("measured pause: longest gap between acknowledged submits %.2f s (caller %s, "
                         "from %.1f s after the kill); callers of the killed primary: %s; longest of the "
                         "others: %.2f s\n" % (
                             gaps[worst][0], worst, gaps[worst][1] - killed_at,
                             ", ".join("%s %.2f s" % (c, gaps[c][0]) for c in victim_callers),
                             max(gaps[c][0] for c in self.keys if c not in victim_callers)))
        # The killed primary's callers did wait: failure detection alone
        # takes the cluster's node timeout (1.5 s).
        self.assertTrue(victim_callers)
        self.assertGreater(min(gaps[c][0] for c in victim_callers), 1.0, gaps)
        self.assertEqual(self.outage_errors(load), [], s.logs())
        self.assertLess(gaps[worst][0], 10, (worst, s.logs()))
        tasks = self.check_all_succeed(load)
        # How long the other primaries' tasks waited for a worker (logged,
        # not asserted: a worker meeting the dead primary pauses every shard).
        waits = [(t.started_at.ToMilliseconds() - t.created_at.ToMilliseconds(), c)
                 for _, c, tid in load.acked if c not in victim_callers for t in [tasks[tid]]]
        sys.stderr.write("longest wait for a worker of a task of the other primaries' shards: %d ms (%s)\n" %
                         max(waits))

    @labels("cluster")
    def test_moving_a_shards_slot_to_another_primary_under_load_loses_and_leaves_nothing(self):
        """on a Redis cluster moving a shard's slot key by key to another primary under load loses no
        task and leaves nothing pending"""
        s = self.start(ai_latency_ms=200)
        load = Load(self.addresses, self.keys)
        try:
            wait_for(lambda: all(load.acked_by(c) for c in self.keys), timeout=30,
                     what="every caller's first acknowledged submit")
            time.sleep(2)
            slot = s.cluster.key_slot(s.stream_key(0))
            src = s.cluster.slot_owners()[slot]
            dst = [p for p in s.cluster.primary_ports() if not src.endswith(":%d" % p)][0]
            s.cluster.cli(dst, "CONFIG", "RESETSTAT")
            began = time.monotonic()
            moved = s.cluster.move_slot(slot, dst, batch=5, pause=0.2, settle=1.0)
            sys.stderr.write("moved slot %d ({s0}) from %s to :%d: %d keys in %.1f s\n" % (
                slot, src, dst, moved, time.monotonic() - began))
            self.assertGreater(moved, 10)
            self.assertEqual(s.cluster.slot_owners()[slot], "127.0.0.1:%d" % dst)
            # docq followed ASK to the destination (its ASKING commands:
            # neither MIGRATE nor this test send any).
            asking = re.search(r"cmdstat_asking:calls=(\d+)", s.cluster.cli(dst, "INFO", "commandstats"))
            sys.stderr.write("ASKING commands on the destination: %s\n" % (asking and asking.group(1)))
            self.assertTrue(asking and int(asking.group(1)) > 0, s.cluster.cli(dst, "INFO", "commandstats"))
            time.sleep(5)
        finally:
            load.stop()
        caller0 = [c for c in self.keys if shard_for(c, SHARDS) == 0][0]
        gap = load.longest_gap(caller0)
        sys.stderr.write("%s; longest gap of %s (shard 0) %.2f s\n" % (self.summary(load), caller0, gap[0]))
        self.assertEqual(self.outage_errors(load), [], s.logs())
        self.assertLess(gap[0], 10, s.logs())
        # The shard kept being served after the move, from its new primary.
        self.assertTrue([t for t in load.acked_by(caller0) if t > load.ended - 3])
        self.check_all_succeed(load)
        self.assertGreater(int(s.cluster.cli(dst, "CLUSTER", "COUNTKEYSINSLOT", slot)), moved)


class ClusterWatches(unittest.TestCase):
    FAST = {"DOCQ_VISIBILITY_TIMEOUT_MS": "3000", "DOCQ_HEARTBEAT_MS": "500"}

    def setUp(self):
        self.stack = ClusterStack(shards=SHARDS)
        self.addCleanup(self.stack.stop)

    def submit_watched(self, callers, ai_latency_ms, **worker_env):
        """Submit one task per caller (x-forwarded-for addresses through a
        trusted proxy), watch each, then start a worker; returns {task id:
        Watcher} once a task has started."""
        s = self.stack
        s.start_redis().start_ai("--latency-ms", str(ai_latency_ms))
        s.start_server(DOCQ_TRUSTED_PROXIES="127.0.0.1")
        stub = s.stub()
        ids = [stub.SubmitDoc(pb.SubmitDocRequest(doc_id="doc_%d" % i), timeout=10,
                              metadata=[("x-forwarded-for", c)]).task_id for i, c in enumerate(callers)]
        watchers = {tid: Watcher(stub, tid) for tid in ids}
        wait_for(lambda: all(w.messages for w in watchers.values()), what="every watch's first message")
        s.start_worker(**dict(self.FAST, **worker_env))
        wait_for(lambda: any(m.state == pb.Task.STARTED for w in watchers.values() for m in w.messages),
                 timeout=30, what="a task to start")
        return watchers

    def check_watches(self, watchers):
        """Every watch ends OK with SUCCESS, by the rules of check_stream,
        its last message the task's last version; nothing stays pending."""
        s = self.stack
        for tid, w in watchers.items():
            w.finish(timeout=120)
            self.assertEqual(w.code, grpc.StatusCode.OK, (tid, w.details, s.logs()))
            check_stream(self, w.messages, tid)
            self.assertEqual(w.messages[-1].state, pb.Task.SUCCESS, (tid, w.messages))
            self.assertEqual(w.messages[-1].version, s.task(tid).version, (tid, w.messages))
        wait_for(lambda: s.pending_count() == 0 and s.queued_count() == 0, timeout=30,
                 what="no entry left pending or queued")
        # The server subscribed again where the shards are now.
        self.assertGreaterEqual(s.server.text().count("events: subscribed to"), 2, s.server.text()[-4000:])

    @labels("cluster")
    def test_watches_of_tasks_on_a_killed_primary_end_with_their_last_version(self):
        """on a Redis cluster watches of tasks running when their primary is SIGKILLed end with
        SUCCESS and the task's last version"""
        s = self.stack
        watchers = self.submit_watched(["10.0.%d.%d" % (i // 8, i % 8) for i in range(48)], ai_latency_ms=3000)
        wait_for(lambda: all(any(m.state == pb.Task.STARTED for m in w.messages) for w in watchers.values()),
                 timeout=30, what="every task to start")
        by_primary = s.keys_by_primary()
        victim = max(by_primary, key=by_primary.get)
        # Without DOCQ_REDIS_MIN_REPLICAS a failover loses what the replica
        # had not received yet (README, Durability): not what this tests.
        s.cluster.wait_replicated(victim)
        s.cluster.kill(victim)
        sys.stderr.write("killed primary :%d holding %d of %d task keys, every AI call in flight\n" % (
            victim, by_primary[victim], sum(by_primary.values())))
        self.check_watches(watchers)

    @labels("cluster")
    def test_watches_of_a_shard_whose_slot_moves_end_with_their_last_version(self):
        """on a Redis cluster watches of a shard's tasks end with SUCCESS and the task's last version
        while its slot moves to another primary"""
        s = self.stack
        caller = [a for a in ("10.1.0.%d" % i for i in range(256)) if shard_for(a, SHARDS) == 0][0]
        # One AI call at a time: the tasks start and finish before, during and after the move.
        watchers = self.submit_watched([caller] * 12, ai_latency_ms=500, DOCQ_WORKER_CONCURRENCY="1")
        slot = s.cluster.key_slot(s.stream_key(0))
        src = s.cluster.slot_owners()[slot]
        dst = [p for p in s.cluster.primary_ports() if not src.endswith(":%d" % p)][0]
        moved = s.cluster.move_slot(slot, dst, batch=2, pause=0.3, settle=1.0)
        done = sum(w.messages[-1].state == pb.Task.SUCCESS for w in watchers.values() if w.messages)
        sys.stderr.write("moved slot %d ({s0}) from %s to :%d: %d keys; %d of 12 tasks done\n" % (
            slot, src, dst, moved, done))
        self.assertLess(done, 12)
        self.check_watches(watchers)



class ClusterPartialOutage(unittest.TestCase):
    @labels("cluster")
    def test_a_primary_down_for_good_stops_only_its_own_shards(self):
        """on a Redis cluster serving without full coverage a primary down for good stops only its
        own shards: the tasks of the other shards still succeed"""
        # No replicas, and cluster-require-full-coverage no: the other
        # primaries go on serving their slots, as Redis allows.
        s = self.stack = ClusterStack(shards=SHARDS, replicas=0, full_coverage=False)
        self.addCleanup(s.stop)
        s.start_redis().start_ai().start_server(DOCQ_TRUSTED_PROXIES="127.0.0.1")
        s.start_worker(DOCQ_VISIBILITY_TIMEOUT_MS="3000", DOCQ_HEARTBEAT_MS="500")
        owners = s.cluster.slot_owners()
        callers = ["10.0.0.%d" % i for i in range(64)]
        node = {c: owners[s.cluster.key_slot(s.stream_key(shard_for(c, SHARDS)))] for c in callers}
        # Not the seed, nor the primary of 127.0.0.1's shard (the watches'
        # caller, whose read limit is counted there).
        local = owners[s.cluster.key_slot(s.stream_key(shard_for("127.0.0.1", SHARDS)))]
        victim = [p for p in s.cluster.primary_ports() if p != s.redis_port and local != "127.0.0.1:%d" % p][0]
        healthy = [c for c in callers if node[c] != "127.0.0.1:%d" % victim][:20]
        stub = s.stub()

        def submit(caller, doc):
            return stub.SubmitDoc(pb.SubmitDocRequest(doc_id=doc), timeout=10,
                                  metadata=[("x-forwarded-for", caller)]).task_id

        def state(caller, tid):
            return stub.GetStatus(pb.GetStatusRequest(task_id=tid), timeout=10,
                                  metadata=[("x-forwarded-for", caller)]).state
        first = submit(healthy[0], "before")
        wait_for(lambda: state(healthy[0], first) == pb.Task.SUCCESS, timeout=30, what="the first task")
        s.cluster.kill(victim)
        wait_for(lambda: "fail" in s.cluster.cli(s.redis_port, "CLUSTER", "NODES"), timeout=30, interval=0.2,
                 what="the cluster to mark the killed primary failed")
        # Submits, reads and watches of the other shards are served by the
        # server, and their tasks run, by the worker.
        ids = [(c, submit(c, "after_%d" % i)) for i, c in enumerate(healthy)]
        watchers = [Watcher(stub, tid) for _, tid in ids]
        for c, tid in ids:
            wait_for(lambda: state(c, tid) == pb.Task.SUCCESS, timeout=30,
                     what="task %s of a live primary's shard to succeed\n%s" % (tid, s.logs()))
        for (_, tid), w in zip(ids, watchers):
            w.finish(timeout=30)
            self.assertEqual(w.code, grpc.StatusCode.OK, (tid, w.details))
            self.assertEqual(w.messages[-1].state, pb.Task.SUCCESS, (tid, w.messages, s.logs()))


if __name__ == "__main__":
    unittest.main()
