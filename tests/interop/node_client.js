// Node's `ws` (Debian node-ws) as a client against a cnetmod echo server.
//   NODE_PATH=/usr/share/nodejs node node_client.js URL [--compression=expect|declined] [--ca=FILE]
// Without --compression the client offers no extension. With it, it offers
// permessage-deflate (threshold 0: every message compressed) and checks that
// the server accepted it (expect) or answered without it (declined).
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
const KIB = 1024;
const MIB = 1024 * 1024;

function open() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      perMessageDeflate: compression ? { threshold: 0 } : false,
      maxPayload: 0,
      handshakeTimeout: 10000,
      ca: flags.ca ? fs.readFileSync(flags.ca) : undefined,
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

async function main() {
  const ws = await open();
  await seedChecks(ws);
  if (compression) await compressionChecks(ws);
  ws.close(1000, 'done');
  const c = await closed(ws);
  assert.strictEqual(c.code, 1000);

  // Every valid close code is echoed.
  for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4000, 4999]) {
    const w = await open();
    w.close(code, 'bye');
    const r = await closed(w);
    assert.strictEqual(r.code, code, `close code ${code}`);
  }
  console.log(`node ws client (${url}, compression=${compression}): all interop checks passed`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
