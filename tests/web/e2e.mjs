// End-to-end test of the browser app, through the page only, in headless Chromium on WebGPU
// (SwiftShader). It serves dist/ and a tiny 4-bit model on 127.0.0.1, then: loads the model
// with visible progress; adds a text, an image and a VP9 video document and a text+image query;
// reranks and checks every score against native `sift rerank` on the same 4-bit model and
// files; reloads and gets the model from the browser's storage with no request for it; damages
// a stored shard and sees it fetched again; removes a document and reranks; crashes the worker
// mid-run and sees the page recover with its inputs intact; converts the same model from a
// hub-style server (sharded checkpoint, files behind redirects) in the page, cut off and
// resumed, into the bytes `sift quantize` writes, and scores with it. Screenshots of the real
// page go to docs/screenshots/.
//
// usage: node tests/web/e2e.mjs   (after the `trunk build`s of .ci/test)
// env:   SIFT_BIN (default target/debug/sift), DIST (default dist), DIST_SUB (default dist-sub,
//        built with --public-url /sift/), SITE_PORT, MODEL_PORT, SUB_PORT, HUB_PORT (the site is built
//        with SIFT_HUB_URL=http://127.0.0.1:HUB_PORT/ and SIFT_HF_REPO=test/tiny-reranker)

import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const dist = path.resolve(process.env.DIST ?? path.join(root, 'dist'));
const distSub = path.resolve(process.env.DIST_SUB ?? path.join(root, 'dist-sub'));
const siftBin = path.resolve(process.env.SIFT_BIN ?? path.join(root, 'target/debug/sift'));
const sitePort = Number(process.env.SITE_PORT ?? 8710);
const modelPort = Number(process.env.MODEL_PORT ?? 8711);
const hubPort = Number(process.env.HUB_PORT ?? 8712);
const subPort = Number(process.env.SUB_PORT ?? 8714);
const shots = path.join(root, 'docs/screenshots');
const golden = path.join(root, 'tests/golden');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sift-e2e-'));

let step = 0;
const started = Date.now();
function log(text) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${text}`);
}
function section(text) {
  step += 1;
  log(`-- ${step}. ${text}`);
}

// ---------------------------------------------------------------- fixtures
section('fixtures: the tiny model in 4 bits, the files, native scores');
const source = path.join(work, 'source');
fs.mkdirSync(source);
for (const [dir, name] of [
  ['models/tied-real-vocab', 'config.json'],
  ['models/tied-real-vocab', 'model.safetensors'],
  ['tokenizer', 'tokenizer.json'],
  ['tokenizer', 'tokenizer_config.json'],
]) {
  fs.copyFileSync(path.join(golden, dir, name), path.join(source, name));
}
const modelDir = path.join(work, 'models/tiny-q4');
execFileSync(siftBin, ['quantize', '--model', source, '--out', modelDir], { stdio: 'inherit' });

// The same checkpoint as the hub lays a repository out: two safetensors files that interleave
// tensor names (the token table in the second, so a transfer can be cut inside it), an index.
const hubRepo = 'test/tiny-reranker';
const hubFiles = path.join(work, 'hub', hubRepo);
fs.mkdirSync(hubFiles, { recursive: true });
{
  const whole = fs.readFileSync(path.join(source, 'model.safetensors'));
  const headerLength = Number(whole.readBigUInt64LE(0));
  const header = JSON.parse(whole.subarray(8, 8 + headerLength).toString());
  const data = whole.subarray(8 + headerLength);
  const names = Object.keys(header).filter((n) => n !== '__metadata__').sort();
  const shardNames = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  const weightMap = {};
  shardNames.forEach((file, shard) => {
    const mine = names.filter((n, i) => (n.includes('embed_tokens') ? 1 : i % 2) === shard);
    const entries = {};
    const parts = [];
    let offset = 0;
    for (const name of mine) {
      const { dtype, shape, data_offsets: [start, end] } = header[name];
      entries[name] = { dtype, shape, data_offsets: [offset, offset + end - start] };
      parts.push(data.subarray(start, end));
      offset += end - start;
      weightMap[name] = file;
    }
    let json = JSON.stringify(entries);
    json += ' '.repeat((8 - (json.length % 8)) % 8);
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(json.length));
    fs.writeFileSync(path.join(hubFiles, file), Buffer.concat([length, Buffer.from(json), ...parts]));
  });
  fs.writeFileSync(path.join(hubFiles, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: { total_size: data.length }, weight_map: weightMap }, null, 2));
  for (const name of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) {
    fs.copyFileSync(path.join(source, name), path.join(hubFiles, name));
  }
}
const hubNative = path.join(work, 'hub-q4');
execFileSync(siftBin, ['quantize', '--model', hubFiles, '--out', hubNative], { stdio: 'inherit' });

const files = path.join(work, 'files');
fs.mkdirSync(files);
const media = {
  queryImage: ['rerank/mixed/tiny.png', 'tiny.png'],
  image: ['rerank/mixed/sky.jpg', 'sky.jpg'],
  video: ['video/clips/vp9.webm', 'vp9.webm'],
};
for (const [from, name] of Object.values(media)) {
  fs.copyFileSync(path.join(golden, from), path.join(files, name));
}
const file = (key) => path.join(files, media[key][1]);
const queryText = 'a blue sky over green plants';
const docText = 'Green plants need light to grow.';
// The documents in the order the page adds them: text, then the picked files by name.
const request = {
  query: { text: queryText, image: 'tiny.png' },
  documents: [{ text: docText }, { image: 'sky.jpg' }, { video: 'vp9.webm' }],
};
fs.writeFileSync(path.join(files, 'request.json'), JSON.stringify(request));
const native = JSON.parse(
  execFileSync(siftBin, ['rerank', '--model', modelDir, path.join(files, 'request.json')]).toString(),
);
const nativeScore = Object.fromEntries(native.results.map((r) => [r.index, r.score]));
log(`native scores: ${JSON.stringify(nativeScore)}`);
const videoGolden = JSON.parse(fs.readFileSync(path.join(golden, 'video/vp9/expected.json')));

// ---------------------------------------------------------------- servers
const types = {
  '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css',
  '.json': 'application/json', '.safetensors': 'application/octet-stream',
};
const modelRequests = [];
let throttle = null; // bytes per second for the model server, or null

// Sends `body`, slowly while `rate()` gives bytes per second (in 64 kB steps, so the page's
// progress can be seen and a transfer cut), at full speed once it gives null.
async function send(res, body, rate) {
  const chunk = 64 * 1024;
  for (let at = 0; at < body.length && !res.destroyed; at += chunk) {
    res.write(body.subarray(at, at + chunk));
    if (rate()) await new Promise((r) => setTimeout(r, (chunk / rate()) * 1000));
  }
  res.end();
}

function serve(port, dir, { cors = false, record = null, prefix = '/' } = {}) {
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, `http://127.0.0.1:${port}`);
    record?.push(url.pathname);
    const inside = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length - 1) : '/nowhere';
    const target = path.join(dir, decodeURIComponent(inside));
    const headers = { 'Cache-Control': 'no-store' };
    if (cors) headers['Access-Control-Allow-Origin'] = '*';
    const name = target.endsWith('/') ? path.join(target, 'index.html') : target;
    if (!name.startsWith(dir) || !fs.existsSync(name) || fs.statSync(name).isDirectory()) {
      res.writeHead(404, headers).end('not found');
      return;
    }
    const body = fs.readFileSync(name);
    res.writeHead(200, {
      ...headers,
      'Content-Type': types[path.extname(name)] ?? 'application/octet-stream',
      'Content-Length': body.length,
    });
    await send(res, body, () => (record ? throttle : null));
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}
// The hub: `<repo>/resolve/main/<file>`, weight files behind a redirect to another path, as
// huggingface.co sends them to its CDN.
const hubRequests = [];
let hubThrottle = null;
function serveHub(port) {
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, `http://127.0.0.1:${port}`);
    hubRequests.push(url.pathname);
    const headers = { 'Cache-Control': 'no-store', 'Access-Control-Allow-Origin': '*' };
    const resolve = url.pathname.match(/^\/(.+)\/resolve\/main\/([^/]+)$/);
    const cdn = url.pathname.match(/^\/cdn\/(.+)\/([^/]+)$/);
    if (resolve && resolve[2].endsWith('.safetensors')) {
      res.writeHead(302, { ...headers, Location: `/cdn/${resolve[1]}/${resolve[2]}` }).end();
      return;
    }
    const [repo, name] = resolve ? [resolve[1], resolve[2]] : cdn ? [cdn[1], cdn[2]] : [null, null];
    const file = repo === hubRepo ? path.join(hubFiles, name) : null;
    if (!file || !fs.existsSync(file)) {
      res.writeHead(404, headers).end('Entry not found');
      return;
    }
    const body = fs.readFileSync(file);
    res.writeHead(200, { ...headers, 'Content-Length': body.length });
    await send(res, body, () => (cdn ? hubThrottle : null));
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}
const hub = await serveHub(hubPort);
const hubUrl = `http://127.0.0.1:${hubPort}/`;
const site = await serve(sitePort, dist);
const models = await serve(modelPort, path.join(work, 'models'), { cors: true, record: modelRequests });
const siteUrl = `http://127.0.0.1:${sitePort}/`;
const modelUrl = `http://127.0.0.1:${modelPort}/tiny-q4/`;

// ---------------------------------------------------------------- browser
const userData = fs.mkdtempSync(path.join(os.tmpdir(), 'sift-e2e-chromium-'));
const context = await chromium.launchPersistentContext(userData, {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: ['--no-sandbox', '--no-first-run', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--disable-quic', '--enable-unsafe-webgpu'],
});
const page = context.pages()[0] ?? (await context.newPage());
const consoleLines = [];
page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
const foreign = [];
context.on('request', (r) => {
  const origin = new URL(r.url()).origin;
  if (!['blob:', 'data:'].some((p) => r.url().startsWith(p))
      && ![siteUrl, modelUrl, hubUrl].some((u) => new URL(u).origin === origin)) {
    foreign.push(r.url());
  }
});
const byTestId = (id) => page.locator(`[data-testid="${id}"]`);
fs.mkdirSync(shots, { recursive: true });
async function shoot(name) {
  // From the top, where the sticky ranking column starts.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

/// The scored results as the page shows them: kind, score, error, video sampling.
async function results() {
  return page.$$eval('[data-testid="result"]', (rows) => rows.map((row) => ({
    id: Number(row.dataset.id),
    kind: row.dataset.kind,
    state: row.dataset.state,
    score: row.dataset.score === '' ? null : Number(row.dataset.score),
    error: row.querySelector('[data-testid="doc-error"]')?.textContent ?? null,
    video: [...row.querySelectorAll('[data-testid="video-sample"]')].map((v) => ({
      indices: v.dataset.indices.split(',').map(Number),
      timestamps: v.dataset.timestamps.split(','),
    })),
  })));
}
async function rerankAndWait(timeout = 900_000) {
  await byTestId('rerank').click();
  await page.waitForSelector('[data-testid="run-status"][data-running="false"]', { timeout });
  return results();
}
async function waitReady(timeout = 600_000) {
  await page.waitForSelector('[data-testid="model-status"][data-state="ready"]', { timeout });
}

try {
  section('the empty page');
  await page.goto(siteUrl);
  await page.waitForSelector('[data-testid="gpu"].ok', { timeout: 60_000 });
  assert.equal(await byTestId('model-url').inputValue(), modelUrl, 'the build-time model URL is offered');
  const csp = await page.$eval('meta[http-equiv="Content-Security-Policy"]', (m) => m.content);
  assert.match(csp, new RegExp(`connect-src 'self' http://127.0.0.1:${modelPort} http://127.0.0.1:${hubPort};`));
  assert.equal(await byTestId('hub-repo').inputValue(), hubRepo, 'the build-time repository is offered');
  // f16 is offered exactly where the browser gives the GPU shader-f16 (SwiftShader does not).
  const gpuHasF16 = /· f16/.test(await byTestId('gpu').textContent());
  assert.equal(await byTestId('f16').isDisabled(), !gpuHasF16, 'the f16 choice follows shader-f16');
  if (!gpuHasF16) assert.match(await byTestId('f16-choice').textContent(), /no f16 arithmetic/);
  await shoot('empty');

  section('loading the model: progress, then a download cut short, then resumed');
  throttle = 2 * 1024 * 1024;
  await byTestId('load').click();
  await page.waitForSelector('[data-testid="progress"][data-stage="Downloading"]', { timeout: 60_000 });
  // Wait until the bytes, rate and time left are shown, then photograph it.
  await page.waitForFunction(() => /left/.test(document.querySelector('[data-testid="progress"]')?.textContent ?? ''),
    null, { timeout: 60_000 });
  await shoot('loading');
  const manifest = JSON.parse(fs.readFileSync(path.join(modelDir, 'sift-q4.json')));
  const shard = manifest.shards[0].file;
  await page.waitForFunction((name) => document.querySelector('[data-testid="progress"]')?.textContent.includes(name),
    shard, { timeout: 120_000 });
  await page.reload();
  const before = modelRequests.length;
  throttle = null;
  await page.waitForSelector('[data-testid="gpu"].ok', { timeout: 60_000 });
  await byTestId('load').click();
  await waitReady();
  const resumed = modelRequests.slice(before);
  log(`after the reload, the model server saw: ${resumed.join(', ')}`);
  assert.ok(!resumed.some((p) => p.endsWith('tokenizer.json')), 'files stored before the cut are not fetched again');
  assert.ok(resumed.some((p) => p.endsWith(shard)), 'the cut file is fetched again');

  section('the query and three documents');
  await byTestId('query-text').fill(queryText);
  await byTestId('query-image-input').setInputFiles(file('queryImage'));
  await byTestId('doc-text').fill(docText);
  await byTestId('add-text').click();
  await byTestId('doc-files').setInputFiles([file('image'), file('video')]);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="doc"]').length === 3);
  const kinds = await page.$$eval('[data-testid="doc"]', (d) => d.map((x) => x.dataset.kind));
  assert.deepEqual(kinds, ['text', 'image', 'video']);

  section('rerank, and every score against native sift rerank');
  let got = await rerankAndWait();
  await shoot('results');
  await page.setViewportSize({ width: 390, height: 844 });
  await shoot('phone');
  await page.setViewportSize({ width: 1280, height: 900 });
  const ids = await page.$$eval('[data-testid="doc"]', (d) => d.map((x) => Number(x.dataset.id)));
  for (const [index, id] of ids.entries()) {
    const row = got.find((r) => r.id === id);
    assert.ok(row, `document ${index} has a result`);
    assert.equal(row.state, 'scored', `document ${index}: ${row.error}`);
    const tolerance = row.kind === 'video' ? 1e-2 : 1e-4;
    const diff = Math.abs(row.score - nativeScore[index]);
    log(`${row.kind}: page ${row.score}, native ${nativeScore[index]}, difference ${diff.toExponential(2)}`);
    assert.ok(diff <= tolerance, `${row.kind} score ${row.score} vs native ${nativeScore[index]}`);
  }
  const video = got.find((r) => r.kind === 'video').video[0];
  assert.deepEqual(video.indices, videoGolden.frames_indices, 'the sampled frames are the reference\'s');
  assert.deepEqual(video.timestamps.map((t) => `<${Number(t).toFixed(1)} seconds>`), videoGolden.timestamps,
    'the video\'s timestamps are the reference\'s');
  const ranked = got.filter((r) => r.state === 'scored').map((r) => r.score);
  assert.deepEqual(ranked, [...ranked].sort((a, b) => b - a), 'best first');

  section('reload: the model comes from storage with no request for it; the inputs are restored');
  const requestsBefore = modelRequests.length;
  await page.reload();
  await waitReady();
  assert.equal(modelRequests.length, requestsBefore, `no model request after the reload: ${modelRequests.slice(requestsBefore)}`);
  assert.match(await byTestId('model-status').textContent(), /from this browser's storage/);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="doc"]').length === 3);
  assert.equal(await byTestId('query-text').inputValue(), queryText);

  section('a damaged file in storage is fetched again');
  await page.evaluate(async (name) => {
    const models = await (await navigator.storage.getDirectory()).getDirectoryHandle('sift-models');
    for await (const folder of models.values()) {
      const writable = await (await folder.getFileHandle(name)).createWritable({ keepExistingData: true });
      await writable.write({ type: 'write', position: 100, data: new Uint8Array([1, 2, 3, 4]) });
      await writable.close();
    }
  }, shard);
  const beforeRepair = modelRequests.length;
  await page.reload();
  await waitReady();
  assert.deepEqual(modelRequests.slice(beforeRepair), [`/tiny-q4/${shard}`], 'only the damaged shard is fetched');

  // Removed here, scored by the next rerank (the converted model's, below): two results.
  section('remove a document');
  await page.locator('[data-testid="doc"][data-kind="text"] [data-testid="remove-doc"]').click();
  assert.equal(await page.locator('[data-testid="doc"]').count(), 2);

  section('the checkpoint from the hub: converted in the page, cut off, resumed, byte for byte as sift quantize');
  hubThrottle = 1024 * 1024;
  await byTestId('hub-load').click();
  await page.waitForSelector('[data-testid="progress"][data-stage="Converting"]', { timeout: 120_000 });
  await page.waitForFunction(() => /model-00002-of-00002\.safetensors: /.test(
    document.querySelector('[data-testid="progress"]')?.textContent ?? ''), null, { timeout: 300_000 });
  await shoot('converting');
  await page.reload();
  hubThrottle = null;
  const beforeResume = hubRequests.length;
  // The page first loads the stored model of the URL box, as on any visit.
  await waitReady();
  await byTestId('hub-load').click();
  await waitReady();
  const resumedHub = hubRequests.slice(beforeResume);
  log(`after the reload, the hub saw: ${resumedHub.join(', ')}`);
  assert.ok(!resumedHub.some((p) => p.includes('model-00001-of-00002')), 'the converted source file is not fetched again');
  assert.ok(resumedHub.some((p) => p.includes('model-00002-of-00002')), 'the cut source file is fetched again');
  assert.match(await byTestId('model-status').textContent(), /Hugging Face/);
  const stored = await page.evaluate(async () => {
    const models = await (await navigator.storage.getDirectory()).getDirectoryHandle('sift-models');
    for await (const [key, folder] of models.entries()) {
      if (!key.startsWith('hub-')) continue;
      const read = async (name) => new Uint8Array(await (await (await folder.getFileHandle(name)).getFile()).arrayBuffer());
      const hex = async (bytes) => [...new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))]
        .map((b) => b.toString(16).padStart(2, '0')).join('');
      const manifestBytes = await read('sift-q4.json');
      const manifest = JSON.parse(new TextDecoder().decode(manifestBytes));
      const shards = {};
      for (const { file } of manifest.shards) shards[file] = await hex(await read(file));
      const names = [];
      for await (const name of folder.keys()) names.push(name);
      return { manifest: new TextDecoder().decode(manifestBytes), shards, names };
    }
    return null;
  });
  assert.ok(stored, 'the converted model is in the browser\'s storage');
  const nativeManifest = JSON.parse(fs.readFileSync(path.join(hubNative, 'sift-q4.json')));
  assert.ok(nativeManifest.shards.length >= 2, 'one shard per source file at least');
  for (const { file, sha256 } of nativeManifest.shards) {
    assert.equal(stored.shards[file], sha256, `${file}: the page's bytes are sift quantize's`);
  }
  assert.equal(stored.manifest, fs.readFileSync(path.join(hubNative, 'sift-q4.json'), 'utf8'), 'the same manifest');
  assert.ok(!stored.names.some((n) => n.startsWith('model-')), `no source file is stored: ${stored.names}`);
  got = await rerankAndWait();
  assert.equal(got.length, 2, 'the removed document is not scored');
  for (const row of got) {
    const index = request.documents.findIndex((d) => (row.kind === 'image' ? d.image : d.video));
    const tolerance = row.kind === 'video' ? 1e-2 : 1e-4;
    const diff = Math.abs(row.score - nativeScore[index]);
    log(`converted in the page, ${row.kind}: ${row.score} vs native ${nativeScore[index]} (${diff.toExponential(2)})`);
    assert.ok(diff <= tolerance, `${row.kind} with the converted model`);
  }

  section('the worker crashes mid-run: the page recovers with its inputs intact');
  await byTestId('rerank').click();
  await page.waitForSelector('[data-testid="run-status"][data-running="true"]');
  const [worker] = page.workers();
  assert.ok(worker, 'the model runs in a worker');
  // An uncaught error, as a panic (a GPU lost or out of memory inside burn) ends in.
  await worker.evaluate(() => setTimeout(() => { throw new Error('simulated crash'); }));
  await page.waitForSelector('[data-testid="notice"]', { timeout: 60_000 });
  const notice = await byTestId('notice').textContent();
  log(`notice: ${notice}`);
  assert.match(notice, /restarted/);
  await waitReady();
  assert.equal(await page.locator('[data-testid="doc"]').count(), 2, 'documents kept');
  assert.equal(await byTestId('query-text').inputValue(), queryText, 'query kept');
  got = await rerankAndWait();
  assert.ok(got.every((r) => r.state === 'scored'), 'scored after the restart');

  section('the site built for a sub-path (--public-url /sift/) runs there, with a model folder picked');
  const sub = await serve(subPort, distSub, { prefix: '/sift/' });
  try {
    const other = await context.newPage();
    await other.goto(`http://127.0.0.1:${subPort}/sift/`);
    await other.waitForSelector('[data-testid="gpu"].ok', { timeout: 60_000 });
    const before = modelRequests.length;
    await other.locator('[data-testid="model-folder"]').setInputFiles(modelDir);
    await other.waitForSelector('[data-testid="model-status"][data-state="ready"]', { timeout: 600_000 });
    assert.equal(modelRequests.length, before, 'a picked folder needs no network');
    await other.close();
  } finally {
    sub.close();
  }

  assert.deepEqual(foreign.filter((u) => !u.startsWith(`http://127.0.0.1:${subPort}/`)), [],
    'no request left for another origin');
  log('all browser checks passed');
} catch (error) {
  await shoot('failure').catch(() => {});
  console.error(consoleLines.slice(-40).join('\n'));
  console.error(`screenshot of the failure: ${path.join(shots, 'failure.png')}`);
  throw error;
} finally {
  await context.close();
  site.close();
  models.close();
  hub.close();
}
