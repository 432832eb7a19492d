#!/usr/bin/env bash
# Usage: web/build_site.sh [--public-url PATH] [--dist DIR] [--dev] [-- TRUNK_BUILD_ARGS...]
#
# Builds the static demo site, as CI's Pages workflow (.github/workflows/pages.yml) does:
# `trunk build --release`, then prints the folder and its size.
#   --public-url PATH  the path the site is served under, e.g. /sift/ for a GitHub Pages project
#                      site (default: $SIFT_PUBLIC_URL, else Trunk's /)
#   --dist DIR         the folder to write, emptied first (default: $SIFT_DIST, else dist in the
#                      repository); relative to the current directory
#   --dev              a debug build, no wasm-opt (what the end-to-end test runs, in CI's profile)
# Fixed into the page at build time (the Content-Security-Policy lets it contact only these):
#   SIFT_HUB_URL    the hub the official checkpoints come from (default https://huggingface.co/)
#   SIFT_HF_REPO    the checkpoint's repository there (default Qwen/Qwen3-VL-Reranker-2B)
#   SIFT_MODEL_URL  a hosted 4-bit model folder (optional)
# Needs Trunk 0.21.14, the wasm32-unknown-unknown target, python3 and wasm-opt 132 or newer
# (README: npm's binaryen 132); Trunk fetches wasm-bindgen at Cargo.lock's version if missing.
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

public_url="${SIFT_PUBLIC_URL:-}"
dist="${SIFT_DIST:-}"
trunk_args=()
release=1
while [ $# -gt 0 ]; do
  case "$1" in
    --public-url) [ $# -ge 2 ] || { usage >&2; exit 2; }; public_url="$2"; shift 2 ;;
    --public-url=*) public_url="${1#*=}"; shift ;;
    --dist) [ $# -ge 2 ] || { usage >&2; exit 2; }; dist="$2"; shift 2 ;;
    --dist=*) dist="${1#*=}"; shift ;;
    --dev) release=; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; trunk_args=("$@"); break ;;
    *) printf 'build_site.sh: unknown argument %s\n\n' "$1" >&2; usage >&2; exit 2 ;;
  esac
done

# A --dist given by the caller is relative to where they are, the default to the repository.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "$dist" ]; then
  dist="$root/dist"
elif [ "${dist#/}" = "$dist" ]; then
  dist="$PWD/$dist"
fi
cd "$root"
mkdir -p "$dist"
dist="$(cd "$dist" && pwd)"
# Trunk empties the dist folder: only an empty one or an earlier build, never the repository.
if [ "$dist" = / ] || [ "$dist" = "$root" ] || [ "${root#"$dist"/}" != "$root" ]; then
  echo "build_site.sh: --dist $dist would empty the repository" >&2
  exit 2
fi
if [ -n "$(ls -A "$dist")" ] && [ ! -e "$dist/index.html" ] && [ ! -e "$dist/.stage" ]; then
  echo "build_site.sh: $dist holds files that are not a build; Trunk would delete them" >&2
  exit 2
fi

export SIFT_HUB_URL="${SIFT_HUB_URL:-https://huggingface.co/}"
export SIFT_HF_REPO="${SIFT_HF_REPO:-Qwen/Qwen3-VL-Reranker-2B}"

die() { echo "build_site.sh: $*" >&2; exit 1; }
command -v trunk >/dev/null || die "trunk not found (cargo install --locked trunk@0.21.14)"
[ "$(trunk --version)" = "trunk 0.21.14" ] || echo "build_site.sh: $(trunk --version), not 0.21.14" >&2
# Trunk uses any wasm-opt on PATH (and downloads binaryen 123 without one); older ones (Debian's
# 108) break the release build's output. The README installs npm's binaryen here:
readme_binaryen="$HOME/.local/share/binaryen/node_modules/.bin"
[ ! -x "$readme_binaryen/wasm-opt" ] || PATH="$readme_binaryen:$PATH"
opt_version="$( (wasm-opt --version || true) 2>/dev/null | sed -n 's/.*version \([0-9]*\).*/\1/p')"
[ -z "$release" ] || { [ -n "$opt_version" ] && [ "$opt_version" -ge 132 ]; } ||
  die "need wasm-opt 132 or newer (found: ${opt_version:-none}):" \
    "npm install --prefix ~/.local/share/binaryen binaryen@132.0.0"

echo "build_site.sh: hub $SIFT_HUB_URL, checkpoint $SIFT_HF_REPO," \
  "hosted model ${SIFT_MODEL_URL:-(none)}, public URL ${public_url:-/}, into $dist" >&2
args=(build ${release:+--release} --skip-version-check --dist "$dist")
[ -z "$public_url" ] || args+=(--public-url "$public_url")
trunk "${args[@]}" ${trunk_args[@]+"${trunk_args[@]}"}

echo "$dist ($(du -sh "$dist" | cut -f1))"
