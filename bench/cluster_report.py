#!/usr/bin/env python3
"""Tables of a bench/cluster.sh run: reads its .json file (one confab-load
final line per run, plus the idle bus lines) and prints Markdown.

Per configuration (label), the median over its runs of: delivered/s, e2e
p50/p99, lost/dup/out-of-order (summed), each confab node's, the
nats-servers' (summed), PostgreSQL's and the generator's CPU over the
measured window (% of one core), and the servers' CPU per delivery in µs:
confab nodes alone, and confab + NATS + PostgreSQL. Then, per node, bus
messages per published message in the window (raw, and less the node's
background traffic measured idle), and the gap-fill counters' increase.

    python3 bench/cluster_report.py bench/out/<stamp>-cluster.json
"""

import json
import statistics
import sys
from collections import OrderedDict


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=0):
    if v is None:
        return "–"
    if digits == 0:
        return f"{round(v):,}"
    return f"{v:,.{digits}f}"


def pct(v):
    return "–" if v is None else f"{v:,.1f} %"


def watched(run):
    return {w["name"]: w for w in run.get("watched") or []}


def cpu_s(run, prefix):
    """CPU seconds in the window of the watched processes named prefix*."""
    total, found = 0.0, False
    for name, w in watched(run).items():
        if name.startswith(prefix) and w.get("cpu_s") is not None:
            total += w["cpu_s"]
            found = True
    return total if found else None


def cpu_pct(run, name):
    w = watched(run).get(name)
    return None if w is None else w.get("cpu_pct")


def node_pct(run, i):
    """CPU % of node i (0-based); a standalone server counts as node 1."""
    w = watched(run)
    if f"node{i + 1}" in w:
        return w[f"node{i + 1}"].get("cpu_pct")
    if i == 0 and "node" in w:
        return w["node"].get("cpu_pct")
    return None


def nats_pct(run):
    shares = [w.get("cpu_pct") or 0.0 for n, w in watched(run).items() if n.startswith("nats")]
    return sum(shares) if shares else None


def scraped(run, node_index):
    rows = run["results"].get("scraped") or []
    if node_index >= len(rows):
        return {}
    return rows[node_index].get("increase") or {}


def main(path):
    runs, idle, idle_cpu = [], {}, []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            obj = json.loads(line)
            if "idle_cpu" in obj:
                idle_cpu.append(obj["idle_cpu"])
                continue
            if "idle_bus" in obj:
                idle_cpu.append({"node": obj["idle_bus"]["node"], "seconds": obj["idle_bus"]["seconds"],
                                 "cpu_s": obj["idle_bus"].get("cpu_s")})
                b = obj["idle_bus"]
                idle[b["node"]] = (b["published"] / b["seconds"], b["received"] / b["seconds"])
                continue
            if obj.get("mode") == "fanout" and "results" in obj:
                runs.append(obj)
    groups = OrderedDict()
    for run in runs:
        groups.setdefault(run["label"], []).append(run)

    nodes = max(
        (len([n for n in watched(r) if n.startswith("node") and n != "node"]) for r in runs),
        default=0,
    )
    print("| configuration | runs | load avg | delivered/s | e2e p50 / p99 ms | lost / dup / disorder |"
          + "".join(f" node{i + 1} CPU |" for i in range(nodes))
          + " NATS CPU | PostgreSQL CPU | generator CPU | µs/delivery confab | µs/delivery all servers |")
    print("|---|---|---|---|---|---|" + "---|" * nodes + "---|---|---|---|---|")
    for label, rs in groups.items():
        def med(fn):
            return median([fn(r) for r in rs])

        res = lambda r: r["results"]
        delivered = med(lambda r: res(r)["delivered_per_s"])
        p50 = med(lambda r: res(r)["latency"]["p50_ms"])
        p99 = med(lambda r: res(r)["latency"]["p99_ms"])
        lost = sum(res(r)["lost"] + res(r).get("lost_on_disconnected", 0) for r in rs)
        dup = sum(res(r)["duplicates"] for r in rs)
        ooo = sum(res(r).get("out_of_order", 0) for r in rs)
        load = med(lambda r: r.get("bench", {}).get("load_average_1m"))

        def per_delivery(r, prefixes):
            n = res(r)["delivered_in_window"]
            parts = [cpu_s(r, p) for p in prefixes]
            if not n or all(p is None for p in parts):
                return None
            return sum(p or 0.0 for p in parts) * 1e6 / n

        node_cols = [med(lambda r, i=i: node_pct(r, i)) for i in range(nodes)]
        nats = med(nats_pct)
        pg = med(lambda r: cpu_pct(r, "postgres"))
        gen = med(lambda r: r["loadgen"]["cpu_pct"])
        confab = med(lambda r: per_delivery(r, ["node"]))
        everything = med(lambda r: per_delivery(r, ["node", "nats", "postgres"]))
        print(f"| {label} | {len(rs)} | {fmt(load, 2)} | {fmt(delivered)} | {fmt(p50, 1)} / {fmt(p99, 1)} | {lost} / {dup} / {ooo} |"
              + "".join(f" {pct(c)} |" for c in node_cols)
              + f" {pct(nats)} | {pct(pg)} | {pct(gen)} | {fmt(confab, 2)} | {fmt(everything, 2)} |")

    print()
    print("Bus messages per published message in the window, per node: "
          "node 1 published (it has the publisher), the others received; "
          "in brackets, less each node's idle background traffic "
          + ", ".join(f"(node {n}: {p:.2f}/s published, {v:.2f}/s received)" for n, (p, v) in sorted(idle.items())) + ".")
    print()
    print("| configuration |" + "".join(f" node{i + 1} |" for i in range(nodes))
          + " gap fills (messages) | bus duplicates dropped | commits/s, messages per commit (all nodes) |")
    print("|---|" + "---|" * nodes + "---|---|---|")
    for label, rs in groups.items():
        if label.startswith("standalone"):
            continue
        cols = []
        for i in range(nodes):
            key = "confab_bus_published_total" if i == 0 else "confab_bus_received_total"

            def ratio(r, net):
                acked = r["results"]["acked_per_s"] * r["params"]["duration_s"]
                inc = scraped(r, i).get(key)
                if not acked or inc is None:
                    return None
                if net:
                    published, received = idle.get(i + 1, (0.0, 0.0))
                    inc -= (published if i == 0 else received) * r["params"]["duration_s"]
                return inc / acked

            cols.append(f" {fmt(median([ratio(r, False) for r in rs]), 3)} ({fmt(median([ratio(r, True) for r in rs]), 3)}) |")
        fills = sum(scraped(r, i).get("confab_gap_fills_total", 0) for r in rs for i in range(nodes))
        fill_msgs = sum(scraped(r, i).get("confab_gap_fill_messages_total", 0) for r in rs for i in range(nodes))
        dups = sum(scraped(r, i).get("confab_bus_duplicates_total", 0) for r in rs for i in range(nodes))
        def commits(r):
            n = sum(scraped(r, i).get("confab_commit_seconds_count", 0) for i in range(nodes))
            return n / r["params"]["duration_s"]

        def per_commit(r):
            n = sum(scraped(r, i).get("confab_commit_seconds_count", 0) for i in range(nodes))
            stored = sum(scraped(r, i).get("confab_messages_stored_total", 0) for i in range(nodes))
            return stored / n if n else None

        print(f"| {label} |" + "".join(cols) + f" {fmt(fills)} ({fmt(fill_msgs)}) | {fmt(dups)} |"
              + f" {fmt(median([commits(r) for r in rs]))}, {fmt(median([per_commit(r) for r in rs]), 2)} |")

    print()
    print("Idle (no load, before the runs): " + "; ".join(
        (f"node {c['node']} {c['cpu_s']} s CPU" if "node" in c
         else f"NATS {c['nats_cpu_s']} s, PostgreSQL {c['postgres_cpu_s']} s CPU")
        + f" in {c['seconds']} s" for c in idle_cpu) + ".")
    print()
    for label, rs in groups.items():
        for r in rs:
            spread = r["results"].get("sockets_per_url")
            if spread:
                print(f"- {label}: connections per URL " + ", ".join(f"{s['url'].split('/')[2]} {s['sockets']}" for s in spread))
                break
    problems = [(r["label"], p) for r in runs for p in r.get("problems", [])]
    if problems:
        print()
        for label, p in problems:
            print(f"- PROBLEM in {label}: {p}")


if __name__ == "__main__":
    main(sys.argv[1])
