"""A throwaway Redis Cluster for integration tests: real redis-server nodes
(3 primaries and 3 replicas by default) on free loopback ports, joined with
`redis-cli --cluster create`, their files in a temporary directory.

Tests call Cluster.stop() through addCleanup *before* start(), so that every
node started is killed and the directory removed (unless DOCQ_TEST_KEEP=1)
whatever fails, start() included.

ClusterStack is a Stack (stack.py) whose Redis is such a cluster: docq is
given one primary's address and must find the others itself.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from stack import Proc, Stack, free_port, shard_for, wait_for


class Cluster:
    """Starts, inspects and stops one Redis Cluster."""

    def __init__(self, primaries=3, replicas=1, node_timeout_ms=1500, full_coverage=True):
        """full_coverage=False: the nodes serve their slots while some other
        slot has no live primary (cluster-require-full-coverage no)."""
        self.dir = tempfile.mkdtemp(prefix="docq-cluster-")
        self.primaries, self.replicas = primaries, replicas
        self.node_timeout_ms = node_timeout_ms
        self.full_coverage = full_coverage
        self.nodes = {}  # port -> Proc, in start order.
        self.killed = set()
        self.start_seconds = None

    def _free_ports(self, n):
        """n distinct TCP ports that were free a moment ago."""
        ports = set()
        while len(ports) < n:
            ports.add(free_port())
        return sorted(ports)

    def _start_node(self, port, bus_port):
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                "--cluster-port", str(bus_port), "--cluster-config-file", "nodes-%d.conf" % port,
                "--cluster-node-timeout", str(self.node_timeout_ms),
                "--cluster-require-full-coverage", "yes" if self.full_coverage else "no", "--appendonly", "no", "--save", "",
                "--dir", self.dir]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        self.nodes[port] = Proc("redis-%d" % port, argv, env, os.path.join(self.dir, "redis-%d.log" % port))

    def start(self, timeout=60):
        """Start the nodes, join them into one cluster and wait until every
        node says cluster_state:ok. Returns self; start_seconds is how long
        it took."""
        began = time.monotonic()
        count = self.primaries * (1 + self.replicas)
        ports = self._free_ports(2 * count)
        for port, bus_port in zip(ports[:count], ports[count:]):
            self._start_node(port, bus_port)
        for port in self.nodes:
            wait_for(lambda p=port: self.cli(p, "PING") == "PONG", what="redis-server :%d to answer" % port)
        create = subprocess.run(
            ["redis-cli", "--cluster", "create"] + ["127.0.0.1:%d" % p for p in self.nodes] +
            ["--cluster-replicas", str(self.replicas), "--cluster-yes"],
            capture_output=True, text=True, timeout=timeout)
        if create.returncode != 0:
            raise AssertionError("redis-cli --cluster create failed:\n%s%s" % (create.stdout, create.stderr))
        self.wait_ok(timeout)
        # A replica that never synced from its primary would not stand in
        # for it (its data counts as too old).
        wait_for(lambda: all(self.synced(p) for p in self.nodes), timeout=timeout, interval=0.2,
                 what="every replica to sync from its primary")
        if self.replicas:
            for port in self.primary_ports():
                self.wait_streaming(port)
        self.start_seconds = time.monotonic() - began
        return self

    def live_ports(self):
        return [p for p in self.nodes if p not in self.killed and self.nodes[p].alive()]

    def cli(self, port, *args, timeout=10):
        """redis-cli -p port args...: its output, stripped ("" when it fails)."""
        try:
            r = subprocess.run(["redis-cli", "-p", str(port)] + [str(a) for a in args],
                               capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return ""
        return r.stdout.strip() if r.returncode == 0 else ""

    def state_ok(self, port):
        return "cluster_state:ok" in self.cli(port, "CLUSTER", "INFO")

    def synced(self, port):
        """1 when the node is a primary or a replica whose link is up."""
        info = self.cli(port, "INFO", "replication")
        return "role:master" in info or "master_link_status:up" in info

    def wait_streaming(self, port, timeout=30):
        """Wait until the primary at port streams its writes to all its
        replicas: after a full sync without disk a Redis 7.0 primary holds
        its writes back until the replica's first REPLCONF ACK, up to a
        second later, and a failover meanwhile loses them (seen: a replica
        elected with "offset 0" lost every task of its primary). A key of
        the primary's is written, WAITed for on every replica and deleted."""
        owners = self.slot_owners()
        key = next(k for k in ("cluster-probe-{%d}" % n for n in range(1000))
                   if owners[self.key_slot(k)] == "127.0.0.1:%d" % port)
        r = subprocess.run(["redis-cli", "-p", str(port)], capture_output=True, text=True, timeout=timeout + 5,
                           input="SET %s 1\nWAIT %d %d\nDEL %s\n" % (key, self.replicas, timeout * 1000, key))
        if r.stdout.split()[1:2] != [str(self.replicas)]:
            raise AssertionError("the replicas of :%d did not confirm a write: %r" % (port, r.stdout))

    def wait_replicated(self, port, timeout=30):
        """Wait until every replica of the primary at port has acknowledged
        all its writes (their offsets, as the primary last heard them, reach
        its own): a failover then loses nothing of what it holds."""
        def caught_up():
            info = self.cli(port, "INFO", "replication")
            own = re.search(r"master_repl_offset:(\d+)", info)
            offsets = [int(o) for o in re.findall(r"^slave\d+:.*offset=(\d+)", info, re.M)]
            return own and offsets and all(o >= int(own.group(1)) for o in offsets)
        wait_for(caught_up, timeout=timeout, interval=0.1, what="the replicas of :%d to catch up" % port)

    def wait_ok(self, timeout=30):
        """Wait until every live node says cluster_state:ok."""
        wait_for(lambda: all(self.state_ok(p) for p in self.live_ports()), timeout=timeout, interval=0.2,
                 what="cluster_state:ok on every node")

    def key_slot(self, key, port=None):
        """The slot the cluster gives key (CLUSTER KEYSLOT)."""
        return int(self.cli(port or self.live_ports()[0], "-c", "CLUSTER", "KEYSLOT", key))

    def primary_nodes(self, port=None):
        """{"host:port": (node id, [slot ranges as CLUSTER NODES writes them])}
        of the primaries CLUSTER NODES lists, as seen by a live node (failed
        primaries left out)."""
        out = {}
        for line in self.cli(port or self.live_ports()[0], "CLUSTER", "NODES").splitlines():
            fields = line.split()
            flags = fields[2].split(",")
            if "master" not in flags or "fail" in flags or "fail?" in flags:
                continue
            out[fields[1].split("@")[0]] = (fields[0], fields[8:])
        return out

    def replicas_of(self, port=None):
        """{primary port: [ports of its live replicas]}, from CLUSTER NODES."""
        lines = [l.split() for l in self.cli(port or self.live_ports()[0], "CLUSTER", "NODES").splitlines()]
        port_of = {f[0]: int(f[1].split("@")[0].rsplit(":", 1)[1]) for f in lines}
        out = {port_of[f[0]]: [] for f in lines if "master" in f[2].split(",")}
        for f in lines:
            flags = f[2].split(",")
            if "slave" in flags and "fail" not in flags and f[3] in port_of:
                out.setdefault(port_of[f[3]], []).append(port_of[f[0]])
        return out

    def read_replica(self, port, *args):
        """Run a read command on the replica at port (after READONLY, so
        that it answers for its primary's slots); its output."""
        r = subprocess.run(["redis-cli", "-p", str(port)], input="READONLY\n%s\n" % " ".join(map(str, args)),
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""

    def primary_ports(self, port=None):
        """The ports of the live primaries, in order."""
        return sorted(int(a.rsplit(":", 1)[1]) for a in self.primary_nodes(port))

    def slot_owners(self, port=None):
        """{slot: "host:port"} of the primaries serving each slot, from
        CLUSTER NODES as seen by a live node (failed primaries left out)."""
        owners = {}
        for address, (_, ranges) in self.primary_nodes(port).items():
            for part in ranges:
                if part.startswith("["):  # A slot being migrated or imported.
                    continue
                start, _, end = part.partition("-")
                for slot in range(int(start), int(end or start) + 1):
                    owners[slot] = address
        return owners

    def node_id(self, port):
        return self.cli(port, "CLUSTER", "MYID")

    def move_slot(self, slot, dst_port, batch=10, pause=0.1, settle=1.0):
        """Move slot from the primary serving it to the primary at dst_port
        the way redis-cli --cluster reshard does, but slowly: IMPORTING on
        the destination, MIGRATING on the source, then MIGRATE of batch keys
        at a time with a pause between batches (while the slot is split,
        the source answers ASK for the keys already moved, TRYAGAIN for a
        command whose keys are split), settle more seconds with every key
        moved and the slot still migrating (the source answers ASK for every
        key), and at last SETSLOT NODE on the destination, the source and
        the other primaries. Returns the number of keys moved."""
        src_port = int(self.slot_owners()[slot].rsplit(":", 1)[1])
        src_id, dst_id = self.node_id(src_port), self.node_id(dst_port)

        def ok(port, *args):
            out = self.cli(port, *args, timeout=30)
            if out not in ("OK", "NOKEY"):
                raise AssertionError("redis-cli -p %d %s: %r" % (port, " ".join(map(str, args)), out))
        ok(dst_port, "CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        ok(src_port, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        moved = 0
        while True:
            keys = self.cli(src_port, "CLUSTER", "GETKEYSINSLOT", slot, batch).split()
            if not keys:
                break
            ok(src_port, "MIGRATE", "127.0.0.1", dst_port, "", 0, 10000, "KEYS", *keys)
            moved += len(keys)
            time.sleep(pause)
        time.sleep(settle)
        ok(dst_port, "CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        ok(src_port, "CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        for port in self.primary_ports():
            if port not in (src_port, dst_port):
                ok(port, "CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        return moved

    def kill(self, port):
        """SIGKILL the node at port."""
        self.killed.add(port)
        self.nodes[port].signal(signal.SIGKILL)
        self.nodes[port].wait()

    def stop(self):
        """Kill every node and remove the directory (kept with
        DOCQ_TEST_KEEP=1). Safe to call more than once, or before start()."""
        for proc in self.nodes.values():
            proc.kill()
        if os.environ.get("DOCQ_TEST_KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)


class ClusterStack(Stack):
    """A Stack whose Redis is a Cluster: start_redis() starts it and points
    DOCQ_REDIS_URL at a primary that does not serve the shard of the caller
    127.0.0.1 (so that even a test of that one caller needs docq to route
    its commands to another node); redis_cli() follows redirections
    (redis-cli -c) from a live node, and all_keys() (so task_keys()) scans
    every live primary. stop() stops the cluster too."""

    def __init__(self, shards=4, result_ttl_s=86400, **cluster_args):
        super().__init__(shards=shards, result_ttl_s=result_ttl_s)
        self.cluster = Cluster(**cluster_args)

    def start_redis(self, persist=False, password=None):
        if persist or password:
            raise NotImplementedError("a ClusterStack has neither persistence nor a password")
        self.cluster.start()
        sys.stderr.write("cluster of %d nodes started in %.1f s\n" % (len(self.cluster.nodes),
                                                                     self.cluster.start_seconds))
        slot = self.cluster.key_slot(self.stream_key(shard_for("127.0.0.1", self.shards)))
        owner = self.cluster.slot_owners()[slot]
        self.redis_port = [p for p in self.cluster.primary_ports() if owner != "127.0.0.1:%d" % p][0]
        return self

    def stop_redis(self):
        raise NotImplementedError("kill a node instead: ClusterStack.cluster.kill(port)")

    def redis_target(self):
        return ["-c", "-p", str(self.cluster.live_ports()[0])]

    def all_keys(self):
        return [k for port in self.cluster.primary_ports() for k in self.cluster.cli(port, "--scan").split()]

    def keys_by_primary(self, pattern=":task:"):
        """{primary port: number of keys holding pattern}, over the live primaries."""
        return {port: sum(pattern in k for k in self.cluster.cli(port, "--scan").split())
                for port in self.cluster.primary_ports()}

    def stop(self):
        try:
            super().stop()
        finally:
            self.cluster.stop()
