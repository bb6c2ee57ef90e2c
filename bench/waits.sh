#!/usr/bin/env bash
# The waits bench (issue 11): wait-for latency next to capture-pane polling,
# `ctb run` overhead, 50 concurrent waits, a 100 MB pane-stream.
#
#   bash bench/waits.sh                 # about 2 minutes
#   BENCH_QUICK=1 bash bench/waits.sh   # smoke run, about 30 s
#   WAITS_ONLY=13 bash bench/waits.sh   # only steps 1 and 3
#
# Called at the end of bench/run.sh (make bench). Prints a markdown table and
# writes bench/results/waits-<UTC timestamp>.json and waits-latest.json.
# Everything runs on one private tmux server (`tmux -L ctb-bench-waits-$$
# -f /dev/null`); the exit trap kills only that server (which ends the
# panes, hence their relays) and removes the work directory. Pane shells
# are `bash --norc --noprofile` (no rc files), pane programs python3.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
QUICK=${BENCH_QUICK:-0}
[[ $QUICK == 0 ]] && QUICK=
CTB=${CTB:-$ROOT/target/release/ctb}
unset TMUX TMUX_PANE
export TMUX_BIN=${TMUX_BIN:-tmux}
[[ -x $CTB ]] || cargo build --release
command -v tmux >/dev/null || { echo "tmux not found" >&2; exit 1; }

SOCK=ctb-bench-waits-$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ctb-waits.XXXXXX")
cleanup() {
    tmux -L "$SOCK" kill-server 2>/dev/null || true
    # A server gone this way can leave its socket file behind: remove ours.
    local f=${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/$SOCK
    if [[ -S $f ]] && ! tmux -L "$SOCK" has-session 2>/dev/null; then rm -f "$f"; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Measure a frozen copy (others may rebuild target/release/ctb meanwhile);
# the relays tmux starts run this copy too (ctb starts them as itself).
cp "$CTB" "$WORK/ctb"
NICE=${BENCH_NICE:--10}
if [[ $NICE != 0 ]] && renice -n "$NICE" -p $$ >/dev/null 2>&1; then :; else NICE=0; fi
[[ -n ${XDG_RUNTIME_DIR:-} && -d ${XDG_RUNTIME_DIR:-} ]] || { export XDG_RUNTIME_DIR=$WORK/run; mkdir -m 700 "$XDG_RUNTIME_DIR"; }
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
python3 bench/waits.py --ctb "$WORK/ctb" --socket "$SOCK" --work "$WORK" --out "$WORK/waits.json" \
    ${QUICK:+--quick} --only "${WAITS_ONLY:-1234}"
mkdir -p bench/results
python3 bench/waits_report.py "$WORK/waits.json" bench/results "$LOAD_START" "$NICE" "$CTB"
