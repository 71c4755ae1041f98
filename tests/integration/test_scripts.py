"""Each Redis script of common/lua/, run directly on a throwaway redis-server:
EVAL of build/gen/lua/<name>.lua, exactly the text the binaries load (its
lib/ pieces in front). Each test names the script it exercises; the KEYS and
ARGV are those the script's opening comment lists."""
import os
import socket
import subprocess
import time
import unittest

from stack import BIN_DIR, Stack

LUA_DIR = os.path.join(BIN_DIR, "..", "gen", "lua")
GROUP = "workers"
STREAM = "docq:{s0}:tasks"
DEAD = "docq:{s0}:dead"
EVENTS = "docq:{s0}:events"
CANCELS = "docq:{s0}:cancels"
INDEX = "docq:{s0}:owned:caller"
REQ = "docq:{s0}:req:caller:"
TTL = 3600


class RedisError(Exception):
    pass


class Resp:
    """A bare RESP2 connection: commands in, replies out as Python values
    (str, int, None, lists); an error reply raises RedisError."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.f = self.sock.makefile("rb")

    def close(self):
        self.f.close()
        self.sock.close()

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def reply(self):
        line = self.f.readline()[:-2]
        kind, rest = line[:1], line[1:].decode()
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RedisError(rest)
        if kind == b":":
            return int(rest)
        if kind == b"$":
            return None if int(rest) < 0 else self.f.read(int(rest) + 2)[:-2].decode()
        if kind == b"*":
            return None if int(rest) < 0 else [self.reply() for _ in range(int(rest))]
        raise RedisError("unexpected reply line %r" % line)

    def __call__(self, *args):
        self.send(*args)
        return self.reply()


def record(task_id):
    return "docq:{s0}:task:" + task_id


def task_id(n):
    return "s0-%032x" % n


def script(name):
    with open(os.path.join(LUA_DIR, name + ".lua")) as f:
        return f.read()


class Scripts(unittest.TestCase):
    def setUp(self):
        self.stack = Stack()
        self.addCleanup(self.stack.stop)
        self.stack.start_redis()
        self.r = Resp(self.stack.redis_port)
        self.addCleanup(self.r.close)
        self.r("XGROUP", "CREATE", STREAM, GROUP, "0", "MKSTREAM")

    # -- the scripts, with the KEYS and ARGV their comments name ------------
    def eval(self, name, keys, args):
        return self.r("EVAL", script(name), len(keys), *keys, *args)

    def submit(self, tid, doc="doc", limit=0, window_ms=60000, owner=""):
        return self.eval("submit", [record(tid), STREAM, "docq:{s0}:rate:caller", INDEX],
                         [tid, doc, limit, window_ms, owner])

    def list(self, page_size=10, after="", after_id="", owner="", states=(), limit=0, member="m",
             max_bytes=1 << 20, max_scan=1000):
        return self.eval("list", ["docq:{s0}:rate-read:caller", INDEX, STREAM],
                         [limit, 60000, member, GROUP, "docq:{s0}:task:", page_size, after, after_id, owner,
                          max_bytes, max_scan] + list(states))

    def delete(self, tid, owner="", limit=0, member="m"):
        return self.eval("delete", ["docq:{s0}:rate-read:caller", record(tid), INDEX, "docq:{s0}:deleted:" + tid],
                         [limit, 60000, member, tid, owner, "docq:{s0}:req:caller:"])
    def submit_with(self, tid, doc="doc", limit=0, request=None, timeout_ms=0, request_ms=86400000):
        """submit.lua with a request key (request: its last part) and a queue timeout."""
        keys = [record(tid), STREAM, "docq:{s0}:rate:caller", INDEX] + ([REQ + request] if request else [])
        return self.eval("submit", keys, [tid, doc, limit, 60000, "", timeout_ms, request_ms, TTL])

    def start(self, tid, consumer, max_deliveries=10):
        return self.eval("start", [record(tid)], [max_deliveries, consumer, TTL])

    def dead_letter(self, tid, entry, consumer):
        return self.eval("dead_letter", [record(tid), STREAM, DEAD], [GROUP, entry, tid, consumer, TTL, 100])

    def finish(self, tid, entry, attempt, value):
        return self.eval("finish", [record(tid), STREAM],
                         [GROUP, entry, attempt, "SUCCESS", "result", value, TTL])

    def ratelimit(self, key, limit, window_ms, member):
        return self.eval("ratelimit", [key], [limit, window_ms, member])

    # -- helpers --------------------------------------------------------------
    def read_entries(self, consumer, count=1):
        rep = self.r("XREADGROUP", "GROUP", GROUP, consumer, "COUNT", count, "STREAMS", STREAM, ">")
        return [e[0] for e in rep[0][1]]

    def field(self, tid, name):
        return self.r("HGET", record(tid), name)

    def now_ms(self):
        t = self.r("TIME")
        return int(t[0]) * 1000 + int(t[1]) // 1000

    def queued_task(self, n=1, consumer="c1"):
        """Submit task n and read its entry as consumer: (task id, entry id)."""
        tid = task_id(n)
        self.assertEqual(self.submit(tid)[0], 1)
        return tid, self.read_entries(consumer)[0]

    # -- submit.lua -------------------------------------------------------------
    def test_submit_a_second_submit_with_the_same_id_changes_nothing_and_is_counted_once(self):
        """submit.lua: a second submit with the same id changes nothing and is counted once"""
        tid = task_id(1)
        first = self.submit(tid, limit=5)
        before = self.r("HGETALL", record(tid))
        second = self.submit(tid, limit=5)
        self.assertEqual(first[:3], [1, first[1], 1])
        self.assertEqual(second[:3], [1, first[1], 1], "the repeat returns the stored created_at and counts nothing")
        self.assertEqual(self.r("HGETALL", record(tid)), before)
        self.assertEqual((self.field(tid, "state"), self.field(tid, "version"), self.field(tid, "seq")),
                         ("PENDING", "1", "1"))
        self.assertEqual(self.r("XLEN", STREAM), 1)
        self.assertEqual(self.r("ZCARD", "docq:{s0}:rate:caller"), 1)

    def test_submit_refuses_at_the_limit_stores_nothing_and_names_the_exact_wait(self):
        """submit.lua: a submit at the limit is refused, stores nothing and names the exact wait"""
        window = 60000
        self.assertEqual(self.submit(task_id(1), limit=2, window_ms=window)[0], 1)
        self.assertEqual(self.submit(task_id(2), limit=2, window_ms=window)[0], 1)
        oldest = int(self.r("ZSCORE", "docq:{s0}:rate:caller", task_id(1)))
        ok, now, n, wait = self.submit(task_id(3), limit=2, window_ms=window)[:4]
        self.assertEqual((ok, n), (0, 2))
        self.assertEqual(wait, oldest + window - now)
        self.assertEqual(self.r("EXISTS", record(task_id(3))), 0)
        self.assertEqual(self.r("XLEN", STREAM), 2)
        self.assertEqual(self.r("ZCARD", "docq:{s0}:rate:caller"), 2)

    def test_submit_lua_is_exactly_what_the_binaries_run(self):
        """submit.lua in build/gen/lua is exactly the script the binaries run"""
        out = subprocess.run([os.path.join(BIN_DIR, "docq-print-submit-script")], capture_output=True,
                             text=True, timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, script("submit"))

    def test_submit_indexes_each_new_task_above_the_newest_and_drops_the_oldest_gone_ones(self):
        """submit.lua indexes each new task once, scored above the index's newest, and drops the two oldest
        entries whose records are gone"""
        self.submit(task_id(1))
        self.submit(task_id(1))
        self.assertEqual(self.r("ZRANGE", INDEX, 0, -1), [task_id(1)], "a repeat is not indexed twice")
        future = (self.now_ms() + 3600 * 1000) * 1000
        self.r("ZADD", INDEX, future, task_id(1))
        self.submit(task_id(2))
        self.assertEqual(int(self.r("ZSCORE", INDEX, task_id(2))), future + 1, "above the newest, whatever the clock")
        for n in (3, 4, 5):
            self.submit(task_id(n))
        before = self.r("ZRANGE", INDEX, 0, -1)
        self.assertEqual(before, [task_id(n) for n in (1, 2, 3, 4, 5)])
        self.r("DEL", record(task_id(1)), record(task_id(2)), record(task_id(3)))
        self.submit(task_id(6))
        self.assertEqual(self.r("ZRANGE", INDEX, 0, -1), [task_id(n) for n in (3, 4, 5, 6)],
                         "the two oldest entries whose records are gone are dropped, no more")

    # -- list.lua -----------------------------------------------------------------
    def test_list_pages_newest_first_through_ties_and_drops_the_entries_of_records_that_are_gone(self):
        """list.lua pages newest first, through ties in score, and drops the entries of records that are gone"""
        for n in range(1, 6):
            self.submit(task_id(n))
        self.r("ZADD", INDEX, 1000, task_id(1), 2000, task_id(2), 2000, task_id(3), 2000, task_id(4),
               3000, task_id(5))
        self.r("DEL", record(task_id(4)))
        rate, tasks, nxt = self.list(page_size=2)
        self.assertEqual(rate[0], 1)
        self.assertEqual(tasks[0::3], [task_id(5), task_id(3)], "task 4's record is gone")
        self.assertEqual(dict(zip(tasks[1][::2], tasks[1][1::2]))["doc_id"], "doc")
        self.assertEqual(nxt, ["2000", task_id(3)])
        self.assertIsNone(self.r("ZSCORE", INDEX, task_id(4)))
        _, tasks, nxt = self.list(page_size=2, after="2000", after_id=task_id(3))
        self.assertEqual((tasks[0::3], nxt), ([task_id(2), task_id(1)], []), "the last page has no next entry")
        _, tasks, nxt = self.list(page_size=5, after="2000", after_id=task_id(9))
        self.assertEqual(tasks[0::3], [task_id(3), task_id(2), task_id(1)], "a token's entry need not exist")
        self.read_entries("c1")
        _, tasks, _ = self.list()
        self.assertEqual(tasks[2::3], [4, 2, 1, 1], "PENDING tasks have their queue positions")

    def test_list_filters_states_and_owner_and_stops_at_its_scan_and_byte_bounds(self):
        """list.lua keeps only the states and owner asked for and stops at its scan and byte bounds with the
        entry to go on from"""
        for n in range(1, 7):
            self.submit(task_id(n), owner="acme" if n != 6 else "beta")
        self.r("HSET", record(task_id(2)), "state", "SUCCESS", "result", "x" * 1000)
        self.r("HSET", record(task_id(4)), "state", "CANCELLED")
        _, tasks, nxt = self.list(states=["SUCCESS", "CANCELLED"])
        self.assertEqual((tasks[0::3], nxt), ([task_id(4), task_id(2)], []))
        _, tasks, _ = self.list(owner="acme", states=["PENDING"])
        self.assertEqual(tasks[0::3], [task_id(5), task_id(3), task_id(1)])
        _, tasks, nxt = self.list(states=["SUCCESS"], max_scan=3)
        score4 = self.r("ZSCORE", INDEX, task_id(4))
        self.assertEqual((tasks, nxt), ([], [score4, task_id(4)]), "three entries looked at, none matched")
        _, tasks, nxt = self.list(max_bytes=500)
        self.assertEqual(len(tasks) // 3, 5, "up to and including task 2, which passes the byte bound")
        self.assertEqual(nxt[1], task_id(2))
        rate, = self.list(limit=1, member="m1")[:1]
        self.assertEqual(rate[0], 1)
        refused = self.list(limit=1, member="m2")
        self.assertEqual((len(refused), refused[0][0]), (1, 0), "a refused list reads nothing")

    # -- delete.lua ---------------------------------------------------------------
    def test_delete_removes_only_an_ended_task_of_the_caller_with_its_index_entry_and_request_id_key(self):
        """delete.lua removes only an ended task of the caller, with its index entry and its request_id key, and
        answers the same call sent again as done"""
        for n in (1, 2, 3):
            self.submit(task_id(n), owner="acme")
        self.assertEqual(self.delete(task_id(1), owner="acme")[1:], [-1, "PENDING"])
        self.r("HSET", record(task_id(1)), "state", "SUCCESS", "request_id", "r1")
        self.r("SET", "docq:{s0}:req:caller:r1", task_id(1))
        self.assertEqual(self.delete(task_id(1), owner="beta")[1:], [0, ""], "another owner's")
        self.assertEqual(self.delete(task_id(9))[1:], [0, ""], "no such record")
        self.assertEqual(self.delete(task_id(1), owner="acme")[1:], [1, ""])
        self.assertEqual(self.r("EXISTS", record(task_id(1)), "docq:{s0}:req:caller:r1"), 0)
        self.assertIsNone(self.r("ZSCORE", INDEX, task_id(1)))
        self.assertEqual(self.delete(task_id(1), owner="acme", member="m")[1:], [1, ""],
                         "sent again by the same call: its receipt")
        self.assertEqual(self.r("GET", "docq:{s0}:deleted:" + task_id(1)), "m")
        self.assertEqual(self.delete(task_id(1), owner="acme", member="other")[1:], [0, ""], "another call: gone")
        # A caller that is an address: the task must be in its index.
        self.r("HSET", record(task_id(2)), "state", "CANCELLED", "request_id", "r2")
        self.r("SET", "docq:{s0}:req:caller:r2", task_id(3))
        self.r("ZREM", INDEX, task_id(3))
        self.r("HSET", record(task_id(3)), "state", "FAILURE")
        self.assertEqual(self.delete(task_id(3))[1:], [0, ""], "not in the caller's index")
        self.assertEqual(self.delete(task_id(2))[1:], [1, ""])
        self.assertEqual(self.r("GET", "docq:{s0}:req:caller:r2"), task_id(3), "a request_id key of another task stays")
        # The request key named whole (request_key, a hash, as SubmitDoc writes it), only the caller's.
        self.r("HSET", record(task_id(6)), "state", "SUCCESS", "owner", "acme",
               "request_key", "docq:{s0}:req:caller:7231")
        self.r("HSET", "docq:{s0}:req:caller:7231", "task_id", task_id(6), "doc_id", "doc")
        self.assertEqual(self.delete(task_id(6), owner="acme")[1:], [1, ""])
        self.assertEqual(self.r("EXISTS", "docq:{s0}:req:caller:7231"), 0)
        self.r("HSET", record(task_id(7)), "state", "SUCCESS", "owner", "acme",
               "request_key", "docq:{s0}:req:callerx:7231")
        self.r("HSET", "docq:{s0}:req:callerx:7231", "task_id", task_id(7))
        self.assertEqual(self.delete(task_id(7), owner="acme")[1:], [1, ""])
        self.assertEqual(self.r("EXISTS", "docq:{s0}:req:callerx:7231"), 1, "another caller's key stays")
        self.r("HSET", record(task_id(4)), "state", "SUCCESS", "owner", "acme")
        self.assertEqual(len(self.delete(task_id(4), owner="acme", limit=1, member="a")), 3)
        self.r("HSET", record(task_id(5)), "state", "SUCCESS", "owner", "acme")
        refused = self.delete(task_id(5), owner="acme", limit=1, member="b")
        self.assertEqual((len(refused), refused[0][0]), (1, 0))
        self.assertEqual(self.r("EXISTS", record(task_id(5))), 1, "a refused delete deletes nothing")
    def test_submit_a_known_request_id_answers_its_task_and_is_not_counted_again(self):
        """submit.lua: a known request id answers its task and state, stores nothing and is not
        counted by the limit again, even at the limit"""
        first = self.submit_with(task_id(1), limit=1, request="72")
        self.assertEqual(first[4:], [0, task_id(1), "PENDING"])
        again = self.submit_with(task_id(2), limit=1, request="72")
        self.assertEqual(again[0], 1, "admitted although the limit of 1 is used up")
        self.assertEqual(again[1:3], [first[1], 1], "the task's created_at, one request counted")
        self.assertEqual(again[4:], [1, task_id(1), "PENDING"])
        self.assertEqual(self.r("EXISTS", record(task_id(2))), 0)
        self.assertEqual((self.r("XLEN", STREAM), self.r("ZCARD", "docq:{s0}:rate:caller")), (1, 1))
        self.assertEqual(self.submit_with(task_id(3), limit=1, request="73")[0], 0, "a new request is refused")
        self.r("HSET", record(task_id(1)), "state", "SUCCESS")
        self.assertEqual(self.submit_with(task_id(4), limit=1, request="72")[4:], [1, task_id(1), "SUCCESS"],
                         "the state as it is now")

    def test_submit_a_known_request_id_with_another_doc_id_writes_nothing(self):
        """submit.lua: a known request id with another doc_id writes nothing and names the task"""
        self.submit_with(task_id(1), doc="a", request="72")
        before = self.r("HGETALL", REQ + "72")
        self.assertEqual(self.submit_with(task_id(2), doc="b", request="72")[4:], [2, task_id(1), ""])
        self.assertEqual(self.r("HGETALL", REQ + "72"), before)
        self.assertEqual((self.r("EXISTS", record(task_id(2))), self.r("XLEN", STREAM)), (0, 1))

    def test_submit_stores_the_deadline_and_the_request_key_without_expiry(self):
        """submit.lua stores the queue deadline and a request key that does not expire while the
        task is unfinished"""
        tid = task_id(1)
        reply = self.submit_with(tid, request="72", timeout_ms=30000, request_ms=5000)
        created = reply[1]
        self.assertEqual(int(self.field(tid, "deadline")), created + 30000)
        self.assertEqual(self.field(tid, "request_key"), REQ + "72")
        req = dict(zip(*[iter(self.r("HGETALL", REQ + "72"))] * 2))
        self.assertEqual(req, {"task_id": tid, "doc_id": "doc", "until": str(created + 5000)})
        self.assertEqual(self.r("TTL", REQ + "72"), -1)
        self.assertIsNone(self.field(task_id(2), "deadline"))
        self.submit_with(task_id(2))
        self.assertIsNone(self.field(task_id(2), "deadline"), "no timeout: no deadline")
        self.assertIsNone(self.field(task_id(2), "request_key"))

    def test_finish_makes_the_request_key_outlive_the_record(self):
        """finish.lua makes the request key expire no sooner than the record, nor than its own
        DOCQ_REQUEST_ID_TTL_S"""
        for n, request_ms in ((1, 1000), (2, 3 * TTL * 1000)):
            tid = task_id(n)
            self.submit_with(tid, request=str(n), request_ms=request_ms)
            entry = self.read_entries("c1")[0]
            self.start(tid, "c1")
            self.assertEqual(self.finish(tid, entry, 1, "ok"), 1)
            record_end, req_end = self.r("PEXPIRETIME", record(tid)), self.r("PEXPIRETIME", REQ + str(n))
            self.assertGreater(record_end, 0)
            self.assertGreaterEqual(req_end, record_end)
            if request_ms > TTL * 1000:
                self.assertGreater(req_end, record_end + TTL * 1000, "its own, longer life is kept")

    def test_start_ends_a_pending_task_past_its_deadline_instead_of_starting_it(self):
        """start.lua ends a PENDING task past its queue deadline FAILURE instead of starting it,
        published, with its record's expiry"""
        tid = task_id(1)
        self.submit_with(tid, timeout_ms=1, request="9")
        self.read_entries("c1")
        time.sleep(0.02)
        sub = Resp(self.stack.redis_port)
        self.addCleanup(sub.close)
        sub("SUBSCRIBE", EVENTS)
        self.assertEqual(self.start(tid, "c1"), [-4])
        self.assertEqual((self.field(tid, "state"), self.field(tid, "error"), self.field(tid, "version"),
                          self.field(tid, "attempts")), ("FAILURE", "expired in queue after 0.001 s", "2", "0"))
        self.assertIsNotNone(self.field(tid, "finished_at"))
        self.assertGreater(self.r("TTL", record(tid)), 0)
        self.assertGreaterEqual(self.r("PEXPIRETIME", REQ + "9"), self.r("PEXPIRETIME", record(tid)))
        self.assertIn("expired in queue", sub.reply()[2], "the change was published")
        self.assertEqual(self.start(tid, "c1"), [-2], "sent again: terminal, only to be acknowledged")
        other = task_id(2)
        self.submit_with(other, timeout_ms=3600000)
        self.read_entries("c1")
        self.assertEqual(self.start(other, "c1")[0], 1, "a deadline not yet passed starts as usual")

    def test_read_ends_a_pending_task_past_its_deadline_only_when_given_the_ttl(self):
        """read.lua and status.lua end a PENDING task past its queue deadline when given the
        result TTL, and only read without it"""
        tid = task_id(1)
        self.submit_with(tid, timeout_ms=2000)
        time.sleep(0.01)
        fields, _ = self.eval("read", [record(tid), STREAM], [GROUP, TTL])
        self.assertEqual(dict(zip(fields[::2], fields[1::2]))["state"], "PENDING", "not yet past it")
        for field in ("created_at", "deadline"):
            self.r("HINCRBY", record(tid), field, -5000)
        fields, pos = self.eval("read", [record(tid), STREAM], [GROUP])
        self.assertEqual((dict(zip(fields[::2], fields[1::2]))["state"], pos), ("PENDING", 1), "reads only")
        fields, pos = self.eval("read", [record(tid), STREAM], [GROUP, TTL])
        h = dict(zip(fields[::2], fields[1::2]))
        self.assertEqual((h["state"], h["error"], h["version"], pos), ("FAILURE", "expired in queue after 2 s", "2", 0))
        self.assertGreater(self.r("TTL", record(tid)), 0)
        other = task_id(2)
        self.submit_with(other, timeout_ms=1000)
        self.r("HINCRBY", record(other), "deadline", -5000)
        keys = ["docq:{s0}:rate-read:caller", record(other), STREAM]
        rate, (fields, pos) = self.eval("status", keys, [0, 60000, "m1", GROUP, TTL])
        self.assertEqual(dict(zip(fields[::2], fields[1::2]))["state"], "FAILURE")

    def test_submit_a_known_request_id_of_a_task_past_its_deadline_answers_failure(self):
        """submit.lua: a known request id whose task is PENDING past its deadline ends it and
        answers FAILURE"""
        self.submit_with(task_id(1), request="72", timeout_ms=1)
        time.sleep(0.01)
        self.assertEqual(self.submit_with(task_id(2), request="72")[4:], [1, task_id(1), "FAILURE"])
        self.assertEqual(self.field(task_id(1), "error"), "expired in queue after 0.001 s")

    # -- ratelimit.lua ----------------------------------------------------------
    def test_ratelimit_admits_up_to_its_exact_edge_and_refuses_the_next_with_the_exact_wait(self):
        """ratelimit.lua admits up to its exact edge and refuses the next request with the exact
        wait"""
        key, window, limit = "docq:{s0}:rate:edge", 60000, 3
        t = self.now_ms()
        # A member exactly one window old when the check runs, or older: out.
        self.r("ZADD", key, t - window, "old", t - 1000, "a", t - 500, "b")
        ok, now, n, wait = self.ratelimit(key, limit, window, "c")
        self.assertEqual((ok, n), (1, 3), "the old member left the window: the third request fits")
        self.assertEqual(wait, (t - 1000) + window - now)
        self.assertIsNone(self.r("ZSCORE", key, "old"))
        ok, now, n, wait = self.ratelimit(key, limit, window, "d")
        self.assertEqual((ok, n), (0, 3), "at the limit: refused")
        self.assertEqual(wait, (t - 1000) + window - now, "until the member whose leaving makes room leaves")
        self.assertIsNone(self.r("ZSCORE", key, "d"), "a refused request is not counted")
        ok, _, n, wait = self.ratelimit(key, 0, window, "e")
        self.assertEqual((ok, n, wait), (1, 0, 0), "limit 0: no limit")

    # -- start.lua and dead_letter.lua -------------------------------------------
    def test_start_counts_deliveries_by_consumer_and_past_the_maximum_writes_nothing(self):
        """start.lua counts a delivery per new consumer and, past DOCQ_MAX_DELIVERIES, writes
        nothing"""
        tid, _ = self.queued_task()
        self.assertEqual(self.start(tid, "c1", max_deliveries=2), [1, 0, 1])
        self.assertEqual(self.start(tid, "c1", max_deliveries=2), [2, 0, 1], "the same consumer counts no delivery")
        self.assertEqual(self.start(tid, "c2", max_deliveries=2), [3, 0, 2])
        version = self.field(tid, "version")
        self.assertEqual(self.start(tid, "c3", max_deliveries=2), [-3, 3])
        self.assertEqual((self.field(tid, "state"), self.field(tid, "consumer"), self.field(tid, "deliveries"),
                          self.field(tid, "version")), ("STARTED", "c2", "2", version))
        self.assertEqual(self.start(task_id(99), "c1"), [-1])

    def test_dead_letter_moves_the_task_fails_it_acks_its_entry_publishes_it_and_a_resend_changes_nothing(self):
        """dead_letter.lua moves the task, fails it, acks its entry and publishes it, and sent again
        it changes nothing"""
        tid, entry = self.queued_task()
        self.start(tid, "c1", max_deliveries=1)
        self.assertEqual(self.start(tid, "c2", max_deliveries=1), [-3, 2])
        sub = Resp(self.stack.redis_port)
        self.addCleanup(sub.close)
        sub("SUBSCRIBE", EVENTS)
        self.assertEqual(self.dead_letter(tid, entry, "c2"), [2])
        message = sub.reply()
        self.assertEqual(message[:2], ["message", EVENTS])
        self.assertIn("5:state,7:FAILURE,", message[2])
        dead = self.r("XRANGE", DEAD, "-", "+")
        self.assertEqual(len(dead), 1)
        fields = dict(zip(dead[0][1][::2], dead[0][1][1::2]))
        self.assertEqual((fields["task_id"], fields["doc_id"], fields["entry_id"], fields["deliveries"]),
                         (tid, "doc", entry, "2"))
        self.assertEqual((self.field(tid, "state"), self.field(tid, "deliveries"), self.field(tid, "version")),
                         ("FAILURE", "2", "3"))
        self.assertEqual(self.field(tid, "error"), "moved to the dead-letter stream docq:{s0}:dead after 2 "
                         "deliveries: no worker finished it (each crashed, was killed or lost it)")
        self.assertTrue(0 < self.r("TTL", record(tid)) <= TTL)
        self.assertEqual((self.r("XLEN", STREAM), self.r("XPENDING", STREAM, GROUP)[0]), (0, 0))
        self.assertEqual(self.dead_letter(tid, entry, "c2"), [-2], "sent again: the task is terminal")
        self.assertEqual((self.r("XLEN", DEAD), self.field(tid, "version")), (1, "3"))
        self.assertEqual(self.dead_letter(task_id(99), entry, "c2"), [-1])

    # -- finish.lua, retry.lua, restart.lua ------------------------------------
    def test_finish_a_stale_finish_after_a_takeover_writes_nothing_and_the_new_owner_finishes(self):
        """finish.lua: a stale finish after a takeover writes nothing and the new owner's finish
        is written"""
        tid, entry = self.queued_task()
        self.assertEqual(self.start(tid, "c1")[0], 1)
        self.assertEqual(self.start(tid, "c2")[0], 2, "taken over: attempt 2 is the fencing token now")
        version = self.field(tid, "version")
        self.assertEqual(self.finish(tid, entry, 1, "stale"), 0)
        self.assertEqual((self.field(tid, "state"), self.field(tid, "result"), self.field(tid, "version")),
                         ("STARTED", None, version))
        self.assertEqual(self.r("XLEN", STREAM), 1, "the entry is left to its new owner")
        self.assertEqual(self.finish(tid, entry, 2, "fresh"), 1)
        self.assertEqual((self.field(tid, "state"), self.field(tid, "result"), self.field(tid, "finished_by")),
                         ("SUCCESS", "fresh", "2"))
        self.assertEqual(self.r("XLEN", STREAM), 0)
        version = self.field(tid, "version")
        self.assertEqual(self.finish(tid, entry, 1, "stale"), 0, "the stale worker comes back: refused")
        self.assertEqual(self.finish(tid, entry, 2, "fresh"), 1, "the owner's resend finds its own outcome")
        self.assertEqual((self.field(tid, "result"), self.field(tid, "version")), ("fresh", version))

    def test_retry_counts_one_failure_per_attempt_and_refuses_a_stale_attempt(self):
        """retry.lua counts one failure per attempt and refuses a stale attempt"""
        tid, _ = self.queued_task()
        self.start(tid, "c1")
        self.assertEqual(self.eval("retry", [record(tid)], [1, "boom"]), 1)
        version = self.field(tid, "version")
        self.assertEqual(self.eval("retry", [record(tid)], [1, "boom"]), 1)
        self.assertEqual((self.field(tid, "failures"), self.field(tid, "error"), self.field(tid, "version")),
                         ("1", "boom", version))
        self.assertEqual(self.eval("retry", [record(tid)], [2, "late"]), -1)

    def test_restart_begins_the_next_attempt_once_and_refuses_after_a_takeover(self):
        """restart.lua begins the next attempt once and refuses after a takeover"""
        tid, _ = self.queued_task()
        self.start(tid, "c1")
        self.assertEqual(self.eval("restart", [record(tid)], [1]), 2)
        self.assertEqual(self.eval("restart", [record(tid)], [1]), 2, "sent again: the same new attempt")
        self.assertEqual(self.field(tid, "attempts"), "2")
        self.assertEqual(self.start(tid, "c2")[0], 3)
        self.assertEqual(self.eval("restart", [record(tid)], [2]), -1)
        self.assertEqual(self.eval("restart", [record(tid)], [1]), -1)

    # -- heartbeat.lua, ack.lua, prune.lua -------------------------------------
    def test_heartbeat_resets_its_own_entries_and_reports_lost_ones(self):
        """heartbeat.lua resets the idle time of its own entries and reports a lost one"""
        for n in (1, 2):
            self.submit(task_id(n))
        mine, taken = self.read_entries("c1", 2)
        self.r("XCLAIM", STREAM, GROUP, "c2", 0, taken, "JUSTID")
        time.sleep(0.3)
        self.assertEqual(self.eval("heartbeat", [STREAM], [GROUP, "c1", mine, taken, "9-9"]), [0, 1, 1])
        pending = {p[0]: p for p in self.r("XPENDING", STREAM, GROUP, "-", "+", 10)}
        self.assertLess(pending[mine][2], 300, "its idle time was reset")
        self.assertEqual(pending[taken][1], "c2", "the lost entry was left to its new owner")

    def test_ack_acknowledges_and_deletes_an_entry_once(self):
        """ack.lua acknowledges and deletes an entry once"""
        _, entry = self.queued_task()
        self.assertEqual(self.eval("ack", [STREAM], [GROUP, entry]), 1)
        self.assertEqual(self.eval("ack", [STREAM], [GROUP, entry]), 0)
        self.assertEqual((self.r("XLEN", STREAM), self.r("XPENDING", STREAM, GROUP)[0]), (0, 0))

    def test_ack_a_redis_error_names_the_real_line_of_the_script(self):
        """ack.lua: a Redis error inside a script names the script's real line"""
        self.r("SET", "docq:{s0}:string", "x")
        with self.assertRaises(RedisError) as e:
            self.eval("ack", ["docq:{s0}:string"], [GROUP, "1-1"])
        lines = script("ack").splitlines()
        line = next(i + 1 for i, text in enumerate(lines) if "'XACK'" in text)
        self.assertGreater(line, 1)
        self.assertIn("@user_script:%d." % line, str(e.exception))

    def test_prune_deletes_idle_or_named_consumers_with_nothing_pending_and_never_one_with_pending_entries(self):
        """prune.lua deletes idle or named consumers with nothing pending, never one with pending
        entries"""
        self.queued_task(consumer="c1")
        for c in ("c2", "c3"):
            self.r("XGROUP", "CREATECONSUMER", STREAM, GROUP, c)
        self.assertEqual(self.eval("prune", [STREAM], [GROUP, "c3", 3600000]), 1)
        self.assertEqual(sorted(c[1] for c in self.r("XINFO", "CONSUMERS", STREAM, GROUP)), ["c1", "c2"])
        self.assertEqual(self.eval("prune", [STREAM], [GROUP, "", 0]), 1)
        self.assertEqual([c[1] for c in self.r("XINFO", "CONSUMERS", STREAM, GROUP)], ["c1"])
        self.assertEqual(self.eval("prune", ["docq:{s0}:none"], [GROUP, "", 0]), 0)

    # -- read.lua, group_read.lua, status.lua ----------------------------------
    def test_read_returns_the_record_and_its_queue_position(self):
        """read.lua returns the record and its queue position"""
        for n in (1, 2, 3):
            self.submit(task_id(n))
        self.read_entries("c1")
        fields, pos = self.eval("read", [record(task_id(3)), STREAM], [GROUP])
        h = dict(zip(fields[::2], fields[1::2]))
        self.assertEqual((h["state"], h["seq"], pos), ("PENDING", "3", 2))
        self.assertEqual(self.eval("read", [record(task_id(1)), STREAM], [GROUP])[1], 1, "read, not started: next")
        self.assertEqual(self.eval("read", [record(task_id(9)), STREAM], [GROUP]), [[], 0])

    def test_group_read_counts_the_entries_the_group_read_and_minus_1_when_unknown(self):
        """group_read.lua counts the entries the group read, and -1 when that is unknown"""
        self.assertEqual(self.eval("group_read", ["docq:{s0}:none"], [GROUP]), -1)
        self.assertEqual(self.eval("group_read", [STREAM], ["nogroup"]), -1)
        for n in (1, 2, 3):
            self.submit(task_id(n))
        self.read_entries("c1", 2)
        self.assertEqual(self.eval("group_read", [STREAM], [GROUP]), 2)

    def test_status_reads_only_what_the_read_limit_admits(self):
        """status.lua reads only what the read limit admits"""
        tid = task_id(1)
        self.submit(tid)
        keys = ["docq:{s0}:rate-read:caller", record(tid), STREAM]
        rate, (fields, pos) = self.eval("status", keys, [1, 60000, "m1", GROUP])
        self.assertEqual((rate[0], rate[2]), (1, 1))
        self.assertEqual((dict(zip(fields[::2], fields[1::2]))["state"], pos), ("PENDING", 1))
        refused = self.eval("status", keys, [1, 60000, "m2", GROUP])
        self.assertEqual(len(refused), 1, "a refused read reads nothing")
        self.assertEqual((refused[0][0], refused[0][2]), (0, 1))
        self.assertIsNone(self.r("ZSCORE", keys[0], "m2"), "and is not counted")

    # -- cancel.lua, cancels.lua ---------------------------------------------------
    def cancel(self, tid, owner="", limit=0, member="m1"):
        """cancel.lua as CancelTask runs it; returns (rate reply, fields dict or None, position)."""
        rep = self.eval("cancel", ["docq:{s0}:rate-read:caller", record(tid), STREAM, CANCELS],
                        [limit, 60000, member, GROUP, owner, TTL, 1000, "cancelled by the caller", tid])
        if len(rep) == 1:
            return rep[0], None, None
        fields, pos = rep[1]
        return rep[0], dict(zip(fields[::2], fields[1::2])), pos

    def test_cancel_ends_a_pending_task_once_publishes_it_and_leaves_its_entry_for_the_worker_to_ack(self):
        """cancel.lua ends a PENDING task as CANCELLED once and publishes it, and start.lua then only
        says it is terminal, so the worker acknowledges the entry"""
        tid, _ = self.queued_task()
        sub = Resp(self.stack.redis_port)
        self.addCleanup(sub.close)
        sub("SUBSCRIBE", EVENTS)
        _, h, pos = self.cancel(tid)
        self.assertEqual((h["state"], h["error"], h["version"], pos), ("CANCELLED", "cancelled by the caller", "2", 0))
        self.assertTrue(int(h["finished_at"]) >= int(h["created_at"]))
        self.assertTrue(0 < self.r("TTL", record(tid)) <= TTL)
        self.assertIn("5:state,9:CANCELLED,", sub.reply()[2])
        self.assertEqual(self.r("EXISTS", CANCELS), 0, "no worker runs a PENDING task")
        self.assertEqual(self.cancel(tid, member="m2")[1], h, "sent again: the same record, no new version")
        self.assertEqual(self.start(tid, "c1"), [-2])
        self.assertEqual(self.r("XLEN", STREAM), 1, "the entry waits for the worker's ack")
        self.assertEqual(self.field(tid, "version"), "2")

    def test_cancel_ends_a_started_task_announces_it_and_no_later_write_of_its_worker_changes_it(self):
        """cancel.lua ends a STARTED task as CANCELLED and announces it on the cancels stream, and
        retry.lua, restart.lua, finish.lua, dead_letter.lua and start.lua then write nothing"""
        tid, entry = self.queued_task()
        self.start(tid, "c1")
        self.assertEqual(self.eval("retry", [record(tid)], [1, "boom"]), 1)
        _, h, _ = self.cancel(tid)
        self.assertEqual((h["state"], h["error"], h["version"], h["attempts"]),
                         ("CANCELLED", "cancelled by the caller", "4", "1"))
        announced = self.r("XRANGE", CANCELS, "-", "+")
        self.assertEqual([e[1] for e in announced], [["task_id", tid]])
        self.assertEqual(self.cancel(tid, member="m2")[1], h)
        self.assertEqual(self.r("XLEN", CANCELS), 1, "sent again: announced once")
        self.assertEqual(self.eval("retry", [record(tid)], [1, "late"]), -1, "no longer STARTED: refused")
        self.assertEqual(self.eval("restart", [record(tid)], [1]), -1)
        self.assertEqual(self.dead_letter(tid, entry, "c2"), [-2])
        self.assertEqual(self.start(tid, "c2"), [-2])
        self.assertEqual(self.finish(tid, entry, 1, "too late"), 0)
        self.assertEqual((self.r("XLEN", STREAM), self.r("XPENDING", STREAM, GROUP)[0]), (0, 0),
                         "the refused finish acknowledges and deletes the entry")
        self.assertEqual((self.field(tid, "state"), self.field(tid, "result"), self.field(tid, "version")),
                         ("CANCELLED", None, "4"))
        self.assertEqual(self.r("XLEN", DEAD), 0)

    def test_cancel_after_the_finish_returns_the_task_as_it_is(self):
        """cancel.lua after the finish (or on an unknown id) returns the task as it is and announces
        nothing"""
        tid, entry = self.queued_task()
        self.start(tid, "c1")
        self.assertEqual(self.finish(tid, entry, 1, "answer"), 1)
        before = dict(zip(*[iter(self.r("HGETALL", record(tid)))] * 2))
        self.assertEqual(self.cancel(tid)[1], before)
        self.assertEqual(self.r("EXISTS", CANCELS), 0)
        self.assertEqual(self.cancel(task_id(99))[1], {})

    def test_cancel_leaves_another_owners_task_and_a_refused_call_untouched(self):
        """cancel.lua answers another owner's task as a missing one and a call the read limit refuses
        with nothing, and changes neither"""
        tid = task_id(1)
        self.submit(tid, owner="acme")
        self.assertEqual(self.cancel(tid, owner="beta", limit=5, member="m1")[1], {})
        self.assertEqual(self.cancel(tid, owner="beta", limit=5, member="m2")[1], {})
        rate, h, _ = self.cancel(tid, owner="acme", limit=2, member="m3")
        self.assertEqual((rate[0], rate[2], h), (0, 2, None), "two calls counted already: refused")
        self.assertIsNone(self.r("ZSCORE", "docq:{s0}:rate-read:caller", "m3"), "and not counted")
        self.assertEqual((self.field(tid, "state"), self.field(tid, "version")), ("PENDING", "1"))
        self.assertEqual(self.cancel(tid, owner="acme")[1]["state"], "CANCELLED")

    def test_cancels_reads_the_ids_announced_after_a_given_entry(self):
        """cancels.lua names where a stream ends and reads the task ids announced after a given
        entry"""
        self.assertEqual(self.eval("cancels", [CANCELS], ["", 10]), ["0-0"])
        self.assertEqual(self.eval("cancels", [CANCELS], ["0-0", 10]), ["0-0"])
        first = self.r("XADD", CANCELS, "*", "task_id", task_id(1))
        self.assertEqual(self.eval("cancels", [CANCELS], ["", 10]), [first])
        ids = [self.r("XADD", CANCELS, "*", "task_id", task_id(n)) for n in (2, 3, 4)]
        self.assertEqual(self.eval("cancels", [CANCELS], [first, 2]), [ids[1], task_id(2), task_id(3)])
        self.assertEqual(self.eval("cancels", [CANCELS], [ids[1], 10]), [ids[2], task_id(4)])
        self.assertEqual(self.eval("cancels", [CANCELS], [ids[2], 10]), [ids[2]])

    # -- every script through the C store, after SCRIPT FLUSH ---------------------
    def test_start_retry_restart_and_finish_lua_are_reloaded_by_the_store_after_script_flush(self):
        """start.lua, retry.lua, restart.lua and finish.lua: after SCRIPT FLUSH between calls the
        store reloads each and succeeds"""
        self.r("DEL", STREAM)  # docq-store-twice makes its own group.
        out = subprocess.run([os.path.join(BIN_DIR, "docq-store-twice"), str(self.stack.redis_port), "flush"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        self.assertEqual([ln for ln in lines if ln.startswith("flush ")],
                         ["flush %d reply=OK" % n for n in (1, 2, 3, 4)])
        calls = [ln for ln in lines if not ln.startswith("flush ")]
        self.assertEqual(len(calls), 8)
        for ln in calls:
            self.assertIn(" rc=0 ", ln, "each call after a flush succeeds: " + ln)
        self.assertIn("state=SUCCESS", calls[-1])


if __name__ == "__main__":
    unittest.main()
