// A Node `ws` echo server for cnetmod's client: prints its port, echoes
// every message with its type, closes when told "close:<code>".
'use strict';
const WebSocket = require('ws');
const wss = new WebSocket.Server({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 0 });
wss.on('listening', () => {
  console.log(String(wss.address().port));
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    const text = isBinary ? null : data.toString();
    if (text && text.startsWith('close:')) {
      ws.close(Number(text.slice(6)), 'server says bye');
      return;
    }
    ws.send(data, { binary: isBinary });
  });
});
