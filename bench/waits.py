#!/usr/bin/env python3
"""bench/waits.py: the waits bench (issue 11), driven by bench/waits.sh.

    waits.py --ctb PATH --socket NAME --work DIR --out FILE [--quick]

Runs on the private tmux server NAME (created and killed by waits.sh).
Every latency is taken from a timestamp the pane's program prints itself
(bench/waits-mark.py: `MARK<k>:<CLOCK_MONOTONIC ns>`, on SIGUSR1) to the
moment the waiter's stdout reaches EOF (the waiter exited), read here with
a blocking select: no sleep loop sits in a measured path. The only loops
with sleeps are the settling steps between samples (waiting until a
waiter is subscribed, or until a relay has gone), which are not timed.
"""
import argparse
import json
import math
import os
import random
import selectors
import signal
import statistics
import subprocess
import sys
import time

A = None
TMUX = os.environ.get("TMUX_BIN", "tmux")
HERE = os.path.dirname(os.path.abspath(__file__))
MARK = os.path.join(HERE, "waits-mark.py")


def log(msg):
    print(f"[waits {time.strftime('%T')}] {msg}", file=sys.stderr, flush=True)


def tm(*args):
    return subprocess.run(
        [TMUX, "-L", A.socket, "-f", "/dev/null", *args], capture_output=True, text=True, check=True
    ).stdout


def now():
    return time.monotonic_ns()


def pct(xs, p):
    """Nearest-rank percentile."""
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def stats(xs_ns):
    """Stats in ms from ns samples."""
    if not xs_ns:
        return None
    ms = lambda v: round(v / 1e6, 3)
    return {
        "n": len(xs_ns),
        "median_ms": ms(pct(xs_ns, 50)),
        "p90_ms": ms(pct(xs_ns, 90)),
        "p99_ms": ms(pct(xs_ns, 99)),
        "min_ms": ms(min(xs_ns)),
        "max_ms": ms(max(xs_ns)),
        "mean_ms": ms(statistics.mean(xs_ns)),
    }


# --- processes of this server ------------------------------------------------

SOCKPATH = None


def procs_of_server():
    """{pid: argv} of ctb processes naming this server's socket."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            argv = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        # Relays name the socket path in hex (--socket-hex), others by -L.
        hexpath = f"/tmp/tmux-{os.getuid()}/{A.socket}".encode().hex().encode()
        names = any(A.socket.encode() in a or hexpath in a for a in argv)
        if names and any(b"ctb" in a for a in argv[:1]):
            out[int(p)] = argv
    return out


def relays():
    """{pane number: relay pid} on this server."""
    out = {}
    for pid, argv in procs_of_server().items():
        if len(argv) > 1 and argv[1] == b"pane-relay" and b"--pane" in argv:
            out[int(argv[argv.index(b"--pane") + 1])] = pid
    return out


# A relay's sockets besides its subscribers' (distinct inodes): its stdin
# (tmux's pipe), its listener, and the socket pair of tokio's signal driver.
RELAY_BASE_SOCKETS = 4


def sockets(pid):
    """Distinct socket inodes open in `pid` (-1: gone)."""
    seen = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:"):
                seen.add(link)
    except OSError:
        return -1
    return len(seen)


def mem_kib(pid):
    """VmRSS, RssAnon (from status) and Pss (from smaps_rollup), KiB."""
    m = {}
    try:
        for line in open(f"/proc/{pid}/status"):
            k = line.split(":")[0]
            if k in ("VmRSS", "RssAnon", "RssFile"):
                m[k] = int(line.split()[1])
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                m["Pss"] = int(line.split()[1])
    except OSError:
        return None
    return m


def vmrss_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None


def settle(cond, timeout=5.0, what="condition"):
    """Waits (not timed) until cond() is true."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise RuntimeError(f"timeout waiting for {what}")
        time.sleep(0.001)


def subscribed(panes, subs=1):
    """True once every pane in `panes` has a relay with `subs` subscribers
    (one socket each, past RELAY_BASE_SOCKETS). The relay subscribes a
    connection to its broadcast right when it accepts it (or, for the
    first subscriber, connects to it)."""
    r = relays()
    return all(p in r and sockets(r[p]) >= RELAY_BASE_SOCKETS + subs for p in panes)


def relays_gone(panes):
    r = relays()
    return not any(p in r for p in panes)


# --- the waiters ---------------------------------------------------------------


def collect(procs):
    """Reads every proc's stdout to EOF; returns [(eof time ns, stdout)]."""
    sel = selectors.DefaultSelector()
    bufs = {}
    ends = {}
    for i, p in enumerate(procs):
        sel.register(p.stdout, selectors.EVENT_READ, i)
        bufs[i] = b""
    left = len(procs)
    while left:
        events = sel.select(timeout=30)
        if not events:
            raise RuntimeError("a waiter did not return within 30 s")
        for key, _ in events:
            i = key.data
            b = os.read(key.fileobj.fileno(), 65536)
            if b:
                bufs[i] += b
            else:
                ends[i] = now()
                sel.unregister(key.fileobj)
                left -= 1
    for p in procs:
        p.wait()
    return [(ends.get(i), bufs[i]) for i in range(len(procs))]


def spawn(argv):
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


def ctb(*args):
    return [A.ctb, "-L", A.socket, *args]


def poller(pane, pattern, period):
    """A user's polling wait: capture-pane every `period` s, grep."""
    script = (
        'while :; do l=$(tmux -L "$1" capture-pane -p -t "$2" | grep -m1 -oE "$3[0-9]+"); '
        '[ -n "$l" ] && { echo "$l"; exit 0; }; sleep "$4"; done'
    )
    return ["bash", "--norc", "--noprofile", "-c", script, "poll", A.socket, pane, pattern, str(period)]


def mark_time(out):
    """The ns timestamp of the MARK line a waiter returned."""
    text = out.decode(errors="replace")
    try:
        j = json.loads(text.strip().splitlines()[-1])
        line = j.get("output") or ""
        if j.get("status") != "success":
            raise RuntimeError(f"waiter failed: {text[:300]}")
    except json.JSONDecodeError:
        line = text.strip()
    return int(line.split(":", 1)[1].split()[0])


class MarkPane:
    """A window running waits-mark.py."""

    def __init__(self, session, first=False):
        if first:
            tm("new-session", "-d", "-s", session, "-x", "120", "-y", "40", f"exec python3 {MARK}")
            self.id = tm("display-message", "-p", "-t", f"={session}:", "#{pane_id}").strip()
        else:
            self.id = tm("new-window", "-d", "-P", "-F", "#{pane_id}", "-t", f"={session}:", f"exec python3 {MARK}").strip()
        self.n = int(self.id[1:])
        self.k = 0
        self.pid = None

    def ready(self):
        """Waits until the program runs and has printed `ready`."""
        settle(lambda: "ready" in tm("capture-pane", "-p", "-t", self.id), what=f"{self.id} ready")
        self.pid = int(tm("display-message", "-p", "-t", self.id, "#{pane_pid}").strip())

    def next_pattern(self):
        return f"MARK{self.k + 1}:"

    def fire(self):
        self.k += 1
        os.kill(self.pid, signal.SIGUSR1)


# --- 1. output printed -> wait returned ----------------------------------------


def bench_latency(runs, poll_runs):
    log(f"1. printed -> returned: ctb wait-for --new ({runs}), polling 50 ms ({runs}), 500 ms ({poll_runs})")
    panes = {"ctb": MarkPane("lat", first=True), "poll50": MarkPane("lat"), "poll500": MarkPane("lat"),
             "stream": MarkPane("lat"), "ctb_held": MarkPane("lat")}
    for p in panes.values():
        p.ready()
    res = {k: [] for k in panes}
    subscribe = []
    # Investigation: one long-lived `pane-stream` (text lines) on its own
    # pane: the delivery alone (tmux -> relay -> ctb -> its stdout), with
    # no process start or exit in the path.
    st = subprocess.Popen(ctb("pane-stream", "lat", panes["stream"].id), stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL)
    settle(lambda: subscribed([panes["stream"].n]), what="stream subscribed")
    st_buf = b""
    # Investigation: an idle waiter holds the relay of the `ctb_held` pane,
    # so the measured waiter's exit does not make its relay tear down
    # (spawning `tmux pipe-pane`) while it exits.
    holder = spawn(ctb("wait-for", "lat", panes["ctb_held"].id, "NEVER-PRINTED", "--new", "--timeout", "600"))
    settle(lambda: subscribed([panes["ctb_held"].n]), what="holder subscribed")
    methods = ("ctb", "poll50", "poll500", "stream", "ctb_held")
    order = [m for i in range(runs) for m in methods if m != "poll500" or i < poll_runs]
    random.shuffle(order)
    for m in order:
        p = panes[m]
        pat = p.next_pattern()
        if m == "stream":
            time.sleep(0.01)
            p.fire()
            while pat.encode() not in st_buf:
                st_buf += os.read(st.stdout.fileno(), 65536)
            end = now()
            line = st_buf[st_buf.index(pat.encode()):].split(b"\n", 1)[0]
            st_buf = b""
            res[m].append(end - int(line.split(b":")[1]))
            continue
        if m in ("ctb", "ctb_held"):
            t0 = now()
            w = spawn(ctb("wait-for", "lat", p.id, pat, "--new", "--timeout", "10"))
            settle(lambda: subscribed([p.n], 2 if m == "ctb_held" else 1), what="subscription")
            if m == "ctb":
                subscribe.append(now() - t0)
            time.sleep(0.002)
        else:
            period = 0.05 if m == "poll50" else 0.5
            w = spawn(poller(p.id, pat, period))
            # Fire at a random phase of the polling period.
            time.sleep(0.05 + random.uniform(0, period))
        p.fire()
        ((end, out),) = collect([w])
        res[m].append(end - mark_time(out))
        if m == "ctb":
            settle(lambda: relays_gone([p.n]), what="relay exit")
    st.send_signal(signal.SIGINT)
    st.wait()
    holder.terminate()
    holder.wait()
    r = {k: stats(v) for k, v in res.items()}
    r["ctb_subscribe"] = stats(subscribe)
    r["samples_ns"] = res
    return r


# --- 2. run overhead -------------------------------------------------------------


def bench_run(runs):
    log(f"2. ctb run overhead ({runs} runs each)")
    tm("new-session", "-d", "-s", "run", "-x", "120", "-y", "40", "exec bash --norc --noprofile")
    pane = tm("display-message", "-p", "-t", "=run:", "#{pane_id}").strip()
    n = int(pane[1:])
    settle(lambda: tm("display-message", "-p", "-t", pane, "#{pane_current_command}").strip() == "bash", what="shell")

    def timed(argv, check_exit=True):
        t0 = now()
        cp = subprocess.run(argv, capture_output=True)
        t1 = now()
        if check_exit and cp.returncode != 0:
            raise RuntimeError(f"{argv}: {cp.returncode} {cp.stdout[:300]!r} {cp.stderr[:300]!r}")
        return t1 - t0

    res = {k: [] for k in ("run_true", "run_sleep", "run_true_warm", "waitfor_t0", "waitfor_t0_warm",
                          "ctb_version", "tmux_display", "tmux_send_keys", "true")}
    for i in range(runs):
        # Cold: this call starts the pane's relay.
        settle(lambda: relays_gone([n]), what="relay exit")
        res["run_true"].append(timed(ctb("run", "run", pane, "--", "true")))
        settle(lambda: relays_gone([n]), what="relay exit")
        res["run_sleep"].append(timed(ctb("run", "run", pane, "--", "sleep", "0.1")) - 100_000_000)
        settle(lambda: relays_gone([n]), what="relay exit")
        res["waitfor_t0"].append(timed(ctb("wait-for", "run", pane, "NEVER-PRINTED", "--new", "--timeout", "0"), False))
        # Warm: a pane-stream holds the relay, so run joins it.
        settle(lambda: relays_gone([n]), what="relay exit")
        s = subprocess.Popen(ctb("pane-stream", "run", pane), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        settle(lambda: subscribed([n]), what="stream subscribed")
        res["run_true_warm"].append(timed(ctb("run", "run", pane, "--", "true")))
        res["waitfor_t0_warm"].append(timed(ctb("wait-for", "run", pane, "NEVER-PRINTED", "--new", "--timeout", "0"), False))
        s.send_signal(signal.SIGINT)
        s.wait()
        # Fixed costs, for the breakdown.
        res["ctb_version"].append(timed([A.ctb, "--version"]))
        res["tmux_display"].append(timed([TMUX, "-L", A.socket, "display-message", "-p", "x"]))
        res["tmux_send_keys"].append(timed([TMUX, "-L", A.socket, "send-keys", "-t", pane, ""], False))
        res["true"].append(timed(["true"]))
    out = {k: stats(v) for k, v in res.items()}
    tm("kill-session", "-t", "=run")
    return out


# --- 3. 50 concurrent waits ---------------------------------------------------------


def bench_many(npanes, rounds, held_rounds):
    log(f"3. {npanes} concurrent wait-for on {npanes} panes ({rounds} rounds, {held_rounds} with the relays held)")
    panes = [MarkPane("many", first=True)] + [MarkPane("many") for _ in range(npanes - 1)]
    for p in panes:
        p.ready()
    lat = []
    lat_held = []
    failures = []
    subscribe_all = []
    rss = []
    fired_spread = []
    for r in range(rounds + held_rounds):
        held = r >= rounds
        holders = []
        if held:
            # Investigation: a second, idle waiter per pane keeps each relay
            # up, so no relay tears down (spawning `tmux pipe-pane`) while
            # the other waiters are still due.
            holders = [spawn(ctb("wait-for", "many", p.id, "NEVER-PRINTED", "--new", "--timeout", "60")) for p in panes]
            settle(lambda: subscribed([p.n for p in panes]), timeout=20, what="50 holders")
        t0 = now()
        ws = [spawn(ctb("wait-for", "many", p.id, p.next_pattern(), "--new", "--timeout", "20")) for p in panes]
        settle(lambda: subscribed([p.n for p in panes], 2 if held else 1), timeout=20, what="50 subscriptions")
        subscribe_all.append(now() - t0)
        time.sleep(0.01)
        if held:
            f0 = now()
            for p in panes:
                p.fire()
            for p, (end, out) in zip(panes, collect(ws)):
                try:
                    lat_held.append(end - mark_time(out))
                except RuntimeError as e:
                    failures.append({"pane": p.id, "k": p.k, "error": str(e)[:300],
                                     "screen_tail": tm("capture-pane", "-p", "-t", p.id).strip().splitlines()[-3:]})
                    log(f"   failure: {failures[-1]}")
            for h in holders:
                h.terminate()
            for h in holders:
                h.wait()
            settle(lambda: relays_gone([p.n for p in panes]), timeout=20, what="relays exit")
            continue
        procs = procs_of_server()
        wpids = {w.pid for w in ws}
        rel = relays()
        rss.append({
            "waiters_mem": [mem_kib(pid) for pid in wpids],
            "relays_mem": [mem_kib(pid) for pid in rel.values()],
            "waiters_kib": [vmrss_kib(pid) for pid in wpids],
            "relays_kib": [vmrss_kib(pid) for pid in rel.values()],
            "other_ctb": [(pid, b" ".join(a[:3]).decode(errors="replace"), vmrss_kib(pid))
                          for pid, a in procs.items() if pid not in wpids and pid not in rel.values()],
        })
        f0 = now()
        for p in panes:
            p.fire()
        fired_spread.append(now() - f0)
        for p, (end, out) in zip(panes, collect(ws)):
            try:
                lat.append(end - mark_time(out))
            except RuntimeError as e:
                failures.append({"pane": p.id, "k": p.k, "error": str(e)[:300],
                                 "screen_tail": tm("capture-pane", "-p", "-t", p.id).strip().splitlines()[-3:]})
                log(f"   failure: {failures[-1]}")
        settle(lambda: relays_gone([p.n for p in panes]), timeout=20, what="relays exit")
    tm("kill-session", "-t", "=many")
    sumk = lambda xs: sum(x for x in xs if x)
    last = rss[-1]
    return {
        "latency": stats(lat),
        "latency_relays_held": stats(lat_held),
        "failures": failures,
        "subscribe_all": stats(subscribe_all),
        "signal_spread": stats(fired_spread),
        "waiter_rss_kib": {"median": statistics.median(last["waiters_kib"]), "sum": sumk(last["waiters_kib"]),
                           "n": len(last["waiters_kib"])},
        "relay_rss_kib": {"median": statistics.median(last["relays_kib"]), "sum": sumk(last["relays_kib"]),
                          "n": len(last["relays_kib"])},
        "other_ctb_processes": last["other_ctb"],
        "waiter_mem_median_kib": {k: statistics.median(m[k] for m in last["waiters_mem"] if m)
                                  for k in ("VmRSS", "RssAnon", "RssFile", "Pss")},
        "relay_mem_median_kib": {k: statistics.median(m[k] for m in last["relays_mem"] if m)
                                 for k in ("VmRSS", "RssAnon", "RssFile", "Pss")},
        "waiter_pss_sum_kib": sum(m["Pss"] for m in last["waiters_mem"] if m),
        "relay_pss_sum_kib": sum(m["Pss"] for m in last["relays_mem"] if m),
        "samples_ns": lat,
    }


# --- 4. 100 MB stream ------------------------------------------------------------------


def dropped(err):
    """dropped_bytes from pane-stream's last (JSON) stderr line."""
    try:
        return json.loads(err.strip().splitlines()[-1]).get("dropped_bytes")
    except (ValueError, IndexError):
        return None


def bench_stream(mb, rounds):
    log(f"4. {mb} MB stream ({rounds} pairs: not streamed, streamed)")
    data = os.path.join(A.work, "flood.b64")
    if not os.path.exists(data):
        raw = mb * 1_000_000 * 3 // 4
        subprocess.run(f"head -c {raw} /dev/urandom | base64 > {data}", shell=True, check=True)
    import hashlib

    size = os.path.getsize(data)
    want = hashlib.sha256(open(data, "rb").read()).hexdigest()
    try:
        tm("new-session", "-d", "-s", "keep", "exec cat")
    except subprocess.CalledProcessError:
        pass
    res = {"plain": [], "streamed": [], "streamed_hashing": [], "throughput_mb_s": [], "lossless": []}
    # Pairs (plain, streamed) in random order within the pair, so that the
    # slowdown is a ratio within a pair (the machine's load drifts). The
    # streamed rounds' reader only counts bytes (a /dev/null-like
    # consumer), except the last pair's, which also checks the sha256.
    modes = []
    for i in range(rounds):
        pair = ["plain", "streamed_hashing" if i == rounds - 1 else "streamed"]
        random.shuffle(pair)
        modes += pair
    streamed_order = []
    for i, mode in enumerate(modes):
        fifo = os.path.join(A.work, f"go{i}")
        out = os.path.join(A.work, f"res{i}")
        for path in (fifo, out):
            if os.path.exists(path):
                os.unlink(path)
        os.mkfifo(fifo)
        prog = (f'read _ < {fifo}; s=$(date +%s%N); cat {data}; e=$(date +%s%N); echo "$s $e" > {out}')
        sess = f"flood{i}"
        tm("new-session", "-d", "-s", sess, "-x", "80", "-y", "24", "bash", "--norc", "--noprofile", "-c", prog)
        pane = tm("display-message", "-p", "-t", f"={sess}:", "#{pane_id}").strip()
        n = int(pane[1:])
        st = None
        if mode != "plain":
            st = subprocess.Popen(ctb("pane-stream", "--raw", sess, pane), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
            settle(lambda: subscribed([n]), what="stream subscribed")
        t0 = now()
        with open(fifo, "w") as f:
            f.write("go\n")
        if st:
            h = hashlib.sha256()
            got = 0
            fd = st.stdout.fileno()
            while True:
                b = os.read(fd, 1 << 20)
                if not b:
                    break
                got += len(b)
                if mode == "streamed_hashing":
                    h.update(b.replace(b"\r", b""))
            t1 = now()
            st.wait()
            err = st.stderr.read().decode(errors="replace")
            res["throughput_mb_s"].append(round(got / 1e6 / ((t1 - t0) / 1e9), 1))
            res["lossless"].append({"bytes_received": got, "sha256_equal": h.hexdigest() == want if mode == "streamed_hashing" else None,
                                    "exit": st.returncode, "dropped_bytes": dropped(err), "stderr_tail": err[-300:]})
        settle(lambda: os.path.exists(out) and os.path.getsize(out) > 0, timeout=300, what="flood done")
        s, e = map(int, open(out).read().split())
        res[mode].append(e - s)
        if mode != "plain":
            streamed_order.append((mode, e - s))
        log(f"   {mode}: cat took {(e - s) / 1e6:.0f} ms")
        try:
            tm("kill-session", "-t", f"={sess}")
        except subprocess.CalledProcessError:
            pass
    # Pairwise ratios: the i-th plain run with the i-th streamed run.
    ratios = [round(t / p, 2) for (m, t), p in zip(streamed_order, res["plain"])]
    r = {
        "bytes": size,
        "pair_ratios": ratios,
        "pair_modes": [m for m, _ in streamed_order],
        "plain": stats(res["plain"]),
        "streamed": stats(res["streamed"]),
        "streamed_hashing": stats(res["streamed_hashing"]),
        "slowdown": round(statistics.median([q for q, (m, _) in zip(ratios, streamed_order) if m == "streamed"] or ratios), 2),
        "slowdown_hashing": [q for q, (m, _) in zip(ratios, streamed_order) if m == "streamed_hashing"][0],
        "throughput_mb_s": res["throughput_mb_s"],
        "lossless": res["lossless"],
    }
    return r


def main():
    global A, SOCKPATH
    ap = argparse.ArgumentParser()
    ap.add_argument("--ctb", required=True)
    ap.add_argument("--socket", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="1234")
    A = ap.parse_args()
    q = A.quick
    # A keeper session keeps the server up between steps.
    tm("new-session", "-d", "-s", "keep", "exec cat")
    SOCKPATH = tm("display-message", "-p", "#{socket_path}").strip()
    result = {"quick": q}
    if "1" in A.only:
        result["latency"] = bench_latency(10 if q else 40, 5 if q else 20)
    if "2" in A.only:
        result["run"] = bench_run(5 if q else 30)
    if "3" in A.only:
        result["many"] = bench_many(50, 1 if q else 3, 1 if q else 2)
    if "4" in A.only:
        result["stream"] = bench_stream(20 if q else 100, 1 if q else 3)
    with open(A.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
