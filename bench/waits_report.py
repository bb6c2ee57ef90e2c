#!/usr/bin/env python3
"""bench/waits_report.py RAW.json OUTDIR LOADAVG_START NICE CTB_BINARY

Turns bench/waits.py's result into bench/results/waits-<UTC>.json,
bench/results/waits-latest.json and a markdown table on stdout.
"""
import json
import os
import subprocess
import sys
import time


def sh(*a):
    try:
        return subprocess.run(a, capture_output=True, text=True).stdout.strip()
    except Exception:
        return None


def main():
    raw, outdir, load_start, nice, binary = sys.argv[1:6]
    r = json.load(open(raw))
    meta = {
        "nproc": int(sh("nproc") or 0),
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), None),
        "kernel": sh("uname", "-r"),
        "tmux": sh("tmux", "-V"),
        "ctb_commit": sh("git", "rev-parse", "HEAD"),
        "ctb_version": sh(binary, "--version"),
        "nice": int(nice),
        "loadavg_start": load_start,
        "loadavg_end": " ".join(open("/proc/loadavg").read().split(" ")[:3]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    rows = []
    met = lambda ok: "yes" if ok else "**no**"
    f = lambda s, k="median_ms": f"{s[k]} ms" if s else "n/a"
    three = lambda s: f"{s['median_ms']} / {s['p90_ms']} / {s['p99_ms']} ms" if s else "n/a"
    if "latency" in r:
        L = r["latency"]
        c, p50, p500 = L["ctb"], L["poll50"], L["poll500"]
        rows.append(("printed → `wait-for --new` returned, median / p90 / p99 (n=%d)" % c["n"], three(c),
                     "median ≤ 5 ms, p99 ≤ 20 ms", met(c["median_ms"] <= 5 and c["p99_ms"] <= 20)))
        rows.append(("same, polling `capture-pane -p` every 50 ms (n=%d)" % p50["n"], three(p50), "", ""))
        rows.append(("same, polling every 500 ms (n=%d)" % p500["n"], three(p500), "", ""))
        rows.append(("poll 50 ms / ctb, poll 500 ms / ctb (medians)",
                     f"{p50['median_ms'] / c['median_ms']:.1f}x / {p500['median_ms'] / c['median_ms']:.1f}x", "", ""))
        if L.get("ctb_held"):
            rows.append(("same, the pane's relay held up by an idle waiter (no relay teardown as the waiter exits), n=%d" % L["ctb_held"]["n"],
                         three(L["ctb_held"]), "", ""))
        if L.get("stream"):
            rows.append(("printed → line read from a long-lived `pane-stream` (delivery alone, no process start/exit), n=%d" % L["stream"]["n"],
                         three(L["stream"]), "", ""))
        rows.append(("`wait-for` start → subscribed (not in the latency), median / p90 / p99", three(L["ctb_subscribe"]), "", ""))
    if "run" in r:
        R = r["run"]
        rows.append(("`ctb run -- true` wall time, median / p90 / p99 (n=%d)" % R["run_true"]["n"], three(R["run_true"]),
                     "overhead median ≤ 5 ms", met(R["run_true"]["median_ms"] <= 5)))
        rows.append(("`ctb run -- sleep 0.1` wall time − 100 ms", three(R["run_sleep"]), "", ""))
        rows.append(("`ctb run -- true`, relay already running (held by a pane-stream)", three(R["run_true_warm"]), "", ""))
        rows.append(("`wait-for --new --timeout 0` (start, subscribe, exit): cold / relay running",
                     f"{f(R['waitfor_t0'])} / {f(R['waitfor_t0_warm'])}", "", ""))
        rows.append(("fixed costs, medians: `ctb --version` / `tmux display-message -p` / `tmux send-keys` / `true`",
                     " / ".join(f(R[k]) for k in ("ctb_version", "tmux_display", "tmux_send_keys", "true")), "", ""))
    if "many" in r:
        M = r["many"]
        rows.append(("50 concurrent `wait-for` on 50 panes, printed → returned, median / p90 / p99 (n=%d)" % M["latency"]["n"],
                     three(M["latency"]), "p99 ≤ 20 ms", met(M["latency"]["p99_ms"] <= 20)))
        if M.get("latency_relays_held"):
            rows.append(("same, each relay held up by a second idle waiter (no relay teardown during the round), n=%d" % M["latency_relays_held"]["n"],
                         three(M["latency_relays_held"]), "", ""))
        rows.append(("50 waiters started → all 50 subscribed, median", f(M["subscribe_all"]), "", ""))
        rows.append(("waiter VmRSS, median per process / sum of 50",
                     f"{M['waiter_rss_kib']['median']} KiB / {M['waiter_rss_kib']['sum'] / 1024:.1f} MiB", "", ""))
        rows.append(("`ctb pane-relay` VmRSS, median per process / sum of 50",
                     f"{M['relay_rss_kib']['median']} KiB / {M['relay_rss_kib']['sum'] / 1024:.1f} MiB", "", ""))
        if M.get("waiter_mem_median_kib"):
            w, rl = M["waiter_mem_median_kib"], M["relay_mem_median_kib"]
            rows.append(("private memory (RssAnon) / Pss per process, median: waiter; relay",
                         f"{w['RssAnon']} / {w['Pss']} KiB; {rl['RssAnon']} / {rl['Pss']} KiB", "", ""))
            rows.append(("Pss sum of 50 waiters / of 50 relays (shared pages split among them)",
                         f"{M['waiter_pss_sum_kib'] / 1024:.1f} MiB / {M['relay_pss_sum_kib'] / 1024:.1f} MiB", "", ""))
    if "stream" in r:
        S = r["stream"]
        mb = S["bytes"] / 1e6
        rows.append((f"{mb:.0f} MB `cat` in a pane: not streamed / streamed by `pane-stream --raw`, reader counting bytes / reader also hashing (median)",
                     f"{f(S['plain'])} / {f(S['streamed'])} / {f(S['streamed_hashing'])}", "", ""))
        rows.append(("slowdown of the pane's program while streamed, median of the per-pair ratios (reader counting bytes; hashing)",
                     f"{S['slowdown']}x; {S['slowdown_hashing']}x (pairs: {', '.join(f'{q}x' for q in S['pair_ratios'])})",
                     "≤ 1.5x", met(S["slowdown"] <= 1.5)))
        rows.append(("stream throughput (bytes received / time from start to EOF)",
                     ", ".join(f"{t} MB/s" for t in S["throughput_mb_s"]), "", ""))
        rows.append(("lossless (sha256 equal, `\\r` aside; dropped bytes)",
                     ", ".join(f"{l['sha256_equal']}" for l in S["lossless"] if l["sha256_equal"] is not None)
                     + f"; dropped bytes {', '.join(str(l.get('dropped_bytes')) for l in S['lossless'])}", "", ""))
    print(f"\n{meta['cpu']}, {meta['nproc']} cores, kernel {meta['kernel']}, {meta['tmux']}, ctb {meta['ctb_commit'][:10]}, "
          f"nice {meta['nice']}, load average {meta['loadavg_start']} at start, {meta['loadavg_end']} at end, {meta['time']}\n")
    print("| measurement | ctb | target | met |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    out = {"meta": meta, "results": r}
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for name in (f"waits-{stamp}.json", "waits-latest.json"):
        with open(os.path.join(outdir, name), "w") as fh:
            json.dump(out, fh, indent=1)
            fh.write("\n")


if __name__ == "__main__":
    main()
