#!/usr/bin/env bash
# make bench: ctb's lifecycle daemon against the polling design it replaces.
#
#   bash bench/run.sh            # full run (< 10 minutes)
#   BENCH_QUICK=1 bash bench/run.sh   # smoke run (< 1 minute)
#   BENCH_ONLY=panes bash bench/run.sh   # only section 7 (pane commands)
#
# Prints a markdown table and writes bench/results/<UTC timestamp>.json and
# bench/results/latest.json. Every measurement runs on a private tmux server
# (`tmux -L ctb-bench-$$-N -f /dev/null`) with a private XDG_RUNTIME_DIR; the
# exit trap stops only the daemons of those sockets, kills only those
# servers and the background processes this script started.
# Timings come from bench/probe (pidfd / pipe waits, no sleep loops).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
QUICK=${BENCH_QUICK:-0}
[[ $QUICK == 0 ]] && QUICK=
# CTB=PATH measures another build (then CTB_COMMIT=SHA names its commit).
CTB=${CTB:-$ROOT/target/release/ctb}
CTB_COMMIT=${CTB_COMMIT:-}
PROBE=$ROOT/bench/probe/target/release/ctb-probe
BASELINE=$ROOT/bench/polling-baseline.sh
unset TMUX TMUX_PANE
export TMUX_BIN=${TMUX_BIN:-tmux}

if [[ $QUICK ]]; then
    CTE_RUNS=10 CTE_BASE_RUNS=5 EVENT_RUNS=10 IDLE_SECONDS=5 SIZES="1 100"
    RECONCILE_RUNS=5 SIZE_CREATE_RUNS=3 CREATE_RUNS=5 PANE_RUNS=10
else
    CTE_RUNS=50 CTE_BASE_RUNS=20 EVENT_RUNS=50 IDLE_SECONDS=60 SIZES="1 100 1000"
    RECONCILE_RUNS=20 SIZE_CREATE_RUNS=10 CREATE_RUNS=40 PANE_RUNS=40
fi
PANE_RUNS=${BENCH_PANE_RUNS:-$PANE_RUNS}
# BENCH_ONLY=panes: section 7 alone (the other sections' rows say n/a).
ONLY=${BENCH_ONLY:-}

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
# section N TEXT: logs a section's start and records the load average then.
section() {
    log "$2"
    printf '{"tag":"load","data":{"section":"%s","loadavg":"%s"}}\n' "$1" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW"
}

[[ -x $CTB ]] || cargo build --release
log "building bench/probe"
cargo build --release -q --manifest-path bench/probe/Cargo.toml
command -v tmux >/dev/null || { echo "tmux not found" >&2; exit 1; }

SOCKETS=()
NSOCK=0
WORK=
# cleanup: stops the daemons of our sockets and kills our servers, then our
# still-running background jobs (`jobs -p`: unreaped children of this
# shell, so a pid can never belong to someone else by then).
cleanup() {
    local p s
    for s in "${SOCKETS[@]}"; do
        timeout 20 "$CTB" -L "$s" daemon stop >/dev/null 2>&1 || true
        tmux -L "$s" kill-server 2>/dev/null || true
        # A crashed server leaves its socket file behind: remove ours.
        if [[ -S $TMUX_SOCKDIR/$s ]] && ! tmux -L "$s" has-session 2>/dev/null; then rm -f "$TMUX_SOCKDIR/$s"; fi
    done
    for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ -n $WORK ]] && rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
TMUX_SOCKDIR=${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ctb-bench.XXXXXX")
chmod 700 "$WORK"
# Measure a frozen copy: others may rebuild target/release/ctb meanwhile.
CTB_SRC=$CTB
cp "$CTB" "$WORK/ctb"
CTB=$WORK/ctb
# The machine may be shared (compilers, test suites): by default the bench
# and everything it starts run at nice -10 when allowed (BENCH_NICE=0: no).
NICE=${BENCH_NICE:--10}
if [[ $NICE != 0 ]] && renice -n "$NICE" -p $$ >/dev/null 2>&1; then :; else NICE=0; fi
export XDG_RUNTIME_DIR=$WORK/run
mkdir -m 700 "$XDG_RUNTIME_DIR"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
RAW=$WORK/raw.jsonl
: >"$RAW"

# new_socket: sets SOCK to a fresh private socket name and remembers it.
new_socket() {
    NSOCK=$((NSOCK + 1))
    SOCK=ctb-bench-$$-$NSOCK
    SOCKETS+=("$SOCK")
}
ctb() { timeout 60 "$CTB" -L "$SOCK" -f /dev/null "$@"; }
tm() { tmux -L "$SOCK" -f /dev/null "$@"; }
# rec TAG JSON: one raw measurement (to $REC, normally the raw file).
REC=$RAW
rec() { printf '{"tag":"%s","data":%s}\n' "$1" "${2:-null}" >>"$REC"; }
# jstr TEXT: TEXT as a JSON string.
jstr() { printf '%s' "$1" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))'; }
# fail WHERE TEXT: a failed attempt (retried). tmux 3.3a's server crashes
# now and then while a control client attaches (see docs/performance.md);
# such attempts are counted, not hidden.
FAILS=0
fail() {
    FAILS=$((FAILS + 1))
    printf '{"tag":"failure","data":{"where":"%s","socket":"%s","error":%s}}\n' "$1" "$SOCK" "$(jstr "$2")" >>"$RAW"
    log "attempt failed ($1): $(printf '%s' "$2" | head -c 200)"
}
ok() { [[ -n $1 && $1 != *'"error"'* ]]; }
# reset_socket: after a failed attempt, leave nothing running on $SOCK.
reset_socket() {
    timeout 20 "$CTB" -L "$SOCK" daemon stop >/dev/null 2>&1 || true
    tm kill-server 2>/dev/null || true
}
# pid_of TEXT: the daemon_pid (or pid) inside a ctb JSON answer, escaped or not.
pid_of() {
    if [[ $1 =~ daemon_pid[^0-9]*([0-9]+) ]] || [[ $1 =~ \"pid[^0-9]*([0-9]+) ]]; then
        echo "${BASH_REMATCH[1]}"
    else
        return 1
    fi
}
# probe ARGS...: runs the probe; on failure records the error and returns 1.
probe() { "$PROBE" "$@"; }
# wait_daemon_gone: until this socket's daemon has exited.
wait_daemon_gone() { ctb daemon wait --timeout 10 >/dev/null 2>&1 || true; }
# make_sessions N PREFIX: N detached sessions running `cat`, marked watched,
# 100 per tmux invocation.
make_sessions() {
    local n=$1 prefix=$2 i args=()
    for ((i = 1; i <= n; i++)); do
        ((${#args[@]})) && args+=(";")
        args+=(new-session -d -s "$prefix$i" cat ";" set-option @ctb-watched 1)
        if ((i % 100 == 0 || i == n)); then
            tm "${args[@]}" >/dev/null
            args=()
        fi
    done
}
# kill_sessions FROM TO PREFIX: kill-session for PREFIX{FROM..TO}, 100 per call.
kill_sessions() {
    local from=$1 to=$2 prefix=$3 i args=() k=0
    for ((i = from; i <= to; i++)); do
        ((${#args[@]})) && args+=(";")
        args+=(kill-session -t "=$prefix$i")
        k=$((k + 1))
        if ((k % 100 == 0 || i == to)); then
            tm "${args[@]}" >/dev/null 2>&1 || true
            args=()
        fi
    done
}
# create_watched NAME: ctb session-create NAME (3 tries); prints the daemon pid.
create_watched() {
    local out try
    for try in 1 2 3; do
        out=$(ctb session-create "$1" -- cat 2>&1) || true
        if pid_of "$out"; then return 0; fi
        fail "session-create $1" "$out"
        reset_socket
    done
    return 1
}
random_phase() { printf '0.%03d' $((RANDOM % 1000)); }

# ---------------------------------------------------------------------------
if [[ $ONLY != panes ]]; then # sections 1 to 6
section 1 "1. close-to-exit latency: ctb daemon ($CTE_RUNS runs, server exits with the session)"
# cte_ctb TAG KEEPER RUNS: session-create, then time the kill to the
# daemon's exit; KEEPER=1 keeps the server up with an unwatched session.
cte_ctb() {
    local tag=$1 keeper=$2 runs=$3 got=0 tries=0 out pid r
    new_socket
    while ((got < runs && tries < 2 * runs + 3)); do
        tries=$((tries + 1))
        if [[ $keeper == 1 ]] && ! tm has-session -t =keep 2>/dev/null; then tm new-session -d -s keep cat; fi
        out=$(probe time -- "$CTB" -L "$SOCK" -f /dev/null session-create "c$tries" -- cat 2>&1) || true
        if ! pid=$(pid_of "$out"); then
            fail "$tag/session-create" "$out"; reset_socket; continue
        fi
        [[ $keeper == 1 ]] || rec session_create_new_server "$out"
        r=$(probe close-to-exit "$SOCK" "c$tries" "$pid" 2>/dev/null) || true
        if ok "$r"; then rec "$tag" "$r"; got=$((got + 1)); else fail "$tag" "$r"; reset_socket; fi
        wait_daemon_gone
    done
    tm kill-server 2>/dev/null || true
}
cte_ctb cte_ctb 0 "$CTE_RUNS"
section 1b "1b. close-to-exit latency: ctb daemon, an unwatched session keeps the server up ($CTE_RUNS runs)"
cte_ctb cte_ctb_keeper 1 "$CTE_RUNS"

# baseline_cte TAG KEEPER RUNS: the polling loop, killed at a random phase of
# its 0.5 s period (it is started, then the kill comes 0.5-1.5 s later).
baseline_cte() {
    local tag=$1 keeper=$2 runs=$3 got=0 tries=0 bpid r
    new_socket
    while ((got < runs && tries < 2 * runs + 3)); do
        tries=$((tries + 1))
        if [[ $keeper == 1 ]] && ! tm has-session -t =keep 2>/dev/null; then tm new-session -d -s keep cat; fi
        tm new-session -d -s "b$tries" cat
        printf 'b%s\n' "$tries" >"$WORK/active-$SOCK"
        bash "$BASELINE" "$SOCK" "$WORK/active-$SOCK" &
        bpid=$!
        sleep 0.5
        sleep "$(random_phase)"
        r=$(probe close-to-exit "$SOCK" "b$tries" "$bpid" 2>/dev/null) || true
        if ok "$r"; then rec "$tag" "$r"; got=$((got + 1)); else fail "$tag" "$r"; kill "$bpid" 2>/dev/null || true; fi
        wait "$bpid" 2>/dev/null || true
    done
    tm kill-server 2>/dev/null || true
}
section 1c "1c. close-to-exit latency: polling baseline ($CTE_BASE_RUNS runs)"
baseline_cte cte_baseline 0 "$CTE_BASE_RUNS"
if [[ ! $QUICK ]]; then
    section 1d "1d. close-to-exit latency: polling baseline, server kept up ($CTE_BASE_RUNS runs)"
    baseline_cte cte_baseline_keeper 1 "$CTE_BASE_RUNS"
fi

# ---------------------------------------------------------------------------
section 2 "2. event latency: tmux new-session -> session-created on ctb watch ($EVENT_RUNS runs)"
new_socket
for try in 1 2 3; do
    ctb session-create keep -- cat >/dev/null 2>&1 || true
    r=$(probe event-latency "$SOCK" "$CTB" "$EVENT_RUNS" "ev$try" 1 2>/dev/null) || true
    if ok "$r"; then rec event "$r"; break; fi
    fail event "$r"
    reset_socket
done
reset_socket

# ---------------------------------------------------------------------------
section 3 "3. idle cost over ${IDLE_SECONDS}s, one watched session (4 servers side by side)"
# Measured: ctb daemon (S_CTB) and baseline (S_BASE), through /proc.
# Counted: processes started, with strace attached to twins (S_CTB2,
# S_BASE2), so that ptrace does not disturb the CPU and switch numbers.
new_socket; S_CTB=$SOCK
die() { log "$*"; exit 1; }
P_CTB=$(create_watched idle) || die "ctb session-create keeps failing (see the failures above); aborting"
new_socket; S_CTB2=$SOCK
P_CTB2=$(create_watched idle) || die "ctb session-create keeps failing (see the failures above); aborting"
start_baseline() {
    tm new-session -d -s idle cat
    echo idle >"$WORK/active-$SOCK"
    BASELINE_COUNTER=$WORK/calls-$SOCK bash "$BASELINE" "$SOCK" "$WORK/active-$SOCK" &
    BPID=$!
}
new_socket; S_BASE=$SOCK; start_baseline; P_BASE=$BPID
new_socket; S_BASE2=$SOCK; start_baseline; P_BASE2=$BPID
sleep 1
tree_pids() { "$PROBE" rss "$1" | python3 -c 'import json,sys; print(" ".join(str(m["pid"]) for m in json.load(sys.stdin)["tree"]))'; }
strace_pids() { local p a=(); for p in $(tree_pids "$1"); do a+=(-p "$p"); done; echo "${a[@]}"; }
STRACE=
if command -v strace >/dev/null; then
    STRACE=1
    # shellcheck disable=SC2046
    timeout -s INT "$IDLE_SECONDS" strace -f -qq -e trace=clone,clone3,fork,vfork -e signal=none \
        -o "$WORK/strace-ctb" $(strace_pids "$P_CTB2") 2>/dev/null &
    ST1=$!
    # shellcheck disable=SC2046
    timeout -s INT "$IDLE_SECONDS" strace -f -qq -e trace=clone,clone3,fork,vfork -e signal=none \
        -o "$WORK/strace-base" $(strace_pids "$P_BASE2") 2>/dev/null &
    ST2=$!
fi
calls0=$(cat "$WORK/calls-$S_BASE" 2>/dev/null || echo 0)
probe idle "$P_CTB" "$IDLE_SECONDS" >"$WORK/idle-ctb" &
I1=$!
probe idle "$P_BASE" "$IDLE_SECONDS" >"$WORK/idle-base" &
I2=$!
wait "$I1" || true
wait "$I2" || true
calls1=$(cat "$WORK/calls-$S_BASE" 2>/dev/null || echo 0)
rec idle_ctb "$(cat "$WORK/idle-ctb")"
rec idle_baseline "$(cat "$WORK/idle-base")"
rec idle_baseline_tmux_calls "$((calls1 - calls0))"
# strace_count FILE: processes (clone/fork without CLONE_THREAD) and threads.
strace_count() {
    local f=$1
    [[ -f $f ]] || { echo null; return; }
    python3 - "$f" <<'EOF'
import json, re, sys
procs = threads = 0
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"\b(clone3?|v?fork)\(", line)
    if not m or "resumed>" in line[: m.start()]:
        continue
    if "CLONE_THREAD" in line:
        threads += 1
    else:
        procs += 1
print(json.dumps({"processes": procs, "threads": threads}))
EOF
}
if [[ $STRACE ]]; then
    # timeout's 124 means strace traced the whole window (an attach
    # failure would end it at once with another status).
    rc1=0 rc2=0
    wait "$ST1" 2>/dev/null || rc1=$?
    wait "$ST2" 2>/dev/null || rc2=$?
    [[ $rc1 == 124 ]] || rm -f "$WORK/strace-ctb"
    [[ $rc2 == 124 ]] || rm -f "$WORK/strace-base"
    rec idle_ctb_strace "$(strace_count "$WORK/strace-ctb")"
    rec idle_baseline_strace "$(strace_count "$WORK/strace-base")"
fi
rec idle_ctb_rss "$(probe rss "$P_CTB")"
for SOCK in "$S_CTB" "$S_CTB2"; do ctb session-kill idle >/dev/null; wait_daemon_gone; done
for SOCK in "$S_BASE" "$S_BASE2"; do tm kill-server 2>/dev/null || true; done
wait "$P_BASE" "$P_BASE2" 2>/dev/null || true

# ---------------------------------------------------------------------------
# scale_run N: one attempt at size N; its records go to $REC (a temp file,
# kept only if the attempt succeeds).
scale_run() {
    local n=$1 t0 t1 out pid st watched left i r
    new_socket
    t0=$(date +%s%N)
    make_sessions "$n" s
    t1=$(date +%s%N)
    out=$(probe time -- "$CTB" -L "$SOCK" -f /dev/null daemon start 2>&1) || true
    pid=$(pid_of "$out") || { fail "scale $n daemon start" "$out"; return 1; }
    st=$(ctb daemon status 2>&1) || true
    watched=$(printf '%s' "$st" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["watched"]))') ||
        { fail "scale $n daemon status" "$st"; return 1; }
    rec scale "{\"n\":$n,\"what\":\"setup\",\"make_sessions_ms\":$(((t1 - t0) / 1000000)),\"watched\":$watched,\"daemon_start\":$out}"
    rec scale "{\"n\":$n,\"what\":\"rss_start\",\"rss\":$(probe rss "$pid")}"
    r=$(probe event-latency "$SOCK" "$CTB" "$RECONCILE_RUNS" ev "$n" 2>/dev/null) || true
    ok "$r" || { fail "scale $n reconcile" "$r"; return 1; }
    rec scale "{\"n\":$n,\"what\":\"reconcile\",\"lat\":$r}"
    for ((i = 1; i <= SIZE_CREATE_RUNS; i++)); do
        r=$(probe time -- "$CTB" -L "$SOCK" -f /dev/null session-create "x$i" -- cat 2>&1) || true
        pid_of "$r" >/dev/null || { fail "scale $n session-create" "$r"; return 1; }
        rec scale "{\"n\":$n,\"what\":\"session_create\",\"t\":$r}"
        ctb session-kill "x$i" >/dev/null
        sleep 0.05 # settling (see time_create)
    done
    rec scale "{\"n\":$n,\"what\":\"rss_end\",\"rss\":$(probe rss "$pid")}"
    # Close all but s1 (100 sessions per tmux call), let the daemon catch up
    # (status answers from a model in sync with tmux), then time the last.
    t0=$(date +%s%N)
    if ((n > 1)); then kill_sessions 2 "$n" s; fi
    st=$(ctb daemon status 2>&1) || true
    t1=$(date +%s%N)
    left=$(printf '%s' "$st" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["watched"]))') ||
        { fail "scale $n close all but one" "$st"; return 1; }
    rec scale "{\"n\":$n,\"what\":\"close_all_but_one\",\"ms\":$(((t1 - t0) / 1000000)),\"watched_after\":$left}"
    r=$(probe close-to-exit "$SOCK" s1 "$pid" 2>/dev/null) || true
    ok "$r" || { fail "scale $n close-to-exit" "$r"; return 1; }
    rec scale "{\"n\":$n,\"what\":\"cte_last\",\"r\":$r}"
    wait_daemon_gone
    tm kill-server 2>/dev/null || true
}
for n in $SIZES; do
    for try in 1 2; do
        section "4-$n" "4. scale: $n watched sessions$([[ $try == 1 ]] || echo " (retry)")"
        REC=$WORK/scale.tmp
        : >"$REC"
        if scale_run "$n"; then
            REC=$RAW
            cat "$WORK/scale.tmp" >>"$RAW"
            break
        fi
        REC=$RAW
        reset_socket
    done
done

# ---------------------------------------------------------------------------
section 5 "5. session-create: cold, warm, bare tmux new-session -d ($CREATE_RUNS runs each)"
# Every session in this script runs `cat`: a login shell's startup files
# (pyenv, ...) would compete with what is measured for the CPUs.
# time_create TAG NAME CMD...: one timed sample, retried (3 tries) if the
# command fails; the session is killed afterwards (not timed).
time_create() {
    local tag=$1 name=$2 r try
    shift 2
    for try in 1 2 3; do
        tm has-session -t =keep 2>/dev/null || tm new-session -d -s keep cat
        r=$(probe time -- "$@" 2>&1) || true
        if ok "$r" && [[ $r == *'"status":0'* ]]; then
            rec "$tag" "$r"
            tm kill-session -t "=$name" 2>/dev/null || true
            # Let the daemon's reaction to that kill (a relisting) pass
            # before the next sample: settling, not timing.
            sleep 0.05
            return 0
        fi
        fail "$tag" "$r"
        reset_socket
    done
}
new_socket
tm new-session -d -s keep cat # unwatched: keeps the server up, no daemon
for ((i = 1; i <= CREATE_RUNS; i++)); do
    wait_daemon_gone
    time_create create_cold "cold$i" "$CTB" -L "$SOCK" -f /dev/null session-create "cold$i" -- cat
    wait_daemon_gone
    time_create create_bare_nodaemon "bare$i" tmux -L "$SOCK" -f /dev/null new-session -d -s "bare$i" cat
done
for ((i = 1; i <= CREATE_RUNS; i++)); do
    # The daemon stays up: warm0 stays watched.
    tm has-session -t =warm0 2>/dev/null || create_watched warm0 >/dev/null
    time_create create_bare "bare$i" tmux -L "$SOCK" -f /dev/null new-session -d -s "bare$i" cat
    time_create create_warm "warm$i" "$CTB" -L "$SOCK" -f /dev/null session-create "warm$i" -- cat
done
reset_socket

# ---------------------------------------------------------------------------
if [[ -f parser/examples/throughput.rs ]]; then
    section 6 "6. parser throughput"
    if line=$(timeout 300 cargo run --release -q -p tmux-control --example throughput 2>"$WORK/throughput.err" | tail -n 1) &&
        printf '%s' "$line" | python3 -c 'import json,sys; json.loads(sys.stdin.read())' 2>/dev/null; then
        rec parser "$line"
    else
        rec parser "{\"skipped\":\"the example failed: $(head -c 200 "$WORK/throughput.err" | tr '\n"\\' '   ')\"}"
    fi
else
    log "6. parser throughput: skipped (parser/examples/throughput.rs does not exist yet)"
    rec parser '{"skipped":"parser/examples/throughput.rs does not exist"}'
fi
fi # sections 1 to 6

# ---------------------------------------------------------------------------
section 7 "7. pane commands vs the bare tmux invocation doing the same work ($PANE_RUNS runs each, interleaved)"
# Every pair is timed by the probe (spawn to exit), ctb and bare tmux
# alternating, on one server with a session `p` of 3 panes running `cat`
# (a bash pane's prompt would compete for the CPUs). Setup and cleanup of
# a sample (the pane pane-kill kills, removing the pane pane-create made)
# are not timed.
# time_pair TAG CTB_ARGS... -- TMUX_ARGS...: one sample of each, retried
# (3 tries) if a command fails; the probe's JSON goes to pane_TAG_ctb /
# pane_TAG_bare. After it, CREATED holds what each one printed.
time_pair() {
    local tag=$1 try r side args=() ctb_args=() bare_args=()
    shift
    while [[ $1 != -- ]]; do ctb_args+=("$1"); shift; done
    shift
    bare_args=("$@")
    CREATED=()
    for side in ctb bare; do
        if [[ $side == ctb ]]; then args=("$CTB" -L "$SOCK" -f /dev/null "${ctb_args[@]}"); else args=(tmux -L "$SOCK" -f /dev/null "${bare_args[@]}"); fi
        for try in 1 2 3; do
            r=$(probe time -- "${args[@]}" 2>&1) || true
            if ok "$r" && [[ $r == *'"status":0'* ]]; then
                rec "pane_${tag}_$side" "$r"
                CREATED+=("$r")
                break
            fi
            fail "pane $tag $side" "$r"
        done
    done
}
# new_pane: a pane of `p` running cat (not timed); prints its id.
new_pane() { tm split-window -d -t "$WIN" -P -F '#{pane_id}' cat \; select-layout -t "$WIN" tiled; }
# pane_of TEXT: the first %N in TEXT (a pane id in a probe's JSON).
pane_of() { [[ $1 =~ (%[0-9]+) ]] && echo "${BASH_REMATCH[1]}"; }
new_socket
tm new-session -d -s p -x 200 -y 60 cat
WIN=$(tm display-message -p -t '=p:' '#{window_id}')
W=$(ctb pane-create p worker -- cat)
W=$(pane_of "${W#*pane_id}")
tm split-window -d -t "$WIN" cat
PANE_FMT='#{pane_id} #{pane_index} #{window_id} #{pane_pid} #{pane_dead} #{pane_dead_status} #{pane_width} #{pane_height} #{@ctb-label} #{@ctb-meta} #{pane_title}'
ctb pane-metadata-set p "$W" k v >/dev/null
for ((i = 1; i <= PANE_RUNS; i++)); do
    # pane-create: split, label, layout (one tmux invocation either way).
    time_pair create pane-create p "new$i" -- \
        split-window -t "$WIN" -P -F '#{pane_id} #{pane_index}' cat \; set-option -p @ctb-label "new$i" \; select-layout -t "$WIN" tiled
    for r in "${CREATED[@]}"; do
        # The JSON's stdout field holds the new pane's id: remove it.
        p=$(pane_of "${r#*stdout}") && tm kill-pane -t "$p" 2>/dev/null || true
    done
    time_pair list pane-list p -- list-panes -s -t '=p' -F "$PANE_FMT"
    time_pair find pane-find p worker -- list-panes -s -t '=p' -F '#{pane_id} #{@ctb-label}'
    time_pair count pane-count p -- list-panes -s -t '=p' -F x
    time_pair exec pane-exec p "$W" "hello $i" -- send-keys -t "$W" -l "hello $i" \; send-keys -t "$W" Enter
    time_pair keys pane-keys p "$W" Escape -- send-keys -t "$W" Escape
    time_pair capture pane-capture p "$W" 20 -- capture-pane -p -t "$W" -S -20
    time_pair status pane-status p "$W" -- display-message -p -t "$W" '#{pane_pid} #{pane_current_command} #{pane_dead} #{pane_dead_status}'
    time_pair metadata_set pane-metadata-set p "$W" k "v$i" -- set-option -p -t "$W" @ctb-bench "v$i"
    time_pair metadata_get pane-metadata-get p "$W" k -- show-options -p -v -t "$W" @ctb-meta
    # pane-kill: a fresh pane for each side (made and laid out untimed).
    K1=$(new_pane) K2=$(new_pane)
    time_pair kill pane-kill p "$K1" -- kill-pane -t "$K2"
done
# How many tmux invocations each ctb command makes (strace, one run each).
if command -v strace >/dev/null; then
    K1=$(new_pane)
    for c in "pane-create p counted -- cat" "pane-list p" "pane-find p worker" "pane-count p" "pane-exec p $W hi" \
        "pane-keys p $W Escape" "pane-capture p $W 20" "pane-status p $W" "pane-metadata-set p $W k v" \
        "pane-metadata-get p $W k" "pane-kill p $K1"; do
        # shellcheck disable=SC2086
        strace -f -qq -z -e trace=execve -e signal=none -o "$WORK/strace-pane" "$CTB" -L "$SOCK" -f /dev/null $c >/dev/null 2>&1 || true
        n=$(grep -c 'execve("[^"]*/tmux"' "$WORK/strace-pane" || true)
        rec pane_tmux_calls "{\"command\":\"${c%% *}\",\"tmux_calls\":$n}"
    done
fi
reset_socket

# ---------------------------------------------------------------------------
mkdir -p bench/results
META=$(python3 - <<EOF
import json, os, subprocess, time
def sh(*a):
    try: return subprocess.run(a, capture_output=True, text=True).stdout.strip()
    except Exception: return None
dirty = sh("git", "status", "--porcelain", "--untracked-files=no")
print(json.dumps({
    "nproc": int(sh("nproc") or 0),
    "cpu": next((l.split(":",1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), None),
    "kernel": sh("uname", "-r"),
    "tmux": sh("tmux", "-V"),
    "ctb_commit": "$CTB_COMMIT" or sh("git", "rev-parse", "HEAD"),
    "ctb_worktree_dirty": False if "$CTB_COMMIT" else bool(dirty),
    "ctb_version": sh("$CTB", "--version"),
    "ctb_binary": "$CTB_SRC",
    "ctb_binary_built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.path.getmtime("$CTB_SRC"))),
    "quick": bool("$QUICK"),
    "nice": int("$NICE"),
    "loadavg_start": "$LOAD_START",
    "loadavg_end": open("/proc/loadavg").read().split(" ")[:3],
    "runs": {"close_to_exit": $CTE_RUNS, "close_to_exit_baseline": $CTE_BASE_RUNS, "event": $EVENT_RUNS,
             "idle_seconds": $IDLE_SECONDS, "sizes": [int(x) for x in "$SIZES".split()],
             "reconcile": $RECONCILE_RUNS, "size_session_create": $SIZE_CREATE_RUNS, "session_create": $CREATE_RUNS,
             "pane_commands": $PANE_RUNS},
    "only": "$ONLY" or None,
}))
EOF
)
python3 bench/report.py "$RAW" "$META" bench/results
CTB=$CTB bash bench/waits.sh # the waits bench (issue 11): its own table and bench/results/waits-*.json
