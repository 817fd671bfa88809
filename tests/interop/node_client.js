// Node's `ws` (Debian node-ws) as a client against a cnetmod echo server.
//   NODE_PATH=/usr/share/nodejs node node_client.js URL [--compression=expect|declined]
//       [--mode=takeover|small_windows|no_takeover_server] [--ca=FILE]
// Without --compression the client offers no extension. With it, it offers
// permessage-deflate (threshold 0: every message compressed) and checks that
// the server accepted it (expect) or answered without it (declined).
// --mode (with --compression=expect): what the server was started with and
// so what the answer must be (RFC 7692 §7.1), then chat lines, documents and
// 1 MiB messages over the agreed windows:
//   takeover            echo_server --deflate: ws's default offer, context
//                       takeover both ways, 32 KiB windows;
//   small_windows       echo_server --deflate --window-bits 9: an offer of
//                       client_max_window_bits=9, server_max_window_bits=10
//                       is answered with 9 both ways; ws's default offer and
//                       one without client_max_window_bits are checked too;
//   no_takeover_server  echo_server --deflate --no-context-takeover: both
//                       *_no_context_takeover in the answer to ws's default offer.
// --ca: trust this CA for wss://.
'use strict';
const WebSocket = require('ws');
const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');

const url = process.argv[2];
const flags = Object.fromEntries(
  process.argv.slice(3).map((a) => {
    const m = /^--([a-z]+)=(.*)$/.exec(a);
    if (!m) throw new Error(`unknown argument ${a}`);
    return [m[1], m[2]];
  }),
);
const compression = flags.compression;  // undefined, 'expect' or 'declined'
const mode = flags.mode;  // undefined, 'takeover', 'small_windows' or 'no_takeover_server'
if (mode && !['takeover', 'small_windows', 'no_takeover_server'].includes(mode)) throw new Error(`unknown --mode=${mode}`);
if (mode && compression !== 'expect') throw new Error('--mode needs --compression=expect');
const KIB = 1024;
const MIB = 1024 * 1024;

// perMessageDeflate: false (no offer) or ws's settings for the offer.
function open(perMessageDeflate = compression ? { threshold: 0 } : false) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      perMessageDeflate,
      maxPayload: 0,
      handshakeTimeout: 10000,
      ca: flags.ca ? fs.readFileSync(flags.ca) : undefined,
    });
    // ws.extensions names the extensions only; their parameters are in the answer.
    ws.once('upgrade', (response) => {
      ws.answeredExtensions = response.headers['sec-websocket-extensions'];
    });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}
function next(ws) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no message within 20 s')), 20000);
    ws.once('message', (data, isBinary) => {
      clearTimeout(timer);
      resolve({ data, isBinary });
    });
  });
}
function closed(ws) {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}
async function echo(ws, message, label) {
  const isBinary = Buffer.isBuffer(message);
  ws.send(message, { binary: isBinary });
  const m = await next(ws);
  assert.strictEqual(m.isBinary, isBinary, `${label}: type`);
  if (isBinary) assert.ok(Buffer.compare(m.data, message) === 0, `${label}: contents differ`);
  else assert.ok(m.data.toString() === message, `${label}: contents differ`);
}

function compressibleText(n) {
  const line = 'cnetmod interop: the same line again and again, ünïcödé too. ';
  return line.repeat(Math.ceil(n / line.length) + 1).slice(0, n);
}
// n random code points of one to four UTF-8 bytes each.
function randomText(n) {
  const alphabet = [...'azAZ09~ éßЖ中文€😀'];
  const pick = crypto.randomBytes(n);
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[pick[i] % alphabet.length];
  return s;
}

async function seedChecks(ws) {
  for (const n of [0, 125, 126, 65535, 65536, 1 << 20]) {
    await echo(ws, 'é'.repeat(Math.floor(n / 2)) + 'x'.repeat(n % 2), `text ${n}`);
    const bin = Buffer.alloc(n);
    for (let i = 0; i < n; i++) bin[i] = (i * 31) & 0xff;
    await echo(ws, bin, `binary ${n}`);
  }
  // Fragmented sends: three frames, one message.
  ws.send('frag', { fin: false });
  ws.send('men', { fin: false });
  ws.send('ted', { fin: true });
  assert.strictEqual((await next(ws)).data.toString(), 'fragmented');
  await pingPong(ws, 'node-ping');
}

async function pingPong(ws, data) {
  // The server answers with a pong carrying the same data.
  const pong = new Promise((resolve) => ws.once('pong', resolve));
  ws.ping(data);
  assert.strictEqual((await pong).toString(), data);
}

async function compressionChecks(ws) {
  const extensions = ws.extensions;
  if (compression === 'expect') assert.ok(/^permessage-deflate\b/.test(extensions), `extensions: '${extensions}'`);
  else assert.strictEqual(extensions, '', `extensions: '${extensions}'`);

  for (const n of [0, 1, 16 * KIB, MIB]) {
    await echo(ws, compressibleText(n), `compressible text ${n}`);
    await echo(ws, Buffer.from(compressibleText(n)), `compressible binary ${n}`);
    await echo(ws, randomText(n), `random text ${n}`);
    await echo(ws, crypto.randomBytes(n), `random binary ${n}`);
  }
  // Fragmented: ws deflates the fragments as one stream, RSV1 on the first
  // frame only (RFC 7692 §6.1).
  const parts = Array.from({ length: 16 }, () => compressibleText(64 * KIB));
  parts.forEach((p, i) => ws.send(p, { fin: i === parts.length - 1 }));
  assert.ok((await next(ws)).data.toString() === parts.join(''), 'fragmented compressible text');
  const blobs = [1, 0, 300, 70000, 5].map((n) => crypto.randomBytes(n));
  blobs.forEach((b, i) => ws.send(b, { binary: true, fin: i === blobs.length - 1 }));
  const m = await next(ws);
  assert.ok(m.isBinary && Buffer.compare(m.data, Buffer.concat(blobs)) === 0, 'fragmented random binary');
  await pingPong(ws, 'node-ping-deflate');

  // The echo of 1 MiB of repetitive text must come back compressed when
  // deflate was negotiated, and whole when it was not (bytes on the socket).
  const before = ws._socket.bytesRead;
  await echo(ws, compressibleText(MIB), 'compressible text 1 MiB (counted)');
  const wire = ws._socket.bytesRead - before;
  if (compression === 'expect') assert.ok(wire < 64 * KIB, `1 MiB echo took ${wire} bytes: not compressed`);
  else assert.ok(wire > MIB, `1 MiB echo took only ${wire} bytes`);
}

// ---- Context takeover and window sizes (--mode) ----------------------------

// "permessage-deflate; a; b=9" -> { a: true, b: '9' }; throws unless the
// answer names permessage-deflate alone.
function deflateParams(header) {
  const [name, ...params] = (header || '').split(';').map((p) => p.trim());
  assert.strictEqual(name, 'permessage-deflate', `Sec-WebSocket-Extensions: '${header}'`);
  return Object.fromEntries(params.map((p) => {
    const [key, value] = p.split('=').map((x) => x.trim());
    return [key, value === undefined ? true : value];
  }));
}
function expectAnswer(ws, expected, label) {
  assert.deepStrictEqual(deflateParams(ws.answeredExtensions), expected,
    `${label}: the server answered '${ws.answeredExtensions}'`);
}

// What each mode offers (ws's settings) and the answer the server must give.
const takeoverOffers = {
  takeover: { threshold: 0 },
  small_windows: { threshold: 0, clientMaxWindowBits: 9, serverMaxWindowBits: 10 },
  no_takeover_server: { threshold: 0 },
};
const takeoverAnswers = {
  takeover: {},
  small_windows: { server_max_window_bits: '9', client_max_window_bits: '9' },
  no_takeover_server: { server_no_context_takeover: true, client_no_context_takeover: true },
};

// The next n messages of ws, in order. Made before the sends it waits for.
function collect(ws, n) {
  return new Promise((resolve, reject) => {
    const got = [];
    const timer = setTimeout(() => {
      ws.off('message', take);
      reject(new Error(`${got.length} of ${n} messages within 30 s`));
    }, 30000);
    function take(data, isBinary) {
      got.push({ data, isBinary });
      if (got.length < n) return;
      clearTimeout(timer);
      ws.off('message', take);
      resolve(got);
    }
    if (n === 0) resolve(got);
    else ws.on('message', take);
  });
}
// Sends every message at once (strings as text, Buffers as binary) and
// expects them back in order, intact, of the same type.
async function echoAll(ws, messages, label) {
  const back = collect(ws, messages.length);
  for (const m of messages) ws.send(m, { binary: Buffer.isBuffer(m) });
  const got = await back;
  messages.forEach((m, i) => {
    const g = got[i];
    const what = `${label} #${i} (${Buffer.isBuffer(m) ? 'binary' : 'text'}, ${m.length} long)`;
    assert.strictEqual(g.isBinary, Buffer.isBuffer(m), `${what}: type`);
    if (Buffer.isBuffer(m)) assert.ok(Buffer.compare(g.data, m) === 0, `${what}: contents differ`);
    else assert.ok(g.data.toString() === m, `${what}: contents differ`);
  });
}

// A random generator of its own, so that a failure can be replayed.
function seeded(seed) {
  let x = seed >>> 0;
  return (n) => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x % n;
  };
}
const words = ('the quick brown fox jumps over a lazy dog hello world chat room message server client deflate ' +
  'window context takeover again yes no maybe later today tomorrow great thanks see you soon ok lol ünïcödé 中文')
  .split(' ');
// A ~100-byte JSON chat line: shared keys, changing words, as a chat sends them.
function chatLine(rng, seq) {
  const text = Array.from({ length: 6 + rng(6) }, () => words[rng(words.length)]).join(' ');
  return JSON.stringify({ type: 'chat', room: 'lobby', from: `user${rng(20)}`, seq, text });
}
// A JSON document of about n bytes (cut to n: it need not parse).
function jsonDocument(rng, n) {
  let doc = '[';
  for (let seq = 0; doc.length < n; seq++) doc += chatLine(rng, seq) + ',';
  return doc.slice(0, n);
}

// Long enough for the server's sweeps (every 10 ms with --pong-timeout-ms 40)
// to give an unused zlib stream back to the pool, keeping only the bytes of
// its window, from which the next message's stream starts again.
const pause = () => new Promise((resolve) => setTimeout(resolve, 50));

async function chatLines(ws, rng, expectShrink) {
  const lines = Array.from({ length: 300 }, (_, seq) => chatLine(rng, seq));
  const payload = lines.reduce((n, l) => n + Buffer.byteLength(l), 0);
  const before = ws._socket.bytesRead;
  for (let i = 0; i < lines.length; i += 50) {
    await echoAll(ws, lines.slice(i, i + 50), `chat lines ${i}..`);
    await pause();
  }
  const wire = ws._socket.bytesRead - before;
  // With context takeover the server's deflater refers to earlier lines:
  // ~100-byte lines shrink to 25-40 %; alone they would go plain (under
  // compression_threshold) or barely shrink.
  if (expectShrink) assert.ok(wire < 0.6 * payload, `300 chat lines (${payload} bytes) took ${wire} bytes on the wire`);
  else assert.ok(wire >= payload, `300 chat lines (${payload} bytes) took only ${wire} bytes without takeover`);
  await echoAll(ws, lines.slice(0, 100).map((l) => Buffer.from(l)), 'binary chat lines');
}

// Documents of 1-64 KiB between chat lines, incompressible ones among them
// (the server sends those plain, and its window must then forget them), and
// 1 MiB messages; the windows carry over all of it.
async function documents(ws, rng) {
  for (let kib = 1; kib <= 64; kib *= 2) {
    const mixed = [jsonDocument(rng, kib * KIB), chatLine(rng, kib), crypto.randomBytes(kib * KIB)];
    mixed.push(chatLine(rng, kib + 1), Buffer.from(jsonDocument(rng, kib * KIB + 7)), chatLine(rng, kib + 2));
    mixed.push(randomText(kib * 100), chatLine(rng, kib + 3));
    await echoAll(ws, mixed, `documents of ${kib} KiB and chat lines`);
    await pause();
  }
  await echoAll(ws, [jsonDocument(rng, MIB), chatLine(rng, 1), crypto.randomBytes(MIB), chatLine(rng, 2)], '1 MiB');
  await echoAll(ws, [Buffer.from(jsonDocument(rng, MIB)), compressibleText(MIB), chatLine(rng, 3)], '1 MiB again');
}

async function takeoverChecks() {
  const rng = seeded(7692);
  const ws = await open(takeoverOffers[mode]);
  expectAnswer(ws, takeoverAnswers[mode], `${mode}: the offer of ws's ${JSON.stringify(takeoverOffers[mode])}`);
  await chatLines(ws, rng, mode !== 'no_takeover_server');
  await documents(ws, rng);
  await chatLines(ws, rng, mode !== 'no_takeover_server');
  ws.close(1000, 'done');
  assert.strictEqual((await closed(ws)).code, 1000);

  if (mode !== 'small_windows') return;
  // The server's window (9) limits both directions when the offer lets it:
  // ws's default offer names client_max_window_bits without a value.
  const plain = await open({ threshold: 0 });
  expectAnswer(plain, { server_max_window_bits: '9', client_max_window_bits: '9' }, "ws's default offer");
  await chatLines(plain, rng, true);
  await documents(plain, rng);
  plain.close(1000, 'done');
  await closed(plain);
  // An offer without client_max_window_bits cannot be limited: the client
  // is asked to keep no context instead (RFC 7692 §7.1.1.2), its window 32 KiB.
  const unlimited = await open({ threshold: 0, clientMaxWindowBits: false });
  expectAnswer(unlimited, { client_no_context_takeover: true, server_max_window_bits: '9' },
    'an offer without client_max_window_bits');
  await chatLines(unlimited, rng, true);
  await documents(unlimited, rng);
  unlimited.close(1000, 'done');
  await closed(unlimited);
}

async function main() {
  const ws = await open();
  await seedChecks(ws);
  if (compression) await compressionChecks(ws);
  ws.close(1000, 'done');
  const c = await closed(ws);
  assert.strictEqual(c.code, 1000);
  if (mode) await takeoverChecks();

  // Every valid close code is echoed.
  for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4000, 4999]) {
    const w = await open();
    w.close(code, 'bye');
    const r = await closed(w);
    assert.strictEqual(r.code, code, `close code ${code}`);
  }
  console.log(`node ws client (${url}, compression=${compression}, mode=${mode}): all interop checks passed`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
