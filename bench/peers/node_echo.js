// Node's `ws` (Debian node-ws) as an echo server for the comparison runs:
//   NODE_PATH=/usr/share/nodejs node bench/peers/node_echo.js PORT
// Echoes every message with its type on /ws; no compression.
'use strict';
const WebSocket = require('ws');
const port = Number(process.argv[2] || 8080);
const wss = new WebSocket.Server({ host: '127.0.0.1', port, path: '/ws', perMessageDeflate: false, maxPayload: 0 });
wss.on('listening', () => console.log(`node ws echo on ws://127.0.0.1:${port}/ws`));
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
process.on('SIGTERM', () => process.exit(0));
