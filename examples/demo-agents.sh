#!/usr/bin/env bash
# ctb agents demo: several concurrent "agent" sessions on one tmux server,
# each running a job of a different length; `ctb watch` prints the events as
# they happen; the daemon stays while any agent is alive and is gone right
# after the last one closes.
# Uses its own tmux socket, so it never touches your sessions. Its exit trap
# only kills its own sessions.
#
# Environment (all optional): CTB (the binary), CTB_DEMO_SOCKET (tmux -L
# name, default ctb-demo-agents), CTB_DEMO_AGENTS (how many, default 4),
# CTB_DEMO_JOB_TIMEOUT (seconds a job waits for its start signal, default
# 30, so sessions end by themselves even if this script is SIGKILLed),
# CTB_DEMO_STEP (seconds per work step, default 0.2).
set -euo pipefail
cd "$(dirname "$0")/.."
CTB=${CTB:-./target/release/ctb}
SOCK=${CTB_DEMO_SOCKET:-ctb-demo-agents}
AGENTS=${CTB_DEMO_AGENTS:-4}
JOB_TIMEOUT=${CTB_DEMO_JOB_TIMEOUT:-30}
STEP=${CTB_DEMO_STEP:-0.2}
ctb() { "$CTB" -L "$SOCK" -f /dev/null "$@"; }

sessions=()
for i in $(seq 1 "$AGENTS"); do sessions+=("agent-$i-$$"); done
events=$(mktemp)
cleanup() {
  for s in "${sessions[@]}"; do ctb session-kill "$s" >/dev/null 2>&1 || true; done
  rm -f "$events"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits (up to 10 s) until FILE has a line matching PATTERN; tail -f wakes
# on writes, so this is not a sleep loop.
wait_for() { (set +o pipefail; timeout 10 tail -n +1 -f "$1" | grep -q -m1 -- "$2"); }

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "ctb session-create: $AGENTS agents, agent i works 3*i steps of $STEP s (each waits for its start signal)"
for i in $(seq 1 "$AGENTS"); do
  # One start channel per agent: a signal sent before its job waits is
  # kept by tmux for that job alone.
  ctb session-create "agent-$i-$$" -- sh -c \
    'timeout "$1" tmux wait-for "$2"; for j in $(seq "$3"); do echo "work $j"; sleep "$4"; done' \
    sh "$JOB_TIMEOUT" "agents-go-$$-$i" "$((3 * i))" "$STEP"
done

say "ctb watch ${sessions[*]} (events appear as they happen)"
ctb watch "${sessions[@]}" | tee "$events" &
watcher=$!
for s in "${sessions[@]}"; do
  wait_for "$events" "\"watching\",\"session\":\"$s\"" || { echo "ctb watch did not start" >&2; exit 1; }
done

say "start the agents"
for i in $(seq 1 "$AGENTS"); do tmux -L "$SOCK" -f /dev/null wait-for -S "agents-go-$$-$i"; done

wait_for "$events" '"session-closed"' || { echo "no agent finished" >&2; exit 1; }
say "the first agent finished: the daemon is still running for the others"
ctb daemon status

say "waiting for the last agent (ctb watch ends with it)"
wait "$watcher"

say "the daemon is gone right after the last agent"
ctb daemon wait --timeout 5 >/dev/null
ctb daemon status
if tmux -L "$SOCK" list-sessions >/dev/null 2>&1; then echo "tmux server still up"; else echo "tmux server $SOCK: gone (its last session closed)"; fi
