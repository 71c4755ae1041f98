"""Chaos: 2,000 tasks, 3 workers, one of them SIGKILLed every 2 s and restarted, an AI that
answers 503 to 5% of calls with random latency and rejects some documents for good.

Every task must end SUCCESS, or FAILURE for the documents the AI rejects, with its outcome
written exactly once, and no stream entry may stay behind. Bounded: the whole test takes
well under a minute on a 2-core machine and gives up after 150 s."""
import json
import signal
import threading
import time
import unittest

from stack import Stack, labels, pb

TASKS = 2000
REJECTED_EVERY = 50          # doc ids perm_<i> for i % 50 == 0: 40 permanent failures.
KILL_EVERY_S = 2.0
DEADLINE_S = 150
WORKER_ENV = {
    "DOCQ_WORKER_CONCURRENCY": "16",
    "DOCQ_VISIBILITY_TIMEOUT_MS": "2000",
    "DOCQ_HEARTBEAT_MS": "400",
    "DOCQ_RETRY_BASE_MS": "100",
    "DOCQ_RETRY_MAX_MS": "1000",
    "DOCQ_LOG_LEVEL": "info",
}


def doc_of(i):
    return ("perm_%d" if i % REJECTED_EVERY == 0 else "doc_%d") % i


class Chaos(unittest.TestCase):
    def setUp(self):
        self.stack = Stack()
        self.addCleanup(self.stack.stop)

    def submit_all(self):
        stub = self.stack.stub()
        ids = {}
        for start in range(0, TASKS, 250):
            futures = {i: stub.SubmitDoc.future(pb.SubmitDocRequest(doc_id=doc_of(i)), timeout=30)
                       for i in range(start, min(start + 250, TASKS))}
            for i, f in futures.items():
                ids[f.result().task_id] = doc_of(i)
        return ids

    def read_tasks(self, task_ids):
        """GetStatus of every id, many calls in flight at once."""
        stub, out = self.stack.stub(), {}
        task_ids = list(task_ids)
        for start in range(0, len(task_ids), 250):
            chunk = task_ids[start:start + 250]
            futures = [stub.GetStatus.future(pb.GetStatusRequest(task_id=t), timeout=30) for t in chunk]
            for tid, f in zip(chunk, futures):
                out[tid] = f.result()
        return out

    def killer(self, stop, kills):
        """Every KILL_EVERY_S, SIGKILL the next live worker in turn and start a new one."""
        s, victim = self.stack, 0
        live = list(s.workers)
        while not stop.wait(KILL_EVERY_S):
            w = live[victim]
            w.signal(signal.SIGKILL)
            w.wait()
            live[victim] = s.start_worker(**WORKER_ENV)
            victim = (victim + 1) % len(live)
            kills.append(time.monotonic())

    def outcome_lines(self):
        """How many times each task's outcome was logged as written, over every worker's log."""
        counts = {}
        for p in self.stack.procs:
            if not p.name.startswith("worker-"):
                continue
            for line in p.text().splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("msg", "").startswith(("task SUCCESS", "task FAILURE")):
                    counts[rec["task_id"]] = counts.get(rec["task_id"], 0) + 1
        return counts

    @labels("chaos")
    def test_2000_tasks_survive_a_worker_killed_every_2_s_and_a_flaky_ai_each_written_once(self):
        """2000 tasks survive a worker SIGKILLed every 2 s and a flaky AI, each outcome written
        once"""
        s = self.stack.start_redis().start_ai(
            "--latency-ms", "100", "--latency-jitter-ms", "400", "--fail-status", "503",
            "--fail-percent", "5", "--reject-prefix", "perm_", "--reject-status", "422")
        s.start_server()
        ids = self.submit_all()
        self.assertEqual(len(ids), TASKS)
        for _ in range(3):
            s.start_worker(**WORKER_ENV)

        stop, kills = threading.Event(), []
        chaos = threading.Thread(target=self.killer, args=(stop, kills))
        chaos.start()
        first_seen = {}
        try:
            deadline = time.monotonic() + DEADLINE_S
            while len(first_seen) < TASKS and time.monotonic() < deadline:
                for tid, t in self.read_tasks(set(ids) - set(first_seen)).items():
                    if t.state in (pb.Task.SUCCESS, pb.Task.FAILURE):
                        first_seen[tid] = t
                time.sleep(0.5)
        finally:
            stop.set()
            chaos.join()
        self.assertEqual(len(first_seen), TASKS, "%d tasks unfinished after %d s\n%s"
                         % (TASKS - len(first_seen), DEADLINE_S, s.logs()))
        self.assertGreaterEqual(len(kills), 5, "the chaos did not get going")

        # Outcomes: SUCCESS with the AI's answer, FAILURE only for rejected documents.
        for tid, t in first_seen.items():
            doc = ids[tid]
            if doc.startswith("perm_"):
                self.assertEqual(t.state, pb.Task.FAILURE, (tid, doc, t.error))
                self.assertIn("HTTP 422", t.error)
            else:
                self.assertEqual(t.state, pb.Task.SUCCESS, (tid, doc, t.error))
                self.assertEqual(json.loads(t.result), {"doc_id": doc, "summary": "processed " + doc})
        taken_over = sum(1 for t in first_seen.values() if t.deliveries > 1)
        self.assertGreater(taken_over, 0, "no task was ever interrupted by a kill")

        # Written once: no later write changed a finished task, and no two workers logged one.
        time.sleep(2.5)  # Past the visibility timeout, for any late writer to show itself.
        for tid, t in self.read_tasks(ids).items():
            self.assertEqual(t, first_seen[tid], tid)
        self.assertEqual([tid for tid, n in self.outcome_lines().items() if n > 1], [])

        # Stream hygiene: nothing pending, nothing left in the queues, nothing dead-lettered.
        self.assertEqual(s.pending_count(), 0)
        self.assertEqual(s.queued_count(), 0)
        self.assertEqual(s.queued_count("dead"), 0)
        stats = s.ai_stats()
        self.assertGreater(stats["failed"], TASKS // REJECTED_EVERY)  # Some 503s were injected and retried.
        print("chaos: %d kills, %d tasks taken over, %d AI requests (%d failed)"
              % (len(kills), taken_over, stats["requests"], stats["failed"]))


if __name__ == "__main__":
    unittest.main()
