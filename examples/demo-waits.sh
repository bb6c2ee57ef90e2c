#!/usr/bin/env bash
# ctb waits demo: an agent-style loop on a private tmux socket.
#   1. a watched session with a labelled worker pane (a shell);
#   2. `ctb run` a few commands in it: each returns its output and exact
#      exit status (no screen scraping, no echoed markers);
#   3. `ctb wait-for` a trigger another pane prints (returns the moment the
#      line arrives), with a --stop pattern for failures;
#   4. `ctb pane-tail` a pane while it prints (what it printed, then follows);
#   5. `pane-wait` on a command pane: its exact exit status;
#   then the session is killed and the daemon is gone.
# No sleep loops: every wait below is one of ctb's, answered from tmux's
# output stream. Cleans up after itself (its session, daemon and server).
#
# Environment (optional): CTB (the binary, default ./target/release/ctb).
set -euo pipefail
cd "$(dirname "$0")/.."
CTB=$(realpath "${CTB:-./target/release/ctb}")
SOCK=ctb-waits-demo-$$
S=agent
ctb() { "$CTB" -L "$SOCK" -f /dev/null "$@"; }
cleanup() {
  ctb session-kill "$S" >/dev/null 2>&1 || true
  ctb daemon wait >/dev/null 2>&1 || true
  tmux -L "$SOCK" kill-server 2>/dev/null || true
  rm -f "${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/$SOCK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { python3 -c 'import json,sys
d=json.load(sys.stdin)
print("  " + ", ".join(f"{k}={json.dumps(d.get(k))}" for k in sys.argv[1:]))' "$@"; }

say "a watched session; a worker pane labelled 'worker' (a plain shell)"
ctb session-create "$S" -- sh | show session watched daemon_pid
ctb pane-create "$S" worker -- bash --norc --noprofile | show pane_id label

say "ctb run: output and exact exit status, read from the pane's output stream"
ctb run "$S" worker -- 'echo building...; ls /nonexistent-dir' | show output exit_status elapsed_ms || true
ctb run "$S" worker -- 'for i in 1 2 3; do echo "step $i"; done; exit_code=7; (exit $exit_code)' | show output exit_status || true
ctb run "$S" worker -- 'seq 1 100000' | show total_lines truncated exit_status
ctb run "$S" worker -- 'echo "#(touch /tmp/nope) \$HOME ; done"' | show output exit_status

say "ctb wait-for: a trigger printed by another pane, the moment it arrives"
ctb pane-create "$S" server -- sh -c 'echo starting; sleep 0.5; echo "listening on port 8080"; exec cat' | show pane_id label
ctb wait-for "$S" server 'listening on port ([0-9]+)' --stop 'error|failed' --timeout 10 | show output match outcome elapsed_ms

say "ctb pane-exec --wait-for: type, then wait for what the command prints (its echo does not count)"
ctb pane-exec "$S" worker 'sleep 0.3; echo DONE' --wait-for '^DONE$' --timeout 10 | show output outcome elapsed_ms

say "ctb pane-tail: the lines already printed, then the new ones as they come (ends when the pane's command exits)"
ctb pane-create "$S" ticker -- sh -c 'for i in 1 2 3 4; do echo "tick $i"; sleep 0.1; done' | show pane_id
ctb pane-tail "$S" ticker 10 | sed 's/^/  | /'

say "ctb pane-wait: a command pane's exact exit status (kept by remain-on-exit on that pane)"
ctb pane-create "$S" job -- sh -c 'sleep 0.3; exit 3' | show pane_id
ctb pane-wait "$S" job --timeout 10 | show outcome ended exit_status signal

say "a timeout is exit status 124"
set +e
ctb wait-for "$S" worker 'never printed' --new --timeout 0.3 | show outcome error
echo "  exit status: ${PIPESTATUS[0]}"
set -e

say "the session closes; the daemon is gone with it"
ctb session-kill "$S" | show output
ctb daemon wait --timeout 5 | show output
ctb daemon status | show running
