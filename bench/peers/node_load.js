// A second load tool to check wsbench's figures: Node's `ws` client in a
// closed loop (each connection sends, waits for the echo, sends again).
//   NODE_PATH=/usr/share/nodejs node bench/peers/node_load.js URL CONNECTIONS SIZE SECONDS
// Prints one JSON line: messages, messages_per_s, mismatches.
'use strict';
const WebSocket = require('ws');
const [url, connections = '100', size = '32', seconds = '3'] = process.argv.slice(2);
const n = Number(connections);
const payload = Buffer.alloc(Number(size), 'x');
let received = 0;
let mismatches = 0;
let open = 0;
let running = false;
const sockets = [];
for (let i = 0; i < n; i++) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  ws.on('open', () => {
    if (++open === n) start();
  });
  ws.on('message', (data) => {
    if (!payload.equals(data)) mismatches++;
    if (!running) return;
    received++;
    ws.send(payload, { binary: true });
  });
  ws.on('error', (e) => {
    console.error(`node_load: ${e.message}`);
    process.exit(1);
  });
  sockets.push(ws);
}
function start() {
  running = true;
  const t0 = process.hrtime.bigint();
  for (const ws of sockets) ws.send(payload, { binary: true });
  setTimeout(() => {
    running = false;
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log(JSON.stringify({ messages: received, messages_per_s: received / s, mismatches }));
    for (const ws of sockets) ws.terminate();
    process.exit(0);
  }, Number(seconds) * 1000);
}
