"""A Redis Cluster losing a primary, or moving a queue's slot, while a server drains.

The client and server run in a child process (tests/faults/_cluster_drain.py); the test
starts the cluster, breaks it at a chosen moment, and reads what ran.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from tests.helpers.processes import WorkerProcess
from tickr._broker.keys import NamespaceKeys, QueueKeys
from tickr.testing import RedisServer
from tickr.testing.topology import ClusterServers

QUEUES = [f"q{n}" for n in range(6)]


class ClusterDrain(WorkerProcess):
    """The `tests.faults._cluster_drain` child."""

    module = "tests.faults._cluster_drain"

    def __init__(self, url: str, namespace: str, output: Path, *args: str) -> None:
        super().__init__(url, namespace, str(output), *args)

    def wait_ready(self) -> None:
        self.wait_for_line("serving", timeout=60)

    def result(self, output: Path) -> dict[str, Any]:
        code = self.wait(timeout=120)
        assert code == 0, "".join(self.lines[-40:])
        return dict(json.loads(output.read_text()))


def _node_of(cluster: ClusterServers, namespace: str, queue: str) -> RedisServer:
    return cluster.primary_of(QueueKeys(namespace, queue).pending)


def _split(
    cluster: ClusterServers, namespace: str, doomed_node: RedisServer
) -> tuple[list[str], list[str]]:
    doomed = [q for q in QUEUES if _node_of(cluster, namespace, q) is doomed_node]
    return doomed, [q for q in QUEUES if q not in doomed]


def _fresh_namespace(cluster: ClusterServers) -> str:
    """A namespace whose six queues live on at least two primaries."""
    while True:
        namespace = f"test-{uuid.uuid4().hex[:8]}"
        if len({_node_of(cluster, namespace, q).port for q in QUEUES}) >= 2:
            return namespace


PARTIAL_COVERAGE = ("--cluster-require-full-coverage", "no")
"""What the guide advises: with full coverage required, every node answers CLUSTERDOWN
while one slot has no live primary, and the healthy shards stop too."""


def test_a_primary_killed_mid_drain_fails_over_and_every_task_runs(tmp_path: Path) -> None:
    with ClusterServers(replicas=1, extra_args=PARTIAL_COVERAGE) as cluster:
        namespace = _fresh_namespace(cluster)
        victim = _node_of(cluster, namespace, "q0")
        doomed, healthy = _split(cluster, namespace, victim)
        output = tmp_path / "runs.json"
        child = ClusterDrain(cluster.url, namespace, output, "--wait-replicas", "1")
        try:
            child.wait_ready()
            child.wait_for_line("progress 300", timeout=60)
            killed_at = time.monotonic()
            victim.kill()
            outcome = child.result(output)
        finally:
            child.stop()
    ran = Counter(task_id for task_id, _queue, _at in outcome["runs"])
    acknowledged = outcome["acknowledged"]
    assert set(acknowledged) <= set(ran), f"{len(set(acknowledged) - set(ran))} tasks lost"
    # The doomed queues' outage: the longest pause between their runs (the tasks they
    # had handed out before the kill still finish at once).
    doomed_times = sorted(at for _id, queue, at in outcome["runs"] if queue in doomed)
    gone_at, back_at = max(itertools.pairwise(doomed_times), key=lambda p: p[1] - p[0])
    assert gone_at - 1 < killed_at < back_at, "the longest pause is the failover"
    during = [q for _id, q, at in outcome["runs"] if gone_at < at < back_at]
    print(
        f"\nprimary of {doomed} killed: its queues paused {back_at - gone_at:.2f}s; "
        f"{len(during)} tasks of {healthy} ran meanwhile; "
        f"{sum(ran.values()) - len(ran)} duplicate runs"
    )
    assert during and set(during) <= set(healthy), "the healthy shards kept serving"


def test_a_dead_node_without_replica_stops_only_its_own_queues(tmp_path: Path) -> None:
    with ClusterServers(replicas=0, extra_args=PARTIAL_COVERAGE) as cluster:
        namespace = _fresh_namespace(cluster)
        victim = _node_of(cluster, namespace, "q0")
        doomed, healthy = _split(cluster, namespace, victim)
        output = tmp_path / "runs.json"
        child = ClusterDrain(cluster.url, namespace, output, "--finish-queues", ",".join(healthy))
        try:
            child.wait_ready()
            child.wait_for_line("progress 100", timeout=60)
            victim.kill()
            outcome = child.result(output)
        finally:
            child.stop()
    ran = {task_id for task_id, _queue, _at in outcome["runs"]}
    wanted = {i for i, queue in outcome["acknowledged"].items() if queue in healthy}
    stranded = {i for i, queue in outcome["acknowledged"].items() if queue in doomed} - ran
    assert "gave up waiting" not in "".join(child.lines)
    assert wanted <= ran, f"{len(wanted - ran)} tasks of the healthy queues did not run"
    print(f"\n{len(stranded)} tasks of {doomed} wait for their node")
    assert stranded, "the dead node's queues could not be served"


def test_a_queue_whose_slot_moves_mid_drain_loses_nothing(tmp_path: Path) -> None:
    with ClusterServers(replicas=0) as cluster:
        namespace = _fresh_namespace(cluster)
        source = _node_of(cluster, namespace, "q0")
        target = next(node for node in cluster.nodes if node is not source)
        slot = cluster.slot_of(QueueKeys(namespace, "q0").pending)
        output = tmp_path / "runs.json"
        child = ClusterDrain(cluster.url, namespace, output, "--total", "1800")
        try:
            child.wait_ready()
            child.wait_for_line("progress 200", timeout=60)
            moved = cluster.migrate_slot(slot, target, batch=5, pause=0.01)
            assert _node_of(cluster, namespace, "q0") is target
            outcome = child.result(output)
        finally:
            child.stop()
    ran = Counter(task_id for task_id, _queue, _at in outcome["runs"])
    assert set(outcome["acknowledged"]) <= set(ran), "every task ran"
    print(f"\nslot {slot} moved ({moved} keys); {sum(ran.values()) - len(ran)} duplicate runs")
    assert moved > 10, "the slot held the queue's keys"


ENQUEUE_EACH = """
import asyncio, json, sys
import tickr

async def main() -> None:
    outcome = {}
    async with tickr.Client(sys.argv[1], namespace=sys.argv[2]) as client:
        for queue in sys.argv[3].split(","):
            try:
                await asyncio.wait_for(client.enqueue("t", queue=queue), 20)
                outcome[queue] = "ok"
            except tickr.RedisUnavailable as exc:
                outcome[queue] = str(exc)
    print(json.dumps(outcome))

asyncio.run(main())
"""


def test_a_client_starting_while_the_first_primary_is_down_reaches_the_others() -> None:
    """redis-py reads the command table from the first primary at discovery: another
    primary must do when that one is down.  The namespace's queue registry lives on that
    node too: an enqueue must not need it."""
    with ClusterServers(replicas=0, extra_args=PARTIAL_COVERAGE) as cluster:
        first = cluster.nodes[0]
        namespace = _fresh_namespace(cluster)
        while cluster.primary_of(NamespaceKeys(namespace).queues) is not first:
            namespace = _fresh_namespace(cluster)
        doomed, healthy = _split(cluster, namespace, first)
        first.kill()
        run = subprocess.run(
            [sys.executable, "-c", ENQUEUE_EACH, cluster.url, namespace, ",".join(QUEUES)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert run.returncode == 0, run.stderr[-3000:]
    outcome = json.loads(run.stdout)
    assert {queue for queue, result in outcome.items() if result == "ok"} == set(healthy), outcome
    assert all("unavailable" in outcome[queue] for queue in doomed)
