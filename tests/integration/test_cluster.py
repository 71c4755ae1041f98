"""docq's Redis Cluster groundwork (common/cluster.c) against a real
3-primary, 3-replica Redis Cluster (cluster.py): the slot map built from
CLUSTER SHARDS routes each key where the cluster itself says it lives, before
and after a failover. Routing commands by slot is not done yet."""
import os
import subprocess
import sys
import time
import unittest

from cluster import Cluster
from stack import BIN_DIR, labels, wait_for

TASK_ID = "0123456789abcdef0123456789abcdef"
# docq's keys of 16 shards, and a few others with and without hash tags.
KEYS = (["docq:{s%d}:tasks" % s for s in range(16)] + ["docq:{s%d}:task:%s" % (s, TASK_ID) for s in range(16)] +
        ["foo", "{user1000}.following", "{user1000}.followers", "foo{}{bar}", "foo{{bar}}zap", "{}", "a"])


class ClusterMap(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster()
        self.addCleanup(self.cluster.stop)
        self.cluster.start()
        sys.stderr.write("cluster of 6 nodes started in %.1f s\n" % self.cluster.start_seconds)

    def routes(self, keys, port):
        """{key: (slot, "host:port" or "-")} from docq-cluster-map asking the
        node at port, and the number of slots its map covers."""
        out = subprocess.run([os.path.join(BIN_DIR, "docq-cluster-map"), str(port)] + list(keys),
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        self.assertEqual(len(lines), len(keys) + 1, out.stdout)
        routes = {}
        for line in lines[:-1]:
            key, slot, node = line.rsplit(" ", 2)
            routes[key] = (int(slot), node)
        self.assertEqual(lines[-1].split(), ["covered", str(16384)])
        return routes

    def check_routes(self, keys, port):
        """Every key's slot is the cluster's CLUSTER KEYSLOT and its node is
        the primary CLUSTER NODES names for that slot."""
        routes = self.routes(keys, port)
        owners = self.cluster.slot_owners(port)
        for key in keys:
            slot, node = routes[key]
            self.assertEqual(slot, self.cluster.key_slot(key, port), key)
            self.assertEqual(node, owners[slot], key)
        return routes

    @labels("cluster")
    def test_slot_map_routes_every_key_to_the_node_the_cluster_names(self):
        """docq's slot map from CLUSTER SHARDS routes every key to the node the cluster names"""
        routes = self.check_routes(KEYS, self.cluster.live_ports()[0])
        # A shard's keys share a slot; 16 shards spread over all 3 primaries.
        for s in range(16):
            self.assertEqual(routes["docq:{s%d}:tasks" % s], routes["docq:{s%d}:task:%s" % (s, TASK_ID)])
        self.assertEqual(len({routes["docq:{s%d}:tasks" % s][1] for s in range(16)}), 3)

    @labels("cluster")
    def test_slot_map_built_after_a_failover_names_the_promoted_replica(self):
        """after the primary serving {s0} is killed and its replica promoted, a slot map built afresh
        routes {s0} to the new primary"""
        port = self.cluster.live_ports()[0]
        slot, old = self.routes(["docq:{s0}:tasks"], port)["docq:{s0}:tasks"]
        old_port = int(old.rsplit(":", 1)[1])
        began = time.monotonic()
        self.cluster.kill(old_port)
        ask = self.cluster.live_ports()[0]

        def promoted():
            owner = self.cluster.slot_owners(ask).get(slot)
            return owner if owner != old else None
        new = wait_for(promoted, timeout=30, interval=0.2, what="a replica to be promoted for slot %d" % slot)
        self.cluster.wait_ok(30)
        sys.stderr.write("failover of slot %d from %s to %s took %.1f s\n" % (slot, old, new, time.monotonic() - began))
        self.assertIn(int(new.rsplit(":", 1)[1]), self.cluster.live_ports())
        routes = self.check_routes(KEYS, ask)
        self.assertEqual(routes["docq:{s0}:tasks"], (slot, new))


if __name__ == "__main__":
    unittest.main()
