#!/usr/bin/env bash
# ctb quick demo: one watched session runs a short job; `ctb watch` prints
# the lifecycle events; the daemon is gone right after the session closes.
# Uses its own tmux socket, so it never touches your sessions. Its exit trap
# only kills its own session.
#
# Environment (all optional): CTB (the binary), CTB_DEMO_SOCKET (tmux -L
# name), CTB_DEMO_SESSION (session name), CTB_DEMO_JOB_TIMEOUT (seconds the
# job waits for its start signal, default 30: a demo killed with SIGKILL,
# whose trap cannot run, still leaves a session that ends by itself),
# CTB_DEMO_GATE (a tmux wait-for channel: once its watcher is watching, the
# demo prints "holding" and waits, at most CTB_DEMO_JOB_TIMEOUT seconds, for
# `tmux -L SOCKET wait-for -S GATE` before starting the job; the tests use
# it), CTB_DEMO_HOLD (seconds to sleep after starting the job).
set -euo pipefail
cd "$(dirname "$0")/.."
CTB=${CTB:-./target/release/ctb}
SOCK=${CTB_DEMO_SOCKET:-ctb-demo}
SESSION=${CTB_DEMO_SESSION:-demo-$$}
JOB_TIMEOUT=${CTB_DEMO_JOB_TIMEOUT:-30}
# The job's start signal, one channel per demo: demos sharing a server
# never start each other's job.
GO=demo-go-$$
ctb() { "$CTB" -L "$SOCK" -f /dev/null "$@"; }
cleanup() { ctb session-kill "$SESSION" >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
events=$(mktemp)
trap 'cleanup; rm -f "$events"' EXIT

# Waits (up to 10 s) until FILE has a line matching PATTERN; tail -f wakes
# on writes, so this is not a sleep loop.
wait_for() { (set +o pipefail; timeout 10 tail -n +1 -f "$1" | grep -q -m1 -- "$2"); }

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "ctb session-create: a detached session running a short job (the daemon starts by itself)"
ctb session-create "$SESSION" -- sh -c 'timeout "$1" tmux wait-for "$2"; for i in 1 2 3; do echo "step $i"; sleep 0.3; done' \
  sh "$JOB_TIMEOUT" "$GO"

say "ctb daemon status"
ctb daemon status

say "ctb watch $SESSION (in the background), then let the job run"
ctb watch "$SESSION" > "$events" &
watcher=$!
# Wait for the watcher to report it is watching (an event, with a deadline).
wait_for "$events" '"watching"' || { echo "ctb watch did not start" >&2; exit 1; }
if [ -n "${CTB_DEMO_GATE:-}" ]; then
  say "holding until: tmux -L $SOCK wait-for -S $CTB_DEMO_GATE"
  # In the background so a signal interrupts the wait at once.
  timeout "$JOB_TIMEOUT" tmux -L "$SOCK" -f /dev/null wait-for "$CTB_DEMO_GATE" &
  wait $! || true
fi
# (If someone killed the session meanwhile, the server may be gone: the
# events below say what happened.)
tmux -L "$SOCK" -f /dev/null wait-for -S "$GO" 2>/dev/null || true
${CTB_DEMO_HOLD:+sleep "$CTB_DEMO_HOLD"}

say "events seen by ctb watch (it exits when its last session closes)"
wait "$watcher"
cat "$events"

say "the daemon is gone"
ctb daemon wait --timeout 5 >/dev/null
ctb daemon status
if tmux -L "$SOCK" list-sessions >/dev/null 2>&1; then echo "tmux server still up"; else echo "tmux server $SOCK: gone (its last session closed)"; fi
