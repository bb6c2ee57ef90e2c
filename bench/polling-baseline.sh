#!/usr/bin/env bash
# polling-baseline.sh SOCKET ACTIVE_FILE
#
# For comparison only: a faithful reference of the design ctb replaces (see
# /work/shared/docs/prior-art.md), reduced to its reference counting. A bash
# daemon loop that every 0.5 s lists the sessions of the tmux server
# `tmux -L SOCKET -f /dev/null` (the same setup as ctb), drops registered
# sessions that no longer exist from ACTIVE_FILE (one session name a line),
# and exits 0 when none remain (or when the server is gone).
#
# It is a lean version of the original, whose loop also ran several tmux
# commands per session on every wake-up: one tmux call per wake-up, and
# membership tests and file updates use bash builtins only, so the numbers
# it produces are a lower bound on the original's cost. Per poll it starts
# the `$(...)` subshell, the tmux client (bash forks again rather than exec
# because of the redirection) and `sleep`: 3 processes (bench/run.sh counts
# them with strace rather than trusting this comment).
#
# BASELINE_COUNTER=FILE: after every poll, write to FILE the number of tmux
# calls made so far (a builtin redirection: no extra process).
set -u
socket=${1:?usage: polling-baseline.sh SOCKET ACTIVE_FILE}
active=${2:?usage: polling-baseline.sh SOCKET ACTIVE_FILE}
interval=${BASELINE_INTERVAL:-0.5}
counter=${BASELINE_COUNTER:-}
calls=0

while :; do
    # One tmux call per wake-up; an error (no server) means no sessions.
    live=$(tmux -L "$socket" -f /dev/null list-sessions -F '#{session_name}' 2>/dev/null)
    calls=$((calls + 1))
    declare -A exists=()
    while IFS= read -r s; do
        [[ -n $s ]] && exists[$s]=1
    done <<<"$live"

    mapfile -t registered <"$active" 2>/dev/null || registered=()
    kept=()
    for s in "${registered[@]}"; do
        [[ -n $s && -n ${exists[$s]:-} ]] && kept+=("$s")
    done
    if ((${#kept[@]} != ${#registered[@]})); then
        if ((${#kept[@]})); then printf '%s\n' "${kept[@]}" >"$active"; else : >"$active"; fi
    fi
    unset exists
    if ((${#kept[@]} == 0)); then
        [[ -n $counter ]] && printf '%s\n' "$calls" >"$counter"
        exit 0
    fi

    [[ -n $counter ]] && printf '%s\n' "$calls" >"$counter"
    sleep "$interval"
done
