#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time (issue 19, point 9).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, all targets)
#
# Installs the pinned cargo-fuzz into target/test-tools/cargo on first use.
# Only stable Rust is needed: RUSTC_BOOTSTRAP=1 lets it take the nightly-only
# flags cargo-fuzz passes, and the targets run without a sanitizer (the code
# under test is safe Rust; what is hunted is panics, overflows — debug
# assertions are on — hangs and runaway memory). Each run starts from the
# committed seeds (fuzz/corpus/TARGET) plus what earlier local runs found
# (target/fuzz/corpus/TARGET). A crash fails the script and its input is kept
# in fuzz/artifacts/TARGET/ (replay: cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-…).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-60}"
shift || true
tools="${UPDRAFT_TEST_TOOLS_DIR:-$root/target/test-tools}"
cargo_fuzz_version="0.13.2"
export PATH="$tools/cargo/bin:$PATH"
export RUSTC_BOOTSTRAP=1

mkdir -p "$tools"
(
  flock 9
  if ! cargo fuzz --version 2>/dev/null | grep -q "$cargo_fuzz_version"; then
    echo "installing cargo-fuzz $cargo_fuzz_version from crates.io into $tools/cargo" >&2
    cargo install -q --locked cargo-fuzz --version "$cargo_fuzz_version" \
      --root "$tools/cargo" --target-dir "$tools/cargo-build"
  fi
) 9>"$tools/install.lock"

cd "$root"
fuzz_target_dir="${CARGO_TARGET_DIR:-$root/target}/fuzz"
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi

started=$(date +%s)
cargo fuzz build --sanitizer none --target-dir "$fuzz_target_dir"
echo "fuzz build: $(($(date +%s) - started)) s" >&2

passed=0
failed=0
failed_targets=()
for target in "${targets[@]}"; do
  work="$fuzz_target_dir/corpus/$target"
  artifacts="$root/fuzz/artifacts/$target"
  mkdir -p "$work" "$artifacts"
  echo "== fuzz $target for ${seconds} s" >&2
  # -rss_limit_mb: a parser that balloons on a small input is a finding too.
  if cargo fuzz run --sanitizer none --target-dir "$fuzz_target_dir" "$target" \
    "$work" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" 2>"$work.log"; then
    grep -E '^stat::number_of_executed_units|^Done' "$work.log" | tr '\n' ' ' >&2 || true
    echo >&2
    passed=$((passed + 1))
  else
    tail -n 40 "$work.log" >&2
    echo "fuzz target $target FAILED; input kept in $artifacts/" >&2
    failed=$((failed + 1))
    failed_targets+=("$target")
  fi
done
echo "fuzz: $passed passed, $failed failed ($(($(date +%s) - started)) s in all)${failed_targets[*]:+: ${failed_targets[*]}}"
[ "$failed" -eq 0 ]
