#!/usr/bin/env python3
"""bench/report.py RAW.jsonl META_JSON OUTDIR

Turns bench/run.sh's raw measurements into bench/results/<UTC>.json,
bench/results/latest.json and a markdown table on stdout.
"""
import json
import math
import os
import sys
import time
from collections import defaultdict


def pct(xs, p):
    """Nearest-rank percentile."""
    if not xs:
        return None
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def stats_us(xs):
    """Stats in milliseconds from microsecond samples."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    ms = lambda v: round(v / 1000, 3)
    return {
        "n": len(xs),
        "median_ms": ms(pct(xs, 50)),
        "p90_ms": ms(pct(xs, 90)),
        "p95_ms": ms(pct(xs, 95)),
        "p99_ms": ms(pct(xs, 99)),
        "mean_ms": ms(sum(xs) / len(xs)),
        "min_ms": ms(min(xs)),
        "max_ms": ms(max(xs)),
    }


def main():
    raw_path, meta, outdir = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    by = defaultdict(list)
    for line in open(raw_path):
        line = line.strip()
        if line:
            r = json.loads(line)
            by[r["tag"]].append(r["data"])

    def samples(tag):
        return [d["us"] for d in by[tag] if isinstance(d, dict) and "us" in d]

    failures = by["failure"]
    res = {"meta": meta, "failed_attempts": failures}
    res["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    # 1. close-to-exit
    cte = {k: stats_us(samples(k)) for k in ("cte_ctb", "cte_ctb_keeper", "cte_baseline", "cte_baseline_keeper")}
    for k in list(cte):
        # From spawning `tmux kill-session` (its own run time included): the
        # watcher may be gone before that command has even returned.
        cte[k + "_from_kill_start"] = stats_us(
            [d["us"] + d["kill_cmd_us"] for d in by[k] if isinstance(d, dict) and "kill_cmd_us" in d]
        )
    cte = {k: v for k, v in cte.items() if v}
    if cte.get("cte_ctb") and cte.get("cte_baseline") and cte["cte_ctb"]["median_ms"] > 0:
        cte["ratio_of_medians"] = round(cte["cte_baseline"]["median_ms"] / cte["cte_ctb"]["median_ms"], 1)
    if cte.get("cte_ctb_keeper") and cte.get("cte_baseline_keeper") and cte["cte_ctb_keeper"]["median_ms"] > 0:
        cte["ratio_of_medians_keeper"] = round(
            cte["cte_baseline_keeper"]["median_ms"] / cte["cte_ctb_keeper"]["median_ms"], 1
        )
    res["close_to_exit"] = cte
    res["session_create_with_new_server"] = stats_us(samples("session_create_new_server"))

    # 2. event latency
    ev = next((d for d in by["event"] if isinstance(d, dict) and "us" in d), None)
    res["event_latency"] = ev and {
        "after_new_session_returns": stats_us(ev["us"]),
        "from_new_session_spawn": stats_us(ev["from_spawn_us"]),
        "tmux_new_session_cmd": stats_us(ev["new_session_cmd_us"]),
        "watch_ready_ms": ev["watch_ready_us"] / 1000,
    }

    # 3. idle
    def idle(tag, strace_tag):
        d = next(iter(by[tag]), None)
        if not isinstance(d, dict) or "cpu_ms" not in d:
            return d
        out = {
            "seconds": round(d["seconds"], 2),
            "cpu_ms": d["cpu_ms"],
            "cpu_ns_schedstat": d["cpu_ns_schedstat"],
            "ctxt_switches": d["ctxt"],
            "voluntary_ctxt": d["voluntary_ctxt"],
            "nonvoluntary_ctxt": d["nonvoluntary_ctxt"],
            "descendants_new": len(d["new_descendants"]),
            "descendants_gone": len(d["gone_descendants"]),
            "threads_new": d["new_threads"],
            "tree": d["tree_before"],
            "system_forks_all_processes": d["system_forks"],
        }
        st = next(iter(by[strace_tag]), None)
        if isinstance(st, dict):
            out["processes_spawned_strace"] = st["processes"]
            out["threads_spawned_strace"] = st["threads"]
        per_min = 60 / d["seconds"]
        out["per_minute"] = {
            "cpu_ms": round(d["cpu_ms"] * per_min, 1),
            "ctxt_switches": round(d["ctxt"] * per_min, 1),
            "processes_spawned": round(out.get("processes_spawned_strace", 0) * per_min, 1)
            if "processes_spawned_strace" in out
            else None,
        }
        return out

    res["idle"] = {"ctb": idle("idle_ctb", "idle_ctb_strace"), "baseline": idle("idle_baseline", "idle_baseline_strace")}
    if by["idle_baseline_tmux_calls"]:
        res["idle"]["baseline_tmux_calls"] = by["idle_baseline_tmux_calls"][0]
    if by["idle_ctb_rss"]:
        res["idle"]["ctb_rss"] = by["idle_ctb_rss"][0]

    # 4. scale
    scale = defaultdict(dict)
    creates = defaultdict(list)
    for d in by["scale"]:
        n, what = d["n"], d["what"]
        s = scale[n]
        if what == "setup":
            s["make_sessions_ms"] = d["make_sessions_ms"]
            s["watched"] = d["watched"]
            s["daemon_start_ms"] = d["daemon_start"]["us"] / 1000
        elif what in ("rss_start", "rss_end"):
            r = d["rss"]
            s[what] = {k: r[k] for k in ("vmrss_kib", "vmhwm_kib", "tree_vmrss_kib")}
        elif what == "reconcile":
            lat = d["lat"]
            if isinstance(lat, dict) and "us" in lat:
                s["reconcile"] = stats_us(lat["us"])
                s["watch_ready_ms"] = lat["watch_ready_us"] / 1000
            else:
                s["reconcile"] = lat
        elif what == "session_create":
            creates[n].append(d["t"]["us"])
        elif what == "close_all_but_one":
            s["close_all_but_one_ms"] = d["ms"]
            s["watched_after_close_all_but_one"] = d["watched_after"]
        elif what == "cte_last":
            r = d["r"]
            s["close_to_exit_last_ms"] = r["us"] / 1000 if isinstance(r, dict) and "us" in r else r
            if isinstance(r, dict) and "kill_cmd_us" in r:
                s["close_to_exit_last_from_kill_start_ms"] = (r["us"] + r["kill_cmd_us"]) / 1000
    for n, xs in creates.items():
        scale[n]["session_create"] = stats_us(xs)
    res["scale"] = {str(n): scale[n] for n in sorted(scale)}

    # 5. session-create
    res["session_create"] = {
        "cold": stats_us(samples("create_cold")),
        "warm": stats_us(samples("create_warm")),
        "bare_tmux_new_session": stats_us(samples("create_bare")),
        "bare_tmux_new_session_no_daemon": stats_us(samples("create_bare_nodaemon")),
    }
    sc = res["session_create"]
    if sc["warm"] and sc["bare_tmux_new_session"]:
        sc["warm_over_bare"] = round(sc["warm"]["median_ms"] / sc["bare_tmux_new_session"]["median_ms"], 2)
    if sc["cold"] and sc["bare_tmux_new_session_no_daemon"]:
        sc["cold_over_bare"] = round(sc["cold"]["median_ms"] / sc["bare_tmux_new_session_no_daemon"]["median_ms"], 2)

    # 7. pane commands vs bare tmux
    calls = {d["command"]: d["tmux_calls"] for d in by["pane_tmux_calls"] if isinstance(d, dict)}
    panes = {}
    for name in PANE_COMMANDS:
        tag = name.replace("pane-", "").replace("-", "_")
        c, b = stats_us(samples(f"pane_{tag}_ctb")), stats_us(samples(f"pane_{tag}_bare"))
        if not c or not b:
            continue
        panes[name] = {"ctb": c, "bare": b, "ratio_of_medians": round(c["median_ms"] / b["median_ms"], 2),
                       "ratio_of_p90": round(c["p90_ms"] / b["p90_ms"], 2), "ctb_tmux_calls": calls.get(name)}
    res["pane_commands"] = panes

    res["loadavg_by_section"] = {d["section"]: d["loadavg"] for d in by["load"]}

    # 6. parser
    res["parser"] = next(iter(by["parser"]), None)

    # targets
    g = lambda *path: _get(res, path)
    big = str(max(scale)) if scale else None
    rss1 = g("scale", "1", "rss_end", "vmrss_kib")
    rss_big = g("scale", big, "rss_end", "vmrss_kib") if big else None
    targets = [
        ("close-to-exit median <= 5 ms", g("close_to_exit", "cte_ctb", "median_ms"), lambda v: v <= 5, "ms"),
        ("close-to-exit p99 <= 20 ms", g("close_to_exit", "cte_ctb", "p99_ms"), lambda v: v <= 20, "ms"),
        (">= 50x faster than the baseline (medians)", g("close_to_exit", "ratio_of_medians"), lambda v: v >= 50, "x"),
        ("event latency median <= 5 ms", g("event_latency", "after_new_session_returns", "median_ms"), lambda v: v <= 5, "ms"),
        ("idle: zero CPU time per minute", g("idle", "ctb", "cpu_ns_schedstat"), lambda v: v == 0, "ns"),
        ("idle: zero processes spawned per minute", g("idle", "ctb", "processes_spawned_strace"), lambda v: v == 0, ""),
        ("RSS <= 4 MiB with 1 session", rss1, lambda v: v <= 4096, "KiB"),
        (f"RSS <= 16 MiB with {big} sessions" if big != "1000" else "RSS <= 16 MiB with 1000 sessions",
         rss_big if big == "1000" else None, lambda v: v <= 16384, "KiB"),
        ("reconcile at 1000 sessions <= 5 ms (median)", g("scale", "1000", "reconcile", "median_ms"), lambda v: v <= 5, "ms"),
        ("warm session-create <= 1.3x bare tmux new-session -d", g("session_create", "warm_over_bare"), lambda v: v <= 1.3, "x"),
    ]
    for name, p in panes.items():
        targets.append((f"{name} <= 1.3x bare tmux (medians)", p["ratio_of_medians"], lambda v: v <= 1.3, "x"))
    res["targets"] = [
        {"target": t, "value": v, "unit": u, "met": (None if v is None else bool(ok(v)))} for t, v, ok, u in targets
    ]

    os.makedirs(outdir, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    text = json.dumps(res, indent=2) + "\n"
    for name in (f"{stamp}.json", "latest.json"):
        tmp = os.path.join(outdir, name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(outdir, name))

    print(markdown(res, big))
    if res["loadavg_by_section"]:
        print("\nload average (1, 5, 15 min) at each section's start: " + "; ".join(
            f"{k}: {v}" for k, v in res["loadavg_by_section"].items()))
    print(f"\nresults: {os.path.join(outdir, stamp + '.json')} (and latest.json)")
    if failures:
        print(f"\n{len(failures)} failed attempt(s), retried: " + "; ".join(
            f"{x['where']}: {x['error'][:120].strip()}" for x in failures[:8]))


# The pane commands section 7 times, with the bare tmux invocation each
# is compared with (bench/run.sh's time_pair calls).
PANE_COMMANDS = {
    "pane-create": "split-window -P -F … cat ; set-option -p @ctb-label … ; select-layout tiled",
    "pane-list": "list-panes -s -F <13 fields>",
    "pane-find": "list-panes -s -F '#{pane_id} #{@ctb-label}'",
    "pane-count": "list-panes -s -F x",
    "pane-exec": "send-keys -l TEXT ; send-keys Enter",
    "pane-keys": "send-keys Escape",
    "pane-capture": "capture-pane -p -S -20",
    "pane-status": "display-message -p '#{pane_pid} #{pane_current_command} …'",
    "pane-metadata-set": "set-option -p @ctb-bench V",
    "pane-metadata-get": "show-options -p -v @ctb-meta",
    "pane-kill": "kill-pane",
}


def _get(d, path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def f(v, unit="", nd=2):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        v = round(v, nd)
    return f"{v}{(' ' + unit) if unit else ''}"


def markdown(res, big):
    m = res["meta"]
    g = lambda *p: _get(res, p)
    rows = []
    add = lambda *c: rows.append("| " + " | ".join(str(x) for x in c) + " |")
    rows.append("| measurement | ctb | polling baseline | target | met |")
    rows.append("|---|---|---|---|---|")
    tmet = {t["target"]: t["met"] for t in res["targets"]}
    mk = lambda k: {True: "yes", False: "**no**", None: "n/a"}[tmet.get(k)]

    c, b = g("close_to_exit", "cte_ctb") or {}, g("close_to_exit", "cte_baseline") or {}
    add(f"close-to-exit median (n={c.get('n')}/{b.get('n')})", f(c.get("median_ms"), "ms"), f(b.get("median_ms"), "ms"),
        "≤ 5 ms", mk("close-to-exit median <= 5 ms"))
    add("close-to-exit p95", f(c.get("p95_ms"), "ms"), f(b.get("p95_ms"), "ms"), "", "")
    add("close-to-exit p99", f(c.get("p99_ms"), "ms"), f(b.get("p99_ms"), "ms"), "≤ 20 ms", mk("close-to-exit p99 <= 20 ms"))
    add("baseline median / ctb median", f(g("close_to_exit", "ratio_of_medians"), "x"), "", "≥ 50x",
        mk(">= 50x faster than the baseline (medians)"))
    cs, bs = g("close_to_exit", "cte_ctb_from_kill_start") or {}, g("close_to_exit", "cte_baseline_from_kill_start") or {}
    add("close-to-exit from spawning `tmux kill-session`, median / p99",
        f"{f(cs.get('median_ms'), 'ms')} / {f(cs.get('p99_ms'), 'ms')}",
        f"{f(bs.get('median_ms'), 'ms')} / {f(bs.get('p99_ms'), 'ms')}", "", "")
    ck, bk = g("close_to_exit", "cte_ctb_keeper"), g("close_to_exit", "cte_baseline_keeper")
    if ck:
        add("close-to-exit median / p99, server kept up by an unwatched session",
            f"{f(ck['median_ms'], 'ms')} / {f(ck['p99_ms'], 'ms')}",
            f"{f(bk['median_ms'], 'ms')} / {f(bk['p99_ms'], 'ms')}" if bk else "n/a", "", "")
    e = g("event_latency", "after_new_session_returns") or {}
    add(f"event latency median (n={e.get('n')})", f(e.get("median_ms"), "ms"), "(≥ 0.5 s poll)", "≤ 5 ms",
        mk("event latency median <= 5 ms"))
    add("event latency p99", f(e.get("p99_ms"), "ms"), "", "", "")
    es, ec = g("event_latency", "from_new_session_spawn") or {}, g("event_latency", "tmux_new_session_cmd") or {}
    add("event latency from spawning tmux new-session, median / p99 (the tmux command alone: median)",
        f"{f(es.get('median_ms'), 'ms')} / {f(es.get('p99_ms'), 'ms')} ({f(ec.get('median_ms'), 'ms')})", "", "", "")
    ic, ib = g("idle", "ctb") or {}, g("idle", "baseline") or {}
    secs = ic.get("seconds") or ib.get("seconds")
    add(f"idle CPU time over {f(secs, 's', 0)} (schedstat; ticks)",
        f"{ic.get('cpu_ns_schedstat')} ns; {f(ic.get('cpu_ms'), 'ms')}",
        f"{f((ib.get('cpu_ns_schedstat') or 0) / 1e6, 'ms', 1)}; {f(ib.get('cpu_ms'), 'ms')} (incl. children)",
        "0", mk("idle: zero CPU time per minute"))
    add(f"idle context switches over {f(secs, 's', 0)}", ic.get("ctxt_switches"),
        f"{ib.get('ctxt_switches')} (long-lived processes only)", "", "")
    add(f"idle processes spawned over {f(secs, 's', 0)} (strace)", ic.get("processes_spawned_strace"),
        f"{ib.get('processes_spawned_strace')} ({g('idle', 'baseline_tmux_calls')} tmux calls)", "0",
        mk("idle: zero processes spawned per minute"))
    for n, s in (g("scale") or {}).items():
        rss = s.get("rss_end") or {}
        tgt = {"1": ("≤ 4 MiB", "RSS <= 4 MiB with 1 session"), "1000": ("≤ 16 MiB", "RSS <= 16 MiB with 1000 sessions")}
        t, k = tgt.get(n, ("", None))
        add(f"daemon VmRSS (VmHWM), {n} sessions", f"{f(rss.get('vmrss_kib'), 'KiB')} ({f(rss.get('vmhwm_kib'), 'KiB')})",
            "", t, mk(k) if k else "")
        r = s.get("reconcile") or {}
        add(f"reconcile (new session → watch event) median / p99, {n} sessions",
            f"{f(r.get('median_ms'), 'ms')} / {f(r.get('p99_ms'), 'ms')}", "", "≤ 5 ms" if n == "1000" else "",
            mk("reconcile at 1000 sessions <= 5 ms (median)") if n == "1000" else "")
        sc = s.get("session_create") or {}
        add(f"session-create median, {n} sessions", f(sc.get("median_ms"), "ms"), "", "", "")
        add(f"close-to-exit of the last session (from spawning kill-session), {n} sessions",
            f"{f(s.get('close_to_exit_last_ms'), 'ms')} ({f(s.get('close_to_exit_last_from_kill_start_ms'), 'ms')})",
            "", "", "")
        add(f"daemon start / ctb watch ready, {n} sessions",
            f"{f(s.get('daemon_start_ms'), 'ms')} / {f(s.get('watch_ready_ms'), 'ms')}", "", "", "")
    sc = g("session_create") or {}
    add("session-create cold (spawns the daemon), median", f((sc.get("cold") or {}).get("median_ms"), "ms"),
        f"bare: {f((sc.get('bare_tmux_new_session_no_daemon') or {}).get('median_ms'), 'ms')}", "", "")
    add("session-create warm, median", f((sc.get("warm") or {}).get("median_ms"), "ms"),
        f"bare: {f((sc.get('bare_tmux_new_session') or {}).get('median_ms'), 'ms')}", "≤ 1.3x bare",
        mk("warm session-create <= 1.3x bare tmux new-session -d"))
    add("warm session-create / bare tmux new-session -d", f(sc.get("warm_over_bare"), "x"), "", "≤ 1.3x", "")
    p = g("parser") or {}
    if "parser_mb_s" in p:
        add("parser throughput (naive split)", f"{f(p.get('parser_mb_s'), 'MB/s', 1)} ({f(p.get('naive_mb_s'), 'MB/s', 1)})",
            "", "", f"ratio {f(p.get('ratio'))}")
    else:
        add("parser throughput", p.get("skipped", "n/a"), "", "", "")
    if m.get("only") == "panes":
        rows = []  # BENCH_ONLY=panes: the other sections did not run
    pc = g("pane_commands") or {}
    if pc:
        rows.append("")
        rows.append("| pane command (bare tmux doing the same work) | ctb median / p90 | bare tmux median / p90 | "
                    "ratio of medians (p90s) | ctb's tmux calls | ≤ 1.3x |")
        rows.append("|---|---|---|---|---|---|")
        for name, p in pc.items():
            c, b = p["ctb"], p["bare"]
            add(f"`{name}` (`{PANE_COMMANDS[name]}`)", f"{f(c['median_ms'], 'ms')} / {f(c['p90_ms'], 'ms')}",
                f"{f(b['median_ms'], 'ms')} / {f(b['p90_ms'], 'ms')}",
                f"{f(p['ratio_of_medians'], 'x')} ({f(p['ratio_of_p90'], 'x')})", f(p.get("ctb_tmux_calls")),
                mk(f"{name} <= 1.3x bare tmux (medians)"))
    head = (f"{m.get('cpu')}, {m.get('nproc')} cores, kernel {m.get('kernel')}, {m.get('tmux')}, "
            f"ctb {str(m.get('ctb_commit'))[:10]}{' (dirty worktree)' if m.get('ctb_worktree_dirty') else ''}"
            f"{', BENCH_QUICK' if m.get('quick') else ''}, nice {m.get('nice')}, load average {m.get('loadavg_start')} at start, "
            f"{' '.join(m.get('loadavg_end') or [])} at end, {res['timestamp']}")
    return head + "\n\n" + "\n".join(rows)


if __name__ == "__main__":
    main()
