#!/usr/bin/env bash
# Runs real clients, which nobody here wrote, against `sift serve` on the golden tiny model: the
# Cohere Python SDK (its v1 and v2 clients) and LlamaIndex's TEI reranker. Their scores must
# equal `sift rerank`'s for the same query and documents (check.py).
#
#   tests/serve_clients/run.sh target/debug/sift
set -euo pipefail
cd "$(dirname "$0")/../.."
sift=$(realpath "$1")
work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check -r tests/serve_clients/requirements.txt

model="$work/model"
mkdir "$model"
cp tests/golden/models/tied-real-vocab/* tests/golden/tokenizer/tokenizer.json \
  tests/golden/tokenizer/tokenizer_config.json "$model"/
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$sift" serve --model "$model" --device cpu --port "$port" --api-key test-key 2>"$work/server.log" &
server=$!
for _ in $(seq 600); do
  if python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/health')" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$server" 2>/dev/null; then cat "$work/server.log"; exit 1; fi
  sleep 0.1
done
"$work/venv/bin/python" tests/serve_clients/check.py "http://127.0.0.1:$port" test-key "$sift" "$model"
