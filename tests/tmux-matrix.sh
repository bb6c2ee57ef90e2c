#!/usr/bin/env bash
# tests/tmux-matrix.sh -- the test suite against several tmux versions.
#
#     bash tests/tmux-matrix.sh [VERSION...]     (`make test-matrix` runs it)
#
# VERSION is `system` (the `tmux` already on PATH) or a release that
# $CTB_TMUX_BUILD (default ../shared/tmux/build.sh, beside the repo on the
# development machines) can build: it builds it once (cached) and prints
# its bin dir. For each version this runs `cargo test --release --workspace`
# with that bin dir first in PATH (the tests and ctb both run `tmux` from
# PATH; CTB_TMUX is unset so ctb cannot pick another one), prints a header
# naming the version, goes on with the next version after a failure, and
# exits non-zero if any version failed or could not be built.
set -uo pipefail
cd "$(dirname "$0")/.."

[ $# -gt 0 ] || set -- system 3.4 3.7c
build=${CTB_TMUX_BUILD:-../shared/tmux/build.sh}
unset CTB_TMUX
declare -a summary=()
failed=0

for ver in "$@"; do
    if [ "$ver" = system ]; then
        tmux=$(command -v tmux) || { summary+=("system: NOT RUN (no tmux on PATH)"); failed=1; continue; }
        bin=$(dirname "$tmux")
    elif [ ! -f "$build" ]; then
        echo "tmux-matrix: cannot build tmux $ver: no build script at $build (set CTB_TMUX_BUILD)" >&2
        summary+=("$ver: NOT RUN (no build script at $build)")
        failed=1
        continue
    elif ! bin=$(bash "$build" "$ver"); then
        echo "tmux-matrix: building tmux $ver failed" >&2
        summary+=("$ver: NOT RUN (build failed)")
        failed=1
        continue
    fi
    version=$(PATH="$bin:$PATH" tmux -V)
    echo
    echo "================================================================"
    echo "== $version ($bin/tmux)"
    echo "================================================================"
    start=$SECONDS
    if PATH="$bin:$PATH" ${CARGO:-cargo} test --release --workspace; then
        result=ok
    else
        result=FAILED
        failed=1
    fi
    summary+=("$version: $result ($((SECONDS - start)) s)")
done

echo
echo "== tmux matrix"
printf '   %s\n' "${summary[@]}"
exit "$failed"
