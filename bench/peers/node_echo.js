// Node's `ws` (Debian node-ws) as an echo server for the comparison runs:
//   NODE_PATH=/usr/share/nodejs node bench/peers/node_echo.js PORT [--deflate [--deflate-threshold N]]
//                                                               [--cert FILE --key FILE]
// Echoes every message with its type on /ws. --deflate: permessage-deflate
// (zlib level 6, messages from 1 KiB, as cnetmod's defaults; these are also
// ws's own defaults for `perMessageDeflate: true`); --deflate-threshold:
// another threshold; --cert and --key: wss:// over Node's https server.
'use strict';
const fs = require('fs');
const https = require('https');
const WebSocket = require('ws');
const args = process.argv.slice(2);
const port = Number(args[0] || 8080);
const flag = (name) => args.includes(name);
const value = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
// ws compresses every message of a side with context takeover; the threshold
// applies only where a side has none (the client offered no takeover).
const threshold = value('--deflate-threshold') !== undefined ? Number(value('--deflate-threshold')) : 1024;
const deflate = flag('--deflate') ? { threshold, zlibDeflateOptions: { level: 6 } } : false;
const cert = value('--cert');
let wss;
if (cert) {
  const server = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(value('--key')) });
  wss = new WebSocket.Server({ server, path: '/ws', perMessageDeflate: deflate, maxPayload: 0 });
  server.listen(port, '127.0.0.1', () => console.log(`node ws echo on wss://127.0.0.1:${port}/ws`));
} else {
  wss = new WebSocket.Server({ host: '127.0.0.1', port, path: '/ws', perMessageDeflate: deflate, maxPayload: 0 });
  wss.on('listening', () => console.log(`node ws echo on ws://127.0.0.1:${port}/ws`));
}
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
process.on('SIGTERM', () => process.exit(0));
