"""Key layout and scripts: every key of a queue shares one hash tag; scripts document themselves."""

import re
from importlib import resources

import pytest

from tickr._broker.keys import NamespaceKeys, QueueKeys
from tickr._broker.scripts import load_script

SCRIPTS = sorted(
    entry.name.removesuffix(".lua")
    for entry in (resources.files("tickr._broker") / "lua").iterdir()
    if entry.name.endswith(".lua")
)


def test_every_script_is_found() -> None:
    assert {"enqueue", "dequeue", "finish", "recover", "cron_tick"} <= set(SCRIPTS)


def hash_tag(key: str) -> str:
    start = key.index("{")
    return key[start + 1 : key.index("}", start)]


def test_every_key_of_a_queue_shares_one_hash_tag() -> None:
    keys = QueueKeys("ns", "emails")
    names = [
        keys.pending, keys.active, keys.scheduled, keys.retry, keys.archived, keys.completed,
        keys.legacy_seq, keys.paused, keys.idle, keys.processed, keys.failed, keys.task("abc"),
        keys.pending_bucket(7), keys.pending_list(-3), keys.pending_priorities,
        keys.pending_gone, keys.legacy_pending,
        keys.unique("d1"), keys.processed_on("2026-11-22"), keys.failed_on("2026-11-22"),
        keys.inbox("host:1:abc"), keys.handed("host:1:abc"),
    ]  # fmt: skip
    assert {hash_tag(name) for name in names} == {"ns:emails"}
    assert all(name.startswith("ns:") for name in names)
    assert len(set(names)) == len(names)


def test_queues_and_namespaces_do_not_collide() -> None:
    assert QueueKeys("a", "b:c").pending != QueueKeys("a:b", "c").pending
    assert hash_tag(NamespaceKeys("ns").queues) == "ns"


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_name_their_keys_arguments_and_reply(name: str) -> None:
    raw = (resources.files("tickr._broker") / "lua" / f"{name}.lua").read_text()
    header = raw.split("\n\n")[0]
    assert "KEYS[1]" in header
    assert "Returns" in header
    script = load_script(name)
    assert "--@include" not in script.source
    assert re.fullmatch(r"[0-9a-f]{40}", script.sha)


def test_includes_are_expanded_once_per_use() -> None:
    source = load_script("finish").source
    assert source.count("local function trim_archive") == 1
    assert source.count("local function wake_pending") == 1
