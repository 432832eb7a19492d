#!/usr/bin/env bash
# Fuzzes what a stranger can hand sift: image files, video containers, request JSON,
# config.json, model directories (config.json against its weights), safetensors checkpoints,
# 4-bit models, text to tokenize, `sift rerank --batch` input and PDFs.
#
#   fuzz/run.sh [SECONDS] [TARGET...]    each target for SECONDS (default 30), all by default
#
# FUZZ_SEED fixes libFuzzer's random seed (CI sets it, so its short pass explores the same
# inputs each time); unset, each run explores anew.
# Needs cargo-fuzz (`cargo install cargo-fuzz`). Runs on the stable toolchain (RUSTC_BOOTSTRAP
# lets cargo-fuzz pass its flags) without a sanitizer: sift's own code is safe Rust, and what
# is sought is a panic, an abort or unbounded memory, which libFuzzer reports itself. A crash
# leaves its input under fuzz/artifacts/TARGET/; it becomes a regression test.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(image video_container request_json model_config model_directory checkpoint q4_model tokenize batch pdf)

../tests/golden/fetch_tokenizer.sh
./seed.sh

export RUSTC_BOOTSTRAP=1
cargo fuzz build --sanitizer none
mkdir -p logs
for target in "${targets[@]}"; do
  printf '\n== fuzz %s for %ss (%s)\n' "$target" "$seconds" "$(date +%T)"
  # -rss_limit_mb: an input that makes sift hold over 2 GB is a finding too.
  status=0
  cargo fuzz run --sanitizer none "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=60 -print_final_stats=1 \
    -seed="${FUZZ_SEED:-0}" \
    > "logs/$target.log" 2>&1 || status=$?
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)|^#[0-9]+ +DONE' "logs/$target.log" || true
  if [ "$status" -ne 0 ]; then
    tail -40 "logs/$target.log"
    echo "fuzz target $target failed: its input is under fuzz/artifacts/$target/"
    exit 1
  fi
done
echo "all fuzz targets ran without a crash"
