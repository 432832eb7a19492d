#!/usr/bin/env python3
"""Trunk post_build hook: completes index.html's Content-Security-Policy and build id.

- __CSP_SCRIPT_HASHES__: the sha256 of each inline script Trunk wrote (it starts the app),
  so no other inline script can run.
- __CSP_MODEL_ORIGIN__: the origin of SIFT_MODEL_URL (the default model), the only place
  besides the site itself that the page and its worker may fetch from.
- __BUILD_ID__: a hash of the worker's files, appended to their URLs (`?v=`), since Trunk does
  not hash their names and a browser would otherwise run an old worker after a deploy.

Trunk 0.21 sets TRUNK_STAGING_DIR for hooks.
"""
import base64
import hashlib
import os
import re
import sys
from urllib.parse import urlsplit

stage = os.environ["TRUNK_STAGING_DIR"]
index = os.path.join(stage, "index.html")
html = open(index, encoding="utf-8").read()

hashes = []
for match in re.finditer(r"<script\b([^>]*)>(.*?)</script>", html, re.S | re.I):
    attributes, body = match.group(1), match.group(2)
    if re.search(r"\bsrc\s*=", attributes):
        continue
    digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode()
    hashes.append(f"'sha256-{digest}'")

model_url = os.environ.get("SIFT_MODEL_URL", "")
parts = urlsplit(model_url)
# A relative URL is on this site, which 'self' already allows.
model_origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""

worker = hashlib.sha256()
for name in ("sift-worker.js", "sift-worker_bg.wasm"):
    with open(os.path.join(stage, name), "rb") as f:
        worker.update(f.read())
build_id = worker.hexdigest()[:16]

for placeholder in ("__CSP_SCRIPT_HASHES__", "__CSP_MODEL_ORIGIN__", "__BUILD_ID__"):
    if placeholder not in html:
        sys.exit(f"post_build: {placeholder} is missing from index.html")
html = (
    html.replace("__CSP_SCRIPT_HASHES__", " ".join(hashes))
    .replace("__CSP_MODEL_ORIGIN__", model_origin)
    .replace("__BUILD_ID__", build_id)
)
open(index, "w", encoding="utf-8").write(html)
print(
    f"post_build: {len(hashes)} inline script hash(es), model origin {model_origin or '(this site)'}, "
    f"build id {build_id}",
    file=sys.stderr,
)
