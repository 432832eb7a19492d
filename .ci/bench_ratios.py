"""Prints what `sift bench --json` lines say about batching: ms per pair per mode, and each
mode's speed-up against computing every pair whole. Never fails on the figures: CI machines
are too noisy for a time limit; the ratios are for a reader comparing runs."""
import json
import sys

rows = [json.loads(line) for line in sys.stdin if line.startswith("{")]
modes = {"whole pairs": "whole pairs", "one document at a time": "prefix reused, one at a time"}
table = {}
for r in rows:
    mode = next((name for tag, name in modes.items() if tag in r["model"]), "packed passes")
    table[(r["workload"], r["documents"], mode)] = r["ms_per_pair"]
print(f"{'workload':<8} {'documents':>9} {'mode':<30} {'ms per pair':>11} {'vs whole':>8}")
for (workload, documents, mode), ms in sorted(table.items()):
    whole = table.get((workload, documents, "whole pairs"))
    ratio = f"{whole / ms:.2f}x" if whole else "-"
    print(f"{workload:<8} {documents:>9} {mode:<30} {ms:>11.1f} {ratio:>8}")
