#!/usr/bin/env bash
# A script written for the bash bridge, run with ctb in its place: the
# bridge's event-driven demo. Three labelled workers; triggers printed in a
# worker's output are found with pane-has-pattern and acted on; workers are
# spawned and killed by label (pane-find's .pane_id passed back to
# pane-exec and pane-kill, .count from pane-count, .panes[] from
# pane-list-detailed).
#
# The bridge is replaced by a one-line wrapper (`exec ctb "$@"`, plus this
# demo's private tmux socket). Waits use `tmux wait-for` channels signalled
# by the workers' commands: no sleep loop (waits on output are ctb's next
# issue). Cleans up after itself: its session, its daemon, its server.
#
# Environment (optional): CTB (the binary, default ./target/release/ctb).
set -euo pipefail
cd "$(dirname "$0")/.."
CTB=$(realpath "${CTB:-./target/release/ctb}")
SOCK=ctb-bridge-demo-$$
S=bridge-demo
tmp=$(mktemp -d)
BRIDGE=$tmp/tmux-bridge
printf '#!/bin/sh\nexec "%s" -L "%s" -f /dev/null "$@"\n' "$CTB" "$SOCK" > "$BRIDGE"
chmod +x "$BRIDGE"
cleanup() {
  "$BRIDGE" session-kill "$S" >/dev/null 2>&1 || true
  "$BRIDGE" daemon wait >/dev/null 2>&1 || true
  tmux -L "$SOCK" kill-server 2>/dev/null || true
  rm -f "${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/$SOCK"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
# Waits (at most 20 s) for a worker to signal CHANNEL.
signalled() { timeout 20 tmux -L "$SOCK" wait-for "$1"; }
# Runs CMD in the worker labelled LABEL; the worker signals CHANNEL after it.
run() { "$BRIDGE" pane-exec "$S" "$("$BRIDGE" pane-find "$S" "$1" | field pane_id)" "$2; tmux wait-for -S $3" >/dev/null; }

say "session-create $S"
"$BRIDGE" session-create "$S" -- sh -c 'echo coordinator; exec cat' | field status

say "three labelled workers"
for w in build test lint; do
  # A shell without rc files: quick to start, the same on every machine.
  "$BRIDGE" pane-create "$S" "$w" -- bash --norc --noprofile | field pane_id
done
"$BRIDGE" pane-list-detailed "$S" |
  python3 -c 'import json,sys; [print(p["pane_id"], p["label"], p["command"]) for p in json.load(sys.stdin)["panes"]]'
echo "panes: $("$BRIDGE" pane-count "$S" | field count)"

say "build runs and prints a trigger"
run build "echo compiling; echo 'TRIGGER: run-tests'" build-done
signalled build-done
if "$BRIDGE" pane-has-pattern "$S" build 'TRIGGER: run-tests' >/dev/null; then
  echo "trigger found in build: starting tests"
  run test "echo 'tests passed: 42'; echo 'TRIGGER: spawn-docs'" test-done
  signalled test-done
fi

say "a trigger spawns a worker by label"
if "$BRIDGE" pane-has-pattern "$S" test 'TRIGGER: spawn-docs' >/dev/null; then
  "$BRIDGE" pane-create "$S" docs -- bash --norc --noprofile | field pane_id
  run docs "echo 'docs built'" docs-done
  signalled docs-done
  "$BRIDGE" pane-watch "$S" docs '^docs' | field matches
fi

say "workers killed by label"
for w in lint docs; do
  id=$("$BRIDGE" pane-find "$S" "$w" | field pane_id)
  "$BRIDGE" pane-kill "$S" "$id" | field output
done
echo "panes left: $("$BRIDGE" pane-count "$S" | field count)"
"$BRIDGE" state-sync "$S" | field note
