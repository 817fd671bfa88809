// Node's `ws` (Debian node-ws) as a client against a cnetmod echo server.
//   NODE_PATH=/usr/share/nodejs node node_client.js ws://127.0.0.1:PORT/ws
'use strict';
const WebSocket = require('ws');
const assert = require('assert');
const url = process.argv[2];

function open() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 0 });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}
function next(ws) {
  return new Promise((resolve) => ws.once('message', (data, isBinary) => resolve({ data, isBinary })));
}
function closed(ws) {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

async function main() {
  const ws = await open();
  for (const n of [0, 125, 126, 65535, 65536, 1 << 20]) {
    const text = 'é'.repeat(Math.floor(n / 2)) + 'x'.repeat(n % 2);
    ws.send(text);
    let m = await next(ws);
    assert.strictEqual(m.isBinary, false);
    assert.strictEqual(m.data.toString(), text, `text ${n}`);
    const bin = Buffer.alloc(n);
    for (let i = 0; i < n; i++) bin[i] = (i * 31) & 0xff;
    ws.send(bin);
    m = await next(ws);
    assert.strictEqual(m.isBinary, true);
    assert.ok(Buffer.compare(m.data, bin) === 0, `binary ${n}`);
  }
  // Fragmented sends: three frames, one message.
  ws.send('frag', { fin: false });
  ws.send('men', { fin: false });
  ws.send('ted', { fin: true });
  assert.strictEqual((await next(ws)).data.toString(), 'fragmented');
  // Ping: the server answers with a pong carrying the same data.
  const pong = new Promise((resolve) => ws.once('pong', resolve));
  ws.ping('node-ping');
  assert.strictEqual((await pong).toString(), 'node-ping');
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
  console.log('node ws client: all interop checks passed');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
