// End-to-end test of the browser app, through the page only, in headless Chromium on WebGPU
// (SwiftShader). It serves dist/ and a tiny 4-bit model on 127.0.0.1, then: loads the model
// with visible progress and a storage line from what the page stored; adds a text+image query
// and texts, a document of a text and an image, an image and a VP9 video (shown by a poster
// frame); corrects settings it cannot use; reranks and checks every score against native
// `sift rerank` on the same 4-bit model and files, shown with the digits that order them, with
// the run's time; on a phone, the results first and Rerank in reach; removes documents after
// and during a run (ranking, status and export follow); reloads mid-rerank (said, and run
// again) and gets the model from the browser's storage with no request for it; damages a
// stored shard and sees it fetched again; cuts text at a length limit as native does; a query
// image that cannot be read (said once, by the query); bad files, each with its error in the
// page's words, across its row; the query video's sampling note under it alone; PDFs dropped
// on the page, one document per page drawn by the page's renderer worker, each page's score
// equal to native `sift rerank` on the PDF, a damaged and a password-protected PDF each its own
// error, a renderer that aborts or hangs on a page restarted with that page alone failed, the
// PDFs kept across a reload and drawn again from the kept file; converts the
// same model from a hub-style server (sharded checkpoint, files behind redirects) in the page,
// cut off and resumed, into the bytes `sift quantize` writes, and scores with it; crashes the
// worker mid-run and sees the page recover with its inputs intact; on the next visit, the model
// used last (converted, or a picked folder) loads by itself; *Measure speed* (`?bench=tiny`) in
// a second tab times the workload on random weights and prints its rows as ratios, the loaded
// model untouched. Screenshots of the real page
// (desktop and phone) go to docs/screenshots/.
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
  corrupt: ['bad_inputs/corrupt.jpg', 'corrupt.jpg'],
  empty: ['bad_inputs/empty.png', 'empty.png'],
  wide: ['bad_inputs/wide_201_to_1.png', 'wide_201_to_1.png'],
  pdf: ['bad_inputs/notes.pdf', 'notes.pdf'],
  report: ['pdf/report.pdf', 'report.pdf'],
  damaged: ['pdf/damaged.pdf', 'damaged.pdf'],
  encrypted: ['pdf/encrypted.pdf', 'encrypted.pdf'],
};
for (const [from, name] of Object.values(media)) {
  fs.copyFileSync(path.join(golden, from), path.join(files, name));
}
const file = (key) => path.join(files, media[key][1]);
// A file of no kind the page takes.
const keynote = path.join(files, 'slides.key');
fs.writeFileSync(keynote, Buffer.from('not a format sift reads\n'));
// 101 blank Letter pages, one more than the page takes of one PDF (no cross-reference table:
// the renderer rebuilds it, as it does for a damaged file).
const longPdf = path.join(files, 'long.pdf');
{
  const ids = Array.from({ length: 101 }, (_, i) => i + 3);
  fs.writeFileSync(longPdf, '%PDF-1.4\n1 0 obj <</Type/Catalog/Pages 2 0 R>> endobj\n'
    + `2 0 obj <</Type/Pages/Kids[${ids.map((i) => `${i} 0 R`).join(' ')}]/Count ${ids.length}>> endobj\n`
    + ids.map((i) => `${i} 0 obj <</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>> endobj\n`).join('')
    + 'trailer <</Root 1 0 R>>\n%%EOF\n');
}
// Not a video at all, under a video's name.
const brokenVideo = path.join(files, 'broken.mp4');
fs.writeFileSync(brokenVideo, Buffer.from('this is no video, only text under a video name\n'.repeat(40)));
// sky.jpg (300x200) tagged "rotate 90°" (EXIF orientation 6): the model, like the reference,
// reads it as stored, landscape; a browser left to itself shows it portrait.
const rotated = path.join(files, 'rotated.jpg');
{
  const jpeg = fs.readFileSync(file('image'));
  const tiff = Buffer.from([0x4d, 0x4d, 0, 0x2a, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]);
  const payload = Buffer.concat([Buffer.from('Exif\0\0', 'binary'), tiff]);
  const marker = Buffer.from([0xff, 0xe1, 0, 0]);
  marker.writeUInt16BE(payload.length + 2, 2);
  fs.writeFileSync(rotated, Buffer.concat([jpeg.subarray(0, 2), marker, payload, jpeg.subarray(2)]));
}
const queryText = 'a blue sky over green plants';
const docText = 'Green plants need light to grow.';
// Natively 8.7e-5 below docText's score: both 0.3193 at 4 decimals.
const closeText = 'Clouds drift in the sky.';
// Long enough to be cut at 128 tokens (its score moves), where the other documents are not.
const longText = Array(8).fill('Plants turn sunlight, water and air into sugar and oxygen; this is '
  + 'photosynthesis, and it happens in the green parts of leaves.').join(' ');
const mixedText = 'A clear day in the garden.';
const maxLength = 128;
// The documents in the order the page adds them: the texts, the text+image document, then the
// picked files by name.
const request = {
  query: { text: queryText, image: 'tiny.png' },
  documents: [{ text: docText }, { text: closeText }, { text: longText }, { text: mixedText, image: 'sky.jpg' },
    { image: 'sky.jpg' }, { video: 'vp9.webm' }],
};
fs.writeFileSync(path.join(files, 'request.json'), JSON.stringify(request));
const nativeScores = (...extra) => Object.fromEntries(JSON.parse(execFileSync(siftBin,
  ['rerank', '--model', modelDir, ...extra, path.join(files, 'request.json')]).toString())
  .results.map((r) => [r.index, r.score]));
const nativeScore = nativeScores();
const nativeCut = nativeScores('--max-length', String(maxLength));
log(`native scores: ${JSON.stringify(nativeScore)}; at --max-length ${maxLength}: ${JSON.stringify(nativeCut)}`);
// The PDFs against the same query: one result per page, labelled with its file and page.
fs.writeFileSync(path.join(files, 'request-pdf.json'), JSON.stringify({
  query: request.query,
  documents: [{ pdf: 'damaged.pdf' }, { pdf: 'encrypted.pdf' }, { pdf: 'report.pdf' }],
}));
const nativePdf = JSON.parse(execFileSync(siftBin,
  ['rerank', '--model', modelDir, path.join(files, 'request-pdf.json')]).toString()).results;
log(`native PDF pages: ${JSON.stringify(nativePdf.map(({ pdf, page, score }) => ({ pdf, page, score })))}`);
const videoGolden = JSON.parse(fs.readFileSync(path.join(golden, 'video/vp9/expected.json')));
// Bytes of the quantized model's files, as the page should report them stored.
const modelBytes = fs.readdirSync(modelDir).reduce((sum, f) => sum + fs.statSync(path.join(modelDir, f)).size, 0);
// What the CLI says and the page must not: positions instead of names, flags, command lines.
const cliWording = /image \d+ of the|video \d+ of the|ffmpeg|\bAVI\b|frame images|--max|`|Options::|IN -c:v/;

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
// The same page on a phone, then back on the desktop.
async function shootPhone(name) {
  await page.setViewportSize(phone);
  await shoot(name);
  await page.setViewportSize(desktop);
}
const desktop = { width: 1280, height: 900 };
const phone = { width: 390, height: 844 };

/// The scored results as the page shows them: kind, score, error, video sampling.
async function results() {
  return page.$$eval('[data-testid="result"]', (rows) => rows.map((row) => ({
    id: Number(row.dataset.id),
    kind: row.dataset.kind,
    state: row.dataset.state,
    score: row.dataset.score === '' ? null : Number(row.dataset.score),
    shown: row.querySelector('[data-testid="score"]')?.textContent ?? null,
    error: row.querySelector('[data-testid="doc-error"]')?.textContent ?? null,
    video: [...row.querySelectorAll('[data-testid="video-sample"]')].map((v) => ({
      video: Number(v.dataset.video),
      indices: v.dataset.indices.split(',').map(Number),
      timestamps: v.dataset.timestamps.split(','),
    })),
  })));
}
async function waitDone(timeout = 900_000) {
  await page.waitForSelector('[data-testid="run-status"][data-running="false"]', { timeout });
  return results();
}
async function rerankAndWait(timeout = 900_000) {
  await byTestId('rerank').click();
  return waitDone(timeout);
}
async function waitReady(timeout = 600_000) {
  await page.waitForSelector('[data-testid="model-status"][data-state="ready"]', { timeout });
}
async function docIds() {
  return page.$$eval('[data-testid="doc"]', (d) => d.map((x) => Number(x.dataset.id)));
}
/// The export the page downloads, parsed.
async function exported() {
  const [download] = await Promise.all([page.waitForEvent('download'), byTestId('export').click()]);
  return JSON.parse(fs.readFileSync(await download.path(), 'utf8'));
}
/// A run's page scores against native ones: `nativeIndex` maps a page id to its request index.
function compare(got, nativeIndex, expected, what) {
  for (const row of got) {
    const index = nativeIndex.get(row.id);
    assert.ok(index !== undefined, `${what}: document ${row.id} is one of the request's`);
    assert.equal(row.state, 'scored', `${what}, document ${index}: ${row.error}`);
    const tolerance = row.kind === 'video' ? 1e-2 : 1e-4;
    const diff = Math.abs(row.score - expected[index]);
    log(`${what}, ${row.kind} ${index}: page ${row.score}, native ${expected[index]}, difference ${diff.toExponential(2)}`);
    assert.ok(diff <= tolerance, `${what}: ${row.kind} ${index} score ${row.score} vs native ${expected[index]}`);
  }
}
/// Drops `paths` on the drop zone, as a person drags files from a folder.
async function dropFiles(paths) {
  const transfer = await page.evaluateHandle((list) => {
    const data = new DataTransfer();
    for (const [name, base64] of list) {
      const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      data.items.add(new File([bytes], name, { type: 'application/pdf' }));
    }
    return data;
  }, paths.map((p) => [path.basename(p), fs.readFileSync(p).toString('base64')]));
  await byTestId('drop').dispatchEvent('drop', { dataTransfer: transfer });
}
/// The PDF rows of the ranking: file and page from their label, as `results()` reads them.
async function pdfResults() {
  const labels = await page.$$eval('[data-testid="result"]', (rows) => rows.map((r) => r.querySelector('.name')?.textContent ?? ''));
  return (await results()).map((row, i) => {
    const [, pdf, page] = labels[i].match(/^(.*?\.pdf)(?: · page (\d+))?$/) ?? [];
    return { ...row, pdf, page: page ? Number(page) : undefined };
  }).filter((row) => row.kind === 'pdf');
}
/// PDF rows against native `sift rerank` on the same PDFs: every page within 1e-5, the files
/// that cannot be opened with their error in the page's words.
function comparePdf(rows, what) {
  for (const row of rows) {
    const native = nativePdf.find((r) => r.pdf === row.pdf && r.page === row.page);
    assert.ok(native, `${what}: ${row.pdf} page ${row.page} is one of native's`);
    if (native.score === null) {
      assert.equal(row.state, 'failed', `${what}: ${row.pdf} fails natively`);
      assert.ok(row.error.startsWith(row.pdf), `${what}: the error names ${row.pdf}: ${row.error}`);
      assert.doesNotMatch(row.error, cliWording, `${what}: ${row.pdf}: no CLI wording`);
      continue;
    }
    assert.equal(row.state, 'scored', `${what}: ${row.pdf} page ${row.page}: ${row.error}`);
    const diff = Math.abs(row.score - native.score);
    log(`${what}, ${row.pdf} page ${row.page}: page ${row.score}, native ${native.score}, difference ${diff.toExponential(2)}`);
    assert.ok(diff <= 1e-5, `${what}: ${row.pdf} page ${row.page} score ${row.score} vs native ${native.score}`);
  }
}
/// Runs `act` on the page's worker named `name`: the model's (`sift-model`) or the PDF
/// renderer (`sift-renderer`).
async function inWorker(name, act) {
  for (const worker of page.workers()) {
    if (await worker.evaluate(() => self.name).catch(() => null) === name) return act(worker);
  }
  throw new Error(`no worker named ${name}`);
}
async function removeDoc(id) {
  await page.locator(`[data-testid="doc"][data-id="${id}"] [data-testid="remove-doc"]`).click();
}
/// The mean brightness (0-255) of the poster frame of the video in `selector`, or null.
async function posterBrightness(selector) {
  await page.waitForSelector(`${selector} video[poster]`, { timeout: 60_000 });
  return page.$eval(`${selector} video[poster]`, async (video) => {
    const img = new Image();
    img.src = video.getAttribute('poster');
    await img.decode();
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const context = canvas.getContext('2d');
    context.drawImage(img, 0, 0);
    const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
    let sum = 0;
    for (let i = 0; i < data.length; i += 4) sum += data[i] + data[i + 1] + data[i + 2];
    return sum / (data.length / 4) / 3;
  });
}
async function openSettings() {
  await page.$eval('[data-testid="query"] details', (d) => { d.open = true; });
}
/// Types `value` in a settings box and leaves it, as a person does.
async function setSetting(id, value) {
  await openSettings();
  await byTestId(id).fill(value);
  await byTestId(id).press('Tab');
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
  await shootPhone('empty-phone');

  section('loading the model: progress, then a download cut short, then resumed');
  throttle = 2 * 1024 * 1024;
  await byTestId('load').click();
  await page.waitForSelector('[data-testid="progress"][data-stage="Downloading"]', { timeout: 60_000 });
  // Wait until the bytes, rate and time left are shown, then photograph it.
  await page.waitForFunction(() => /left/.test(document.querySelector('[data-testid="progress"]')?.textContent ?? ''),
    null, { timeout: 60_000 });
  await shoot('loading');
  await shootPhone('loading-phone');
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

  section('the storage line counts what the page stored');
  // The line before the load's end counted the files stored so far; it follows the load.
  await page.waitForFunction((mb) => {
    const stored = document.querySelector('[data-testid="storage"]')?.textContent.match(/models ([\d.]+) MB/);
    return stored && Math.abs(Number(stored[1]) - mb) < 0.2;
  }, modelBytes / 1e6, { timeout: 30_000 }).catch(() => {});
  const storageLine = await byTestId('storage').textContent();
  log(`storage: ${storageLine}`);
  const storedMb = Number(storageLine.match(/models ([\d.]+) MB/)?.[1]);
  assert.ok(Math.abs(storedMb - modelBytes / 1e6) < 0.2, `the stored model's ${modelBytes} bytes: ${storageLine}`);

  section('the query and six documents: texts, a text with an image, an image, a video');
  await byTestId('query-text').fill(queryText);
  await byTestId('query-image-input').setInputFiles(file('queryImage'));
  for (const text of [docText, closeText, longText]) {
    await byTestId('doc-text').fill(text);
    await byTestId('add-text').click();
  }
  await byTestId('doc-text').fill(mixedText);
  await byTestId('attach-input').setInputFiles(file('image'));
  assert.equal(await byTestId('add-text').textContent(), 'Add document', 'an attachment makes a document of parts');
  await byTestId('add-text').click();
  await byTestId('doc-files').setInputFiles([file('image'), file('video')]);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="doc"]').length === 6);
  const kinds = await page.$$eval('[data-testid="doc"]', (d) => d.map((x) => x.dataset.kind));
  assert.deepEqual(kinds, ['text', 'text', 'text', 'mixed', 'image', 'video']);
  const mixedParts = await page.$$eval('[data-testid="doc"][data-kind="mixed"] .preview', (p) => p.map((x) => x.dataset.part));
  assert.deepEqual(mixedParts, ['text', 'image'], 'the mixed document shows its parts');
  const ids = await docIds();
  const nativeIndex = new Map(ids.map((id, index) => [id, index]));
  const brightness = await posterBrightness('[data-testid="doc"][data-kind="video"]');
  log(`the video document's poster frame: mean brightness ${brightness.toFixed(1)}`);
  assert.ok(brightness > 20, 'the video document shows a frame, not a black box');
  await byTestId('documents').screenshot({ path: path.join(shots, 'mixed.png') });
  await page.setViewportSize(phone);
  await byTestId('documents').screenshot({ path: path.join(shots, 'mixed-phone.png') });
  await page.setViewportSize(desktop);

  section('settings the page cannot use are corrected on screen');
  await setSetting('fps', '0');
  assert.equal(await byTestId('fps').inputValue(), '1', 'fps 0 shows the 1 used');
  assert.match(await byTestId('settings-note').textContent(), /above 0/);
  await setSetting('max-frames', '7');
  assert.equal(await byTestId('max-frames').inputValue(), '6', 'an odd Most frames shows the even count used');
  assert.match(await byTestId('settings-note').textContent(), /pairs/);
  await setSetting('max-frames', '64');

  section('rerank, and every score against native sift rerank');
  let got = await rerankAndWait();
  await shoot('results');
  compare(got, nativeIndex, nativeScore, 'first run');
  assert.equal(got.length, 6);
  const video = got.find((r) => r.kind === 'video').video;
  assert.equal(video.length, 1, 'the video document has its own sampling note');
  assert.deepEqual(video[0].indices, videoGolden.frames_indices, 'the sampled frames are the reference\'s');
  assert.deepEqual(video[0].timestamps.map((t) => `<${Number(t).toFixed(1)} seconds>`), videoGolden.timestamps,
    'the video\'s timestamps are the reference\'s');
  const ranked = got.filter((r) => r.state === 'scored').map((r) => r.score);
  assert.deepEqual(ranked, [...ranked].sort((a, b) => b - a), 'best first');
  // Neighbours whose scores differ are shown as different numbers (docText and closeText are
  // 8.7e-5 apart natively).
  for (const [a, b] of got.slice(1).map((r, i) => [got[i], r])) {
    if (a.score !== b.score) assert.notEqual(a.shown, b.shown, `${a.score} and ${b.score} shown apart`);
  }
  const shownClose = [ids[0], ids[1]].map((id) => got.find((r) => r.id === id).shown);
  log(`scores shown: ${got.map((r) => r.shown).join(', ')}`);
  assert.notEqual(shownClose[0], shownClose[1], 'the two close texts are told apart');
  const status = await byTestId('run-status').textContent();
  log(`status: ${status}`);
  assert.match(status, /^6 documents ranked in \d+\.\d s on .+\.$/, 'the run\'s size, time and GPU');

  section('on a phone: Rerank in reach, and the results first once a run has started');
  await page.setViewportSize(phone);
  await byTestId('documents').scrollIntoViewIfNeeded();
  const button = await byTestId('rerank').boundingBox();
  assert.ok(button && button.y >= 0 && button.y + button.height <= phone.height, `Rerank is on screen: ${JSON.stringify(button)}`);
  const [resultsTop, documentsTop] = await page.evaluate(() => ['#results', '[data-testid="documents"]']
    .map((s) => document.querySelector(s).getBoundingClientRect().top));
  assert.ok(resultsTop < documentsTop, 'the results come before the documents');
  await shoot('results-phone');
  await page.setViewportSize(desktop);

  section('a document removed after the run leaves its ranking, status and export');
  await removeDoc(ids[1]);
  got = await results();
  assert.equal(got.length, 5);
  assert.match(await byTestId('run-status').textContent(), /^5 documents ranked in /);
  let json = await exported();
  const left = ids.filter((id) => id !== ids[1]);
  assert.deepEqual(json.results.map((r) => r.index).sort(), [0, 1, 2, 3, 4], 'indices among the documents left');
  for (const { index, score } of json.results) {
    assert.ok(Math.abs(score - got.find((r) => r.id === left[index]).score) < 1e-6, `export entry ${index}`);
  }

  section('reloading mid-rerank: said after the reload, and run again; the model from storage, no request');
  const requestsBefore = modelRequests.length;
  await byTestId('rerank').click();
  await page.waitForSelector('[data-testid="run-status"][data-running="true"]');
  await page.reload();
  await page.waitForSelector('[data-testid="interrupted"]', { timeout: 60_000 });
  assert.match(await byTestId('interrupted').textContent(), /of 5 documents, was interrupted/);
  await waitReady();
  assert.equal(modelRequests.length, requestsBefore, `no model request after the reload: ${modelRequests.slice(requestsBefore)}`);
  assert.match(await byTestId('model-status').textContent(), /from this browser's storage/);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="doc"]').length === 5);
  assert.deepEqual(await docIds(), left, 'the documents are restored');
  assert.equal(await page.locator('[data-testid="doc"][data-kind="mixed"] .preview').count(), 2, 'with their parts');
  assert.equal(await byTestId('query-text').inputValue(), queryText);
  await byTestId('rerun').click();
  got = await waitDone();
  compare(got, nativeIndex, nativeScore, 'run again after the reload');
  assert.equal(await byTestId('interrupted').count(), 0, 'the offer goes once taken');

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

  section(`a text-length limit: text cut at ${maxLength} tokens, as native --max-length cuts it`);
  await setSetting('max-length', String(maxLength));
  await page.waitForFunction((n) => document.querySelector('[data-testid="model-status"][data-state="ready"]')
    ?.textContent.includes(`text up to ${n} tokens`), maxLength, { timeout: 600_000 });
  got = await rerankAndWait();
  compare(got, nativeIndex, nativeCut, `--max-length ${maxLength}`);
  const longRow = got.find((r) => r.id === ids[2]);
  assert.ok(Math.abs(longRow.score - nativeScore[2]) > 1e-3, 'the long text was cut');
  await setSetting('max-length', '');
  await page.waitForFunction(() => document.querySelector('[data-testid="model-status"][data-state="ready"]')
    ?.textContent.includes('text up to 10240 tokens'), null, { timeout: 600_000 });

  section('a query image that cannot be read: said once, by the query');
  await byTestId('query-image-input').setInputFiles(file('corrupt'));
  got = await rerankAndWait();
  const queryError = await byTestId('query-error').textContent();
  log(`query error: ${queryError}`);
  assert.match(queryError, /^The query image corrupt\.jpg /);
  assert.doesNotMatch(queryError, cliWording);
  assert.ok(got.every((r) => r.error === 'not scored: the query could not be read'), JSON.stringify(got));
  const bodyText = await page.evaluate(() => document.body.innerText);
  assert.equal(bodyText.split(queryError).length - 1, 1, 'the query\'s error is shown once');
  await byTestId('query-image-input').setInputFiles(file('queryImage'));

  section('bad files: each its error in the page\'s words, across its row; a query video\'s note under it alone');
  await byTestId('query-video-input').setInputFiles(file('video'));
  const goodIds = await docIds();
  await byTestId('doc-files').setInputFiles([file('corrupt'), file('empty'), file('wide'), file('pdf'), brokenVideo, rotated, keynote]);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="doc"]').length === 11);
  assert.match(await byTestId('notice').textContent(), /slides\.key/, 'a file of no kind the page takes is named');
  // A PDF with no page tree says so as soon as it is added.
  assert.match(await page.locator('[data-testid="doc"]:has-text("notes.pdf") [data-testid="pdf-error"]').textContent(),
    /^notes\.pdf /);
  // The rotated photo is shown as stored (landscape), as the model reads it.
  const rotatedBox = await page.locator('[data-testid="doc"]:has-text("rotated.jpg") img').boundingBox();
  assert.ok(rotatedBox.width > rotatedBox.height, `shown as stored: ${JSON.stringify(rotatedBox)}`);
  got = await rerankAndWait();
  await shoot('bad-files');
  await shootPhone('bad-files-phone');
  const names = await page.$$eval('[data-testid="result"]', (rows) => rows.map((r) => r.querySelector('.name')?.textContent ?? ''));
  for (const [i, row] of got.entries()) {
    if (row.state !== 'failed') continue;
    log(`${names[i]}: ${row.error}`);
    assert.ok(row.error.includes(names[i]), `the error names ${names[i]}: ${row.error}`);
    assert.doesNotMatch(row.error, cliWording, `${names[i]}: no CLI wording`);
  }
  assert.deepEqual(got.filter((r) => r.state === 'failed').length, 5, 'the five bad files fail');
  assert.ok(got.find((r) => r.kind === 'image' && names[got.indexOf(r)] === 'rotated.jpg').state === 'scored');
  const layout = await page.$$eval('[data-testid="result"][data-state="failed"]', (rows) => rows.map((row) => ({
    row: row.getBoundingClientRect().width,
    error: row.querySelector('[data-testid="doc-error"]').getBoundingClientRect().width,
  })));
  for (const { row, error } of layout) assert.ok(error >= 0.6 * row, `an error reads across its row: ${error} of ${row} px`);
  const querySamples = await page.$$eval('[data-testid="query"] figure:has(video) [data-testid="video-sample"]', (n) => n.length);
  assert.equal(querySamples, 1, 'the query video\'s note is under it');
  assert.equal(await page.locator('[data-testid="doc"]:has-text("broken.mp4") [data-testid="no-preview"]').count(), 1,
    'a video the browser cannot play says so, not a black box');
  for (const row of got) {
    const own = row.kind === 'video' && row.state === 'scored' ? 1 : 0;
    assert.equal(row.video.length, own, `${row.kind} ${row.id}: only its own videos' notes`);
    if (own) assert.equal(row.video[0].video, row.id << 8, 'the note under the video it describes');
  }
  for (const id of await docIds()) {
    if (!goodIds.includes(id)) await removeDoc(id);
  }
  await page.locator('[data-testid="query"] button[aria-label="Remove the query video"]').click();

  section('PDFs dropped on the page: a document per page, drawn in the renderer worker, scored as native');
  await dropFiles([file('report'), file('damaged'), file('encrypted')]);
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid="doc"]').length === n, goodIds.length + 6);
  const pdfLabels = await page.$$eval('[data-testid="doc"][data-kind="pdf"] .name', (n) => n.map((x) => x.textContent));
  assert.deepEqual(pdfLabels, ['damaged.pdf', 'encrypted.pdf', 'report.pdf · page 1', 'report.pdf · page 2',
    'report.pdf · page 3', 'report.pdf · page 4'], 'one document per page, in name order');
  const openErrors = await page.$$eval('[data-testid="doc"] [data-testid="pdf-error"]', (n) => n.map((x) => x.textContent));
  log(`PDFs that cannot be opened: ${openErrors.join(' | ')}`);
  assert.match(openErrors[0], /^damaged\.pdf is damaged/);
  assert.match(openErrors[1], /^encrypted\.pdf is protected by a password/);
  for (const error of openErrors) assert.doesNotMatch(error, cliWording);
  await byTestId('rerank').click();
  // Progress per page; the run reads every document before it scores them, so the time from
  // one page's line to the next is the time the renderer took to draw it.
  const drawing = async (n) => {
    await page.waitForFunction((n) => new RegExp(`rendering report\\.pdf, page ${n} of 4`).test(
      document.querySelector('[data-testid="run-status"]')?.textContent ?? ''), n, { timeout: 120_000, polling: 50 });
    return Date.now();
  };
  const firstPage = await drawing(1);
  log(`while drawing: ${await byTestId('run-status').textContent()}`);
  log(`page 1 drawn in ${((await drawing(2)) - firstPage) / 1000} s`);
  got = await waitDone();
  const pdfRows = await pdfResults();
  comparePdf(pdfRows, 'PDF pages');
  const thumbs = await page.$$eval('[data-testid="result"] [data-testid="pdf-thumb"] img', async (imgs) => Promise.all(
    imgs.map(async (img) => { await img.decode(); return [img.naturalWidth, img.naturalHeight]; })));
  assert.deepEqual(thumbs, Array(4).fill([1120, 1600]), 'each page shown as drawn for the model (A4 at 1120×1600)');
  json = await exported();
  const exportedPdf = json.results.filter((r) => r.pdf).map(({ pdf, page, score }) => ({ pdf, page, score }));
  assert.deepEqual(exportedPdf.map(({ pdf, page }) => `${pdf} ${page}`).sort(),
    nativePdf.map(({ pdf, page }) => `${pdf} ${page}`).sort(), 'the export labels each page as the CLI does');
  // The ranking alone, from the whole page (the column is sticky, so not by itself).
  await page.evaluate(() => window.scrollTo(0, 0));
  const ranking = await page.locator('#results').boundingBox();
  await page.screenshot({ path: path.join(shots, 'pdf-pages.png'), fullPage: true,
    clip: { x: ranking.x - 12, y: ranking.y - 12, width: ranking.width + 24, height: ranking.height + 24 } });
  await page.locator('[data-testid="result"] [data-testid="pdf-thumb"]').first().click();
  const large = await page.locator('[data-testid="viewer"] img').boundingBox();
  const small = await page.locator('[data-testid="result"] [data-testid="pdf-thumb"] img').first().boundingBox();
  assert.ok(large.height > 3 * small.height, `opened, the page is shown larger: ${large.height} against ${small.height} px`);
  await page.screenshot({ path: path.join(shots, 'pdf-page-open.png') });
  await page.keyboard.press('Escape');
  assert.equal(await byTestId('viewer').count(), 0, 'Escape closes it');

  section('the renderer aborts on a page, then hangs on one: restarted, that page alone fails, the rest scored');
  // Two pages are enough here (a page costs a minute of SwiftShader): the first fails, the
  // second is drawn by the restarted renderer.
  const pageDoc = async (label) => page.$eval(`[data-testid="doc"][data-kind="pdf"]:has(.name:text-is("${label}"))`,
    (d) => Number(d.dataset.id));
  for (const n of [3, 4]) await removeDoc(await pageDoc(`report.pdf · page ${n}`));
  // What wasm32 does on a renderer panic or a failed allocation: the worker dies mid-message.
  await inWorker('sift-renderer', (w) => w.evaluate(() => {
    const handler = self.onmessage;
    self.onmessage = () => { self.onmessage = handler; throw new Error('simulated renderer abort'); };
  }));
  got = await rerankAndWait();
  let failedPages = (await pdfResults()).filter((r) => r.state === 'failed' && r.page);
  assert.deepEqual(failedPages.map((r) => r.page), [1], 'the page being drawn fails');
  log(`aborted: ${failedPages[0].error}`);
  assert.match(failedPages[0].error, /^Page 1 of report\.pdf stopped the PDF renderer \(.*simulated renderer abort.*\).*the other documents are/);
  const afterAbort = (await pdfResults()).filter((r) => r.page !== 1);
  assert.ok(afterAbort.some((r) => r.page === 2), 'the restarted renderer drew the next page');
  comparePdf(afterAbort, 'after the renderer aborted');
  // A page that never finishes: stopped at the page's deadline. The run reads every document
  // before it scores them, so the others' scores show that it went on.
  await removeDoc(await pageDoc('report.pdf · page 2'));
  await inWorker('sift-renderer', (w) => w.evaluate(() => {
    const handler = self.onmessage;
    self.onmessage = () => { self.onmessage = handler; for (const end = Date.now() + 600_000; Date.now() < end;); };
  }));
  got = await rerankAndWait();
  failedPages = (await pdfResults()).filter((r) => r.state === 'failed' && r.page);
  assert.deepEqual(failedPages.map((r) => r.page), [1], 'the page past its deadline fails');
  log(`hung: ${failedPages[0].error}`);
  assert.match(failedPages[0].error, /^Page 1 of report\.pdf took more than 30 s to draw and was stopped/);
  assert.ok(got.filter((r) => r.kind !== 'pdf').every((r) => r.state === 'scored'), 'the other documents are scored');
  comparePdf((await pdfResults()).filter((r) => r.page !== 1), 'after the renderer hung');
  assert.equal(await byTestId('model-status').getAttribute('data-state'), 'ready', 'the model was never reloaded');
  // The PDF pages survive a reload (the file is kept once), the unopenable ones with their error.
  const pdfCards = () => page.$$eval('[data-testid="doc"][data-kind="pdf"]', (d) => d.map((x) => [
    x.querySelector('.name').textContent, x.querySelector('[data-testid="pdf-error"]')?.textContent ?? null]));
  const pdfDocs = await pdfCards();
  await page.reload();
  await waitReady();
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid="doc"][data-kind="pdf"]').length === n,
    pdfDocs.length, { timeout: 60_000 });
  assert.deepEqual(await pdfCards(), pdfDocs, 'the PDF documents are restored, errors and all');
  got = await rerankAndWait();
  comparePdf(await pdfResults(), 'from the kept file, after a reload');
  // A PDF longer than the page takes: its first 100 pages, and the notice says so.
  const docsBefore = (await docIds()).length;
  await byTestId('doc-files').setInputFiles(longPdf);
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid="doc"]').length === n, docsBefore + 100);
  assert.match(await byTestId('notice').textContent(), /^long\.pdf has 101 pages; pages 1–100 were added, as at most 100 pages of one PDF are ranked\./);
  assert.deepEqual(await page.$$eval('[data-testid="doc"][data-kind="pdf"] .name', (n) => n.slice(-2).map((x) => x.textContent)),
    ['long.pdf · page 99', 'long.pdf · page 100']);
  for (const id of await docIds()) {
    if (!goodIds.includes(id)) await removeDoc(id);
  }

  section('a document removed during a run leaves its ranking, status and export');
  await byTestId('rerank').click();
  await removeDoc(ids[0]);
  got = await waitDone();
  assert.equal(got.length, 4);
  assert.match(await byTestId('run-status').textContent(), /^4 documents ranked in /);
  json = await exported();
  assert.equal(json.results.length, 4, 'the export holds the documents left');
  const remaining = await docIds();

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
  // The page first loads the model used last (the URL's), as on any visit.
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
  assert.equal(got.length, 4, 'the removed documents are not scored');
  compare(got, nativeIndex, nativeScore, 'converted in the page');

  section('the worker crashes mid-run: the page recovers with its inputs intact');
  await byTestId('rerank').click();
  await page.waitForSelector('[data-testid="run-status"][data-running="true"]');
  // An uncaught error, as a panic (a GPU lost or out of memory inside burn) ends in.
  await inWorker('sift-model', (worker) => worker.evaluate(() => setTimeout(() => { throw new Error('simulated crash'); })));
  await page.waitForSelector('[data-testid="notice"]', { timeout: 60_000 });
  const notice = await byTestId('notice').textContent();
  log(`notice: ${notice}`);
  assert.match(notice, /restarted/);
  await waitReady();
  assert.deepEqual(await docIds(), remaining, 'documents kept');
  assert.equal(await byTestId('query-text').inputValue(), queryText, 'query kept');
  got = await rerankAndWait();
  assert.ok(got.every((r) => r.state === 'scored'), 'scored after the restart');

  section('the next visit loads the model used last by itself: the converted one, not the URL\'s');
  const [hubBefore, modelBefore] = [hubRequests.length, modelRequests.length];
  await page.reload();
  await waitReady();
  assert.match(await byTestId('model-status').textContent(), /Hugging Face.*from this browser's storage/);
  assert.equal(hubRequests.length + modelRequests.length, hubBefore + modelBefore, 'nothing fetched');

  section('Measure speed (?bench=tiny) in a second tab: random weights made in its own worker, each row timed, the loaded model left alone');
  {
    const before = [hubRequests.length, modelRequests.length];
    const bench = await context.newPage();
    await bench.goto(`${siteUrl}?bench=tiny`);
    await bench.waitForSelector('[data-testid="speed-progress"]', { timeout: 60_000 });
    await bench.waitForSelector('[data-testid="speed-table"][data-done="true"], [data-testid="speed-failed"]',
      { timeout: 900_000 });
    assert.equal(await bench.locator('[data-testid="speed-failed"]').count(), 0,
      await bench.locator('[data-testid="speed-failed"]').textContent().catch(() => ''));
    const rows = await bench.$$eval('[data-testid="speed-table"] tbody tr', (trs) => trs.map((tr) => ({
      workload: tr.dataset.workload, documents: Number(tr.dataset.documents), ms: Number(tr.dataset.ms),
    })));
    assert.deepEqual(rows.map((r) => `${r.workload} ${r.documents}`), ['text 1', 'text 16', 'image 1', 'image 2']);
    for (const row of rows) assert.ok(Number.isFinite(row.ms) && row.ms > 0, JSON.stringify(row));
    assert.match(await bench.locator('[data-testid="speed-table"] caption').textContent(), /swiftshader.*tiny test shape/i);
    // Printed as ratios, never judged: SwiftShader's speed says nothing about a GPU's.
    const ms = Object.fromEntries(rows.map((r) => [`${r.workload} ${r.documents}`, r.ms]));
    log(`speed on SwiftShader, ms per pair: ${rows.map((r) => `${r.workload} × ${r.documents} ${r.ms.toFixed(1)}`).join(', ')}`);
    log(`ratios: 16 texts per pair against 1 text ${(ms['text 1'] / ms['text 16']).toFixed(2)}× faster; `
      + `2 images per pair against 1 ${(ms['image 1'] / ms['image 2']).toFixed(2)}×; an image pair costs `
      + `${(ms['image 1'] / ms['text 1']).toFixed(1)} text pairs`);
    await bench.locator('[data-testid="speed"]').screenshot({ path: path.join(shots, 'speed.png') });
    await bench.close();
    assert.deepEqual([hubRequests.length, modelRequests.length], before, 'measuring fetched nothing');
    assert.equal(await byTestId('model-status').getAttribute('data-state'), 'ready', 'the loaded model stayed');
  }

  section('the site built for a sub-path (--public-url /sift/) runs there, with a model folder picked; the next visit loads it by itself');
  const sub = await serve(subPort, distSub, { prefix: '/sift/' });
  try {
    const other = await context.newPage();
    await other.goto(`http://127.0.0.1:${subPort}/sift/`);
    await other.waitForSelector('[data-testid="gpu"].ok', { timeout: 60_000 });
    const before = modelRequests.length;
    await other.locator('[data-testid="model-folder"]').setInputFiles(modelDir);
    await other.waitForSelector('[data-testid="model-status"][data-state="ready"]', { timeout: 600_000 });
    assert.equal(modelRequests.length, before, 'a picked folder needs no network');
    await other.reload();
    await other.waitForSelector('[data-testid="model-status"][data-state="ready"]', { timeout: 600_000 });
    assert.match(await other.locator('[data-testid="model-status"]').textContent(), /on this computer.*from this browser's storage/);
    assert.equal(modelRequests.length, before, 'nor does loading it again');
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
