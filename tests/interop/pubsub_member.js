// One Node `ws` (Debian node-ws) member of a cnetmod-demo room, driven by
// pubsub_takeover_test.py over stdin and stdout, one JSON object a line:
//   NODE_PATH=/usr/share/nodejs node pubsub_member.js
// stdin:  {"url": URL, "name": NAME, "route": "chat"|"broadcast", "names": [...],
//          "send": [{"t": TEXT} | {"b": BASE64} | {"pause_ms": MS}, ...], "expect": N}
//         then "go", then "close".
// stdout: {"open": SEC_WEBSOCKET_EXTENSIONS} once the member is in the room
//         (on /chat: when it has seen its own "NAME joined"),
//         {"received": [{"t": ...} | {"b": ...}, ...]} once N messages other
//         than "X joined" / "X left" arrived, {"closed": CODE} at the end.
// It offers ws's default permessage-deflate (context takeover both ways) and
// compresses everything it sends (threshold 0). Any error ends it with 1.
'use strict';
const WebSocket = require('ws');
const readline = require('readline');

const say = (event) => process.stdout.write(JSON.stringify(event) + '\n');
const fail = (e) => {
  process.stderr.write(`pubsub_member.js: ${e.stack || e}\n`);
  process.exit(1);
};

const input = readline.createInterface({ input: process.stdin });
const commands = [];
let waiting = null;
input.on('line', (line) => {
  if (waiting) waiting(line);
  else commands.push(line);
});
input.on('close', () => process.exit(0));
function nextCommand() {
  if (commands.length) return Promise.resolve(commands.shift());
  return new Promise((resolve) => {
    waiting = (line) => {
      waiting = null;
      resolve(line);
    };
  });
}

async function main() {
  const plan = JSON.parse(await nextCommand());
  const membership = new Set(plan.names.flatMap((n) => [`${n} joined`, `${n} left`]));
  const ws = new WebSocket(plan.url, { perMessageDeflate: { threshold: 0 }, maxPayload: 0, handshakeTimeout: 10000 });
  let answer;
  ws.once('upgrade', (response) => {
    answer = response.headers['sec-websocket-extensions'];
  });
  ws.on('error', fail);
  let closing = false;
  ws.once('close', (code, reason) => {
    if (!closing) fail(new Error(`the server closed the connection: ${code} ${reason}`));
  });
  const received = [];
  let done = null;
  ws.on('message', (data, isBinary) => {
    if (!isBinary && plan.route === 'chat') {
      const text = data.toString();
      if (text === `${plan.name} joined` && answer !== undefined) say({ open: answer });
      if (membership.has(text)) return;
      received.push({ t: text });
    } else {
      received.push(isBinary ? { b: data.toString('base64') } : { t: data.toString() });
    }
    if (received.length === plan.expect && done) done();
  });
  await new Promise((resolve) => ws.once('open', resolve));
  if (plan.route !== 'chat') say({ open: answer });

  if ((await nextCommand()) !== 'go') throw new Error('expected "go"');
  const all = new Promise((resolve) => {
    done = resolve;
    if (received.length >= plan.expect) resolve();
  });
  for (const m of plan.send) {
    if (m.pause_ms !== undefined) {
      await new Promise((resolve) => setTimeout(resolve, m.pause_ms));
      continue;
    }
    if (m.t !== undefined) ws.send(m.t);
    else ws.send(Buffer.from(m.b, 'base64'), { binary: true });
    // A little time between sends, so that the members' lines interleave.
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await all;
  say({ received });

  if ((await nextCommand()) !== 'close') throw new Error('expected "close"');
  closing = true;
  const closed = new Promise((resolve) => ws.once('close', resolve));
  ws.close(1000, 'bye');
  say({ closed: await closed });
  process.exit(0);
}

// Bounded: a test that forgets this member does not leave it running.
setTimeout(() => fail(new Error('still running after 100 s')), 100000).unref();
main().catch(fail);
