# ctb: build, test, lint, demo, benchmarks, fixtures, fuzzing.
CARGO ?= cargo
FUZZ_SECONDS ?= 60
SOAK_SECONDS ?= 60
# kill-soak: rounds of tests/kill_random.rs (SIGKILL at varied moments), and
# the first one (to rerun one round: make kill-soak KILL_FIRST=N KILL_ROUNDS=1).
KILL_ROUNDS ?= 100
KILL_FIRST ?= 0
# test-matrix: tmux versions (`system` = the tmux on PATH) and the script
# that builds the others (kept beside the repo on development machines).
TMUX_VERSIONS ?= system 3.4 3.7c
CTB_TMUX_BUILD ?= ../shared/tmux/build.sh

.PHONY: build test test-matrix lint demo bench soak kill-soak fixtures expected fuzz clean

build:
	$(CARGO) build --release --workspace

test: build
	$(CARGO) test --release --workspace

# The whole suite once per tmux version (docs/tmux-versions.md).
test-matrix: build
	CARGO="$(CARGO)" CTB_TMUX_BUILD="$(CTB_TMUX_BUILD)" bash tests/tmux-matrix.sh $(TMUX_VERSIONS)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

demo: build
	bash examples/demo-quick.sh
	bash examples/bridge-demo.sh
	bash examples/demo-waits.sh

bench: build
	bash bench/run.sh

soak: build
	SOAK_SECONDS=$(SOAK_SECONDS) $(CARGO) test --release --test soak -- --ignored --nocapture

kill-soak: build
	CTB_KILL_ROUNDS=$(KILL_ROUNDS) CTB_KILL_FIRST=$(KILL_FIRST) $(CARGO) test --release --test kill_random -- --ignored --nocapture

# Re-record every fixture from a real tmux, then regenerate expected files
# (review the diff of the expected files before committing them).
fixtures: build
	bash fixtures/record.sh
	bash fixtures/record-lifecycle.sh
	$(MAKE) expected

expected: build
	for f in fixtures/tmux-*/*.raw; do \
		./target/release/ctb replay "$$f" > "$${f%.raw}.expected.jsonl" || exit 1; \
	done
	for f in fixtures/lifecycle/*.raw; do \
		./target/release/ctb watch --replay "$$f" > "$${f%.raw}.expected.jsonl" || exit 1; \
	done

fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd parser && $(CARGO) +nightly fuzz run parse -- -max_total_time=$(FUZZ_SECONDS)

clean:
	$(CARGO) clean
