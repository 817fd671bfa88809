// Node's `ws` (Debian node-ws) as a fan-out server for the broadcast runs:
//   NODE_PATH=/usr/share/nodejs node bench/peers/node_broadcast.js PORT
// Every message received on /broadcast is sent to every connection, in turn
// (the usual `wss.clients.forEach(c => c.send(data))`); no compression.
'use strict';
const WebSocket = require('ws');
const port = Number(process.argv[2] || 8080);
const wss = new WebSocket.Server({ host: '127.0.0.1', port, path: '/broadcast', perMessageDeflate: false });
wss.on('listening', () => console.log(`node ws fan-out on ws://127.0.0.1:${port}/broadcast`));
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    for (const c of wss.clients) if (c.readyState === WebSocket.OPEN) c.send(data, { binary: isBinary });
  });
});
process.on('SIGTERM', () => process.exit(0));
