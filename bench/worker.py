#!/usr/bin/python3
"""Worker benchmark: end-to-end tasks/s and worker memory, on a private stack.

Each scenario starts its own redis-server, docq-fake-ai (with the given latency), docq-server
and N docq-workers at DOCQ_WORKER_CONCURRENCY 256 (the same Stack the integration tests use),
then submits TASKS documents through gRPC as fast as one client process can, with up to 512
calls in flight, while the workers run. It reports:

  e2e tasks/s    TASKS / (time from the first SubmitDoc to the last outcome written);
  steady tasks/s AI answers per second between 20% and 80% of the run (no ramp-up or tail);
  submit/s       how fast the client got its SubmitDoc answers (the offered load);
  RSS            each worker's resident memory, the most seen while calls were in flight;
                 with the 2 s AI that is with 256 calls in flight per worker.

The -drain scenarios submit everything first and only then start the workers: their e2e is the
rate at which the workers empty a full queue, without the client's submission rate in the way.

A run is done when every stream is empty (an entry leaves only with its outcome) and the AI has
answered TASKS times; 100 tasks picked at random are then checked to be SUCCESS.

Usage: ./scripts/build && /usr/bin/python3 bench/worker.py [--quick] [scenario...]
Scenarios: 0ms-1w 0ms-4w 0ms-1w-drain 0ms-4w-drain 2s-1w 2s-4w (default: all). Timings are not asserted anywhere: they
depend on the machine (numbers in README.md came from a shared 2-core VM).
"""
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))

from stack import Stack, pb, wait_for  # noqa: E402

CONCURRENCY = 256
SCENARIOS = {  # name: (AI latency ms, workers, tasks, tasks with --quick, drain)
    "0ms-1w": (0, 1, 20000, 4000, False),
    "0ms-4w": (0, 4, 20000, 4000, False),
    "0ms-1w-drain": (0, 1, 20000, 4000, True),
    "0ms-4w-drain": (0, 4, 20000, 4000, True),
    "2s-1w": (2000, 1, 4000, 1500, False),
    "2s-4w": (2000, 4, 12000, 4000, False),
}


def rss_kib(pid):
    """VmRSS of a process in KiB, or 0 once it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    """Every 100 ms: the AI's answered count and in-flight count, and each worker's RSS."""

    def __init__(self, stack):
        super().__init__(daemon=True)
        self.stack, self.samples, self.rss_busy = stack, [], {}
        self.stop = threading.Event()

    def run(self):
        full = CONCURRENCY * len(self.stack.workers)
        while not self.stop.wait(0.1):
            try:
                st = self.stack.ai_stats()
            except OSError:
                continue
            self.samples.append((time.monotonic(), st["ok"]))
            # "Busy": at least 90% of every worker's slots are in AI calls.
            if st["in_flight"] >= 0.9 * full:
                for w in self.stack.workers:
                    self.rss_busy[w.p.pid] = max(self.rss_busy.get(w.p.pid, 0), rss_kib(w.p.pid))

    def steady_rate(self, total):
        """Answers per second between 20% and 80% of total."""
        lo = next((s for s in self.samples if s[1] >= 0.2 * total), None)
        hi = next((s for s in self.samples if s[1] >= 0.8 * total), None)
        if not lo or not hi or hi[0] <= lo[0]:
            return float("nan")
        return (hi[1] - lo[1]) / (hi[0] - lo[0])


def submit_all(stack, n):
    """Submit n documents with up to 512 calls in flight; returns (task ids, seconds)."""
    stub, ids, inflight = stack.stub(), [], []
    sem = threading.Semaphore(512)
    t0 = time.monotonic()
    for i in range(n):
        sem.acquire()
        f = stub.SubmitDoc.future(pb.SubmitDocRequest(doc_id="bench_%d" % i), timeout=60)
        f.add_done_callback(lambda _f: sem.release())
        inflight.append(f)
    for f in inflight:
        ids.append(f.result().task_id)
    return ids, time.monotonic() - t0


def start_workers(stack, n):
    for _ in range(n):
        stack.start_worker(DOCQ_WORKER_CONCURRENCY=str(CONCURRENCY), DOCQ_LOG_LEVEL="warn")


def run(name, ai_ms, workers, tasks, drain):
    stack = Stack(shards=16)
    try:
        stack.start_redis().start_ai("--latency-ms", str(ai_ms))
        stack.start_server(DOCQ_THREADS="2", DOCQ_LOG_LEVEL="info")
        if drain:
            ids, submit_s = submit_all(stack, tasks)
            idle = {}
            t0 = time.monotonic()
            start_workers(stack, workers)
        else:
            start_workers(stack, workers)
            time.sleep(1.0)  # Let the workers connect and create their groups.
            idle = {w.p.pid: rss_kib(w.p.pid) for w in stack.workers}
        sampler = Sampler(stack)
        sampler.start()
        if not drain:
            t0 = time.monotonic()
            ids, submit_s = submit_all(stack, tasks)
        wait_for(lambda: stack.ai_stats()["ok"] >= tasks and stack.queued_count() == 0,
                 timeout=600, interval=0.02, what="every task to finish")
        elapsed = time.monotonic() - t0
        sampler.stop.set()
        sampler.join()
        for tid in random.sample(ids, min(100, len(ids))):
            t = stack.task(tid)
            if t.state != pb.Task.SUCCESS:
                raise AssertionError("%s ended %s: %s" % (tid, t.state, t.error))
        stats = stack.ai_stats()
        busy = [sampler.rss_busy.get(w.p.pid) for w in stack.workers]
        print("%-12s AI %4d ms  %d worker(s) x %d  %6d tasks  e2e %7.1f tasks/s  steady %7.1f tasks/s  "
              "submit %7.1f/s  max in flight %5d  duplicates %d  RSS idle %s KiB, busy %s KiB"
              % (name, ai_ms, workers, CONCURRENCY, tasks, tasks / elapsed, sampler.steady_rate(tasks),
                 tasks / submit_s, stats["max_in_flight"], stats["duplicate_tasks"],
                 "/".join(str(v) for v in idle.values()) or "-",
                 "/".join(str(v) if v else "-" for v in busy)), flush=True)
    finally:
        stack.stop()


def main(argv):
    quick = "--quick" in argv
    names = [a for a in argv if not a.startswith("--")] or list(SCENARIOS)
    for name in names:
        ai_ms, workers, tasks, quick_tasks, drain = SCENARIOS[name]
        run(name, ai_ms, workers, quick_tasks if quick else tasks, drain)


if __name__ == "__main__":
    main(sys.argv[1:])
