"""The dashboard, the alert rules and docs/monitoring.md name only metrics Tickr exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

import tickr.metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "examples" / "grafana-dashboard.json"
ALERTS = ROOT / "examples" / "prometheus-alerts.yml"
MONITORING = ROOT / "docs" / "monitoring.md"

UNREACHABLE = "redis://127.0.0.1:1/0"
QUEUE_GAUGES = frozenset(
    {
        "tickr_queue_size",
        "tickr_queue_latency_seconds",
        "tickr_queue_paused",
        "tickr_queue_collector_up",
    }
)
"""The families of QueueCollector.collect, whose samples need a reachable Redis."""

SAMPLE_SUFFIXES = {
    "counter": ("_created",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}
"""Sample names a family has besides its own name (a counter's is already ``_total``)."""

METRIC_NAME = re.compile(r"\btickr_[a-z0-9_]*[a-z0-9]")
EXPR_LINE = re.compile(r"^(?P<indent> *)expr: *(?P<value>.*)$")
TABLE_ROW = re.compile(r"^\| `(?P<name>tickr_[a-z0-9_]+)` \|", re.MULTILINE)
YAML_BLOCK = re.compile(r"^```yaml\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Exported:
    families: dict[str, str]
    """Metric name as PromQL names it (a counter with ``_total``) -> its type."""
    samples: frozenset[str]
    """Every sample name a query may use."""


@pytest.fixture(scope="module")
def exported() -> Exported:
    registry = prometheus_client.CollectorRegistry()
    metrics = tickr.metrics.install(registry)
    collector = tickr.metrics.QueueCollector(UNREACHABLE, timeout=1)
    registry.register(collector)
    try:
        text = prometheus_client.generate_latest(registry).decode()
    finally:
        registry.unregister(collector)
        collector.close()
        metrics.close()
    assert collector.reads == 1
    assert "tickr_queue_collector_up 0.0" in text.splitlines()
    families: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("tickr_"):
            name = f"{family.name}_total" if family.type == "counter" else family.name
            families[name] = family.type
    for name in QUEUE_GAUGES:
        families.setdefault(name, "gauge")
    samples = set()
    for name, kind in families.items():
        base = name.removesuffix("_total") if kind == "counter" else name
        if kind != "histogram":
            samples.add(name)
        samples.update(base + suffix for suffix in SAMPLE_SUFFIXES.get(kind, ()))
    return Exported(families, frozenset(samples))


def dashboard_queries(node: Any) -> Iterator[str]:
    """The PromQL of every panel target and of the template variables."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition", "query") and isinstance(value, str):
                yield value
            else:
                yield from dashboard_queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_queries(item)


def rule_expressions(text: str) -> list[str]:
    """The `expr:` values of a rules file: plain, quoted, or block scalars (``|``, ``>``)."""
    lines = text.splitlines()
    found = []
    for index, line in enumerate(lines):
        match = EXPR_LINE.match(line)
        if match is None:
            continue
        value = match["value"].strip()
        if value[:1] in ("|", ">"):
            indent = len(match["indent"])
            block = []
            for following in lines[index + 1 :]:
                if following.strip() and len(following) - len(following.lstrip(" ")) <= indent:
                    break
                block.append(following.strip())
            value = " ".join(part for part in block if part)
        found.append(value.strip("'\""))
    return found


def metric_names(queries: list[str]) -> set[str]:
    return {name for query in queries for name in METRIC_NAME.findall(query)}


def test_install_and_the_queue_collector_export_every_metric(exported: Exported) -> None:
    assert set(exported.families) >= QUEUE_GAUGES
    assert {"counter", "histogram", "gauge"} <= set(exported.families.values())


def test_the_dashboard_queries_only_exported_metrics(exported: Exported) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = list(dashboard_queries(dashboard))
    used = metric_names(queries)
    assert len(queries) > len(dashboard["panels"])
    assert used, "the dashboard names no tickr_ metric"
    assert used <= exported.samples, f"not exported: {sorted(used - exported.samples)}"


def test_the_dashboard_has_its_variables() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["schemaVersion"] == 39
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    queue = variables["queue"]
    assert queue["definition"] == "label_values(tickr_queue_size, queue)"
    assert queue["multi"] is True
    assert queue["includeAll"] is True
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_the_alert_rules_use_only_exported_metrics(exported: Exported) -> None:
    text = ALERTS.read_text(encoding="utf-8")
    expressions = rule_expressions(text)
    assert len(expressions) == text.count("- alert:")
    assert all(expressions), "a rule without an expression"
    used = metric_names(expressions)
    assert used <= exported.samples, f"not exported: {sorted(used - exported.samples)}"


def test_the_monitoring_page_lists_every_metric(exported: Exported) -> None:
    listed = [match["name"] for match in TABLE_ROW.finditer(MONITORING.read_text("utf-8"))]
    assert len(listed) == len(set(listed)), "a metric is listed twice"
    assert set(listed) == set(exported.families)


def test_the_rule_shown_on_the_monitoring_page_is_the_files() -> None:
    page = MONITORING.read_text(encoding="utf-8")
    shown = [e for block in YAML_BLOCK.finditer(page) for e in rule_expressions(block["body"])]
    assert shown
    assert set(shown) <= set(rule_expressions(ALERTS.read_text(encoding="utf-8")))
