"""Usage as LXD reports it: instance state (memory, root disk, processes)
and /1.0/metrics (CPU seconds)."""
import pylxd

from .client import translated


def instance_usage(client: pylxd.Client) -> dict[str, dict]:
    """Name -> status, root disk use and memory use of every instance in
    the client's project, from LXD's instance state (one request)."""
    with translated("reading instance state"):
        items = client.api.instances.get(params={"recursion": 2}).json()["metadata"]
    usage = {}
    for item in items:
        state = item.get("state") or {}
        usage[item["name"]] = {
            "status": item["status"],
            "disk": ((state.get("disk") or {}).get("root") or {}).get("usage", 0),
            "memory": (state.get("memory") or {}).get("usage", 0),
            "processes": state.get("processes", 0) if state.get("processes", -1) >= 0 else 0,
        }
    return usage


def cpu_seconds(client: pylxd.Client) -> dict[str, float]:
    """Name -> CPU seconds used so far by each running instance of the
    client's project, from /1.0/metrics (OpenMetrics text)."""
    from prometheus_client.parser import text_string_to_metric_families
    with translated("reading metrics"):
        text = client.api.metrics.get().text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "lxd_cpu_seconds_total" and "name" in sample.labels:
                found[sample.labels["name"]] = found.get(sample.labels["name"], 0.0) + sample.value
    return found
