// A Node `ws` echo server for cnetmod's client: prints its port, echoes
// every message with its type, closes when told "close:<code>", and answers
// "wire?" with "wire:N", N the bytes read from its socket so far (to check
// that the client really compressed what it sent).
//   node node_server.js [--deflate] [--cert FILE --key FILE]
// --deflate: permessage-deflate with threshold 0 (every message compressed);
// --cert/--key: wss:// (TLS) instead of ws://.
'use strict';
const WebSocket = require('ws');
const fs = require('fs');
const https = require('https');

const args = process.argv.slice(2);
const option = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const deflate = args.includes('--deflate');
const cert = option('--cert');
const key = option('--key');

const settings = { perMessageDeflate: deflate ? { threshold: 0 } : false, maxPayload: 0 };
let wss;
if (cert) {
  const server = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) });
  wss = new WebSocket.Server({ server, ...settings });
  server.listen(0, '127.0.0.1', () => console.log(String(server.address().port)));
} else {
  wss = new WebSocket.Server({ host: '127.0.0.1', port: 0, ...settings });
  wss.on('listening', () => console.log(String(wss.address().port)));
}
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    const text = isBinary ? null : data.toString();
    if (text && text.startsWith('close:')) {
      ws.close(Number(text.slice(6)), 'server says bye');
      return;
    }
    if (text === 'wire?') {
      ws.send(`wire:${ws._socket.bytesRead}`);
      return;
    }
    ws.send(data, { binary: isBinary });
  });
});
// Bounded: a test that forgets this server does not leave it running.
setTimeout(() => process.exit(0), 120000).unref();
