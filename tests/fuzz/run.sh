#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 10: the short pass `.ci/run` makes) on a copy
# of its checked-in seed corpus, so the inputs a run discovers stay out of the repository; prints
# each target's executions, time and peak memory, and fails on the first crash, timeout or
# out-of-memory (libFuzzer writes the input to tests/fuzz/artifacts/TARGET/).
#
#   bash tests/fuzz/run.sh            # 10 s per target
#   FUZZ_RUNS=10000000 bash tests/fuzz/run.sh 1800   # the long runs: 10M executions or 30 minutes
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`; `.ci/run` installs it). It runs on the
# project's pinned toolchain with RUSTC_BOOTSTRAP=1, which lets it take the unstable flags
# cargo-fuzz passes (`-Zsanitizer=address`): the machines this project runs on cannot fetch a
# nightly toolchain.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
targets=${FUZZ_TARGETS:-"weight_file event_log movielens tokenizer js_input rerank"}
# FUZZ_RUNS stops a target after that many executions, if it comes before SECONDS.
runs=${FUZZ_RUNS:--1}
export RUSTC_BOOTSTRAP=1
cargo fuzz build --fuzz-dir tests/fuzz -O
# Whole seconds of user + system time of this shell's children, from a file `times` wrote.
children_cpu() { tail -n 1 "$1" | awk '{ split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.0f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }'; }
for t in $targets; do
  work=$(mktemp -d)
  cp -r "tests/fuzz/corpus/$t/." "$work/"
  log="$work.log"
  # The target's CPU time: the children's user + system seconds `times` reports before and
  # after (run in this shell: a subshell has no children of its own).
  times >"$work.t0"
  if ! cargo fuzz run --fuzz-dir tests/fuzz -O "$t" "$work" -- \
      -max_total_time="$secs" -runs="$runs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz target $t FAILED (input in tests/fuzz/artifacts/$t/)"
    exit 1
  fi
  done_runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log")
  times >"$work.t1"
  cpu_s=$(( $(children_cpu "$work.t1") - $(children_cpu "$work.t0") ))
  echo "fuzz $t: $done_runs executions in ${took:-$secs} s ($cpu_s CPU s), peak RSS $peak MB, no crash"
  rm -rf "$work" "$log" "$work.t0" "$work.t1"
done
