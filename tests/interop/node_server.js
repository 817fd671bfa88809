// A Node `ws` echo server for cnetmod's client: prints its port, echoes
// every message with its type, closes when told "close:<code>", answers
// "wire?" with "wire:N", N the bytes read from its socket so far (to check
// that the client really compressed what it sent), and "ext?" with "ext:"
// and the Sec-WebSocket-Extensions value it answered the handshake with.
//   node node_server.js [--deflate [--server-max-window-bits N]
//                        [--client-max-window-bits N]] [--cert FILE --key FILE]
// --deflate: permessage-deflate with threshold 0 (every message compressed),
// context takeover both ways when the client's offer allows it (ws's
// default); --server-max-window-bits / --client-max-window-bits: ws's
// serverMaxWindowBits / clientMaxWindowBits (RFC 7692 §7.1.2);
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

const windowBits = (name) => (option(name) === undefined ? undefined : Number(option(name)));
const perMessageDeflate = {
  threshold: 0,
  serverMaxWindowBits: windowBits('--server-max-window-bits'),
  clientMaxWindowBits: windowBits('--client-max-window-bits'),
};
const settings = { perMessageDeflate: deflate ? perMessageDeflate : false, maxPayload: 0 };
let wss;
if (cert) {
  const server = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) });
  wss = new WebSocket.Server({ server, ...settings });
  server.listen(0, '127.0.0.1', () => console.log(String(server.address().port)));
} else {
  wss = new WebSocket.Server({ host: '127.0.0.1', port: 0, ...settings });
  wss.on('listening', () => console.log(String(wss.address().port)));
}
// The answer's header lines come before the connection, with the same request.
wss.on('headers', (headers, request) => {
  const line = headers.find((h) => /^sec-websocket-extensions:/i.test(h));
  request.extensionsAnswer = line ? line.slice(line.indexOf(':') + 1).trim() : '';
});
wss.on('connection', (ws, request) => {
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
    if (text === 'ext?') {
      ws.send(`ext:${request.extensionsAnswer}`);
      return;
    }
    ws.send(data, { binary: isBinary });
  });
});
// Bounded: a test that forgets this server does not leave it running.
setTimeout(() => process.exit(0), 120000).unref();
