#!/usr/bin/env bash
# Fills fuzz/corpus/TARGET/ (or $FUZZ_CORPUS/TARGET/) with the committed seeds (fuzz/seeds/)
# and the repository's golden files, beside what earlier runs found there.
set -euo pipefail
cd "$(dirname "$0")"
golden=../tests/golden
corpus=${FUZZ_CORPUS:-corpus}
seed() {
  local target=$1 file
  shift
  mkdir -p "$corpus/$target"
  for file in "$@"; do
    cp "$file" "$corpus/$target/$(basename "$(dirname "$file")")-$(basename "$file")"
  done
}
seed image seeds/image/* "$golden"/rerank/image/*.png "$golden"/rerank/image/*.jpg
seed video_container seeds/video_container/* "$golden"/video/clips/{one_second,portrait}.mp4 \
  "$golden"/video/clips/vp9.webm "$golden"/video/bad/{corrupt,zero_frames,not_a_video}.mp4
seed request_json "$golden"/rerank/*/request.json
seed model_config "$golden"/models/*/config.json
seed model_directory seeds/model_directory/*
seed checkpoint seeds/checkpoint/* "$golden"/models/untied-one-kv/model.safetensors
seed q4_model seeds/q4_model/*
seed tokenize seeds/tokenize/*
seed batch seeds/batch/*
seed pdf seeds/pdf/* "$golden"/pdf/{slide,report,restricted,truncated,damaged,encrypted}.pdf
