#!/usr/bin/env python3
"""Trunk post_build hook: completes index.html's Content-Security-Policy and build id.

- __CSP_SCRIPT_HASHES__: the sha256 of each inline script Trunk wrote (it starts the app),
  so no other inline script can run.
- __CSP_MODEL_ORIGIN__: the only places besides the site itself that the page and its worker
  may fetch from: the origin of SIFT_MODEL_URL (the default 4-bit model, optional), the origin
  of SIFT_HUB_URL (the hub the official checkpoints come from, default https://huggingface.co/)
  and, when that hub is huggingface.co, the CDN hosts it redirects file downloads to.
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

# The page's default when SIFT_HUB_URL is unset (or empty).
HF_HUB_URL = "https://huggingface.co/"
# Where huggingface.co's /resolve/ redirects a large file (listed in its
# https://huggingface.co/.well-known/meta.json); connect-src is checked at every redirect, so each
# must be allowed. Xet files go to a CDN host whose region and provider vary (us.aws.cdn.hf.co,
# eu-west-3.aws.cdn.hf.co, us.gcp.cdn.hf.co, ...), hence *.cdn.hf.co, or to the older Xet
# bridge; LFS files go to cdn-lfs*.hf.co.
HF_CDN = (
    "https://*.cdn.hf.co",
    "https://cas-bridge.xethub.hf.co",
    "https://cdn-lfs.hf.co",
    "https://cdn-lfs-us-1.hf.co",
    "https://cdn-lfs-eu-1.hf.co",
)


def origin(url):
    parts = urlsplit(url)
    # A relative URL is on this site, which 'self' already allows.
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


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

hub_url = os.environ.get("SIFT_HUB_URL") or HF_HUB_URL
sources = [origin(os.environ.get("SIFT_MODEL_URL", "")), origin(hub_url)]
if urlsplit(hub_url).hostname == "huggingface.co":
    sources += HF_CDN
# The model's origin first; a hub on the same origin (a test server) adds nothing.
connect_sources = list(dict.fromkeys(source for source in sources if source))

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
    .replace("__CSP_MODEL_ORIGIN__", " ".join(connect_sources))
    .replace("__BUILD_ID__", build_id)
)
open(index, "w", encoding="utf-8").write(html)
connect = " ".join(["'self'", *connect_sources])
print(
    f"post_build: {len(hashes)} inline script hash(es), connect-src {connect}, build id {build_id}",
    file=sys.stderr,
)
