// Drives tools/demo/index.html in headless Chromium against a running demo:
//   node chat_test.js http://127.0.0.1:PORT/
// alice and bob join from two browser contexts, chat (Enter and the Send
// button), and bob leaves; each step checks what the other page shows, and how
// it shows it (chat, join or leave line; the members seen). Then a name that
// needs percent-encoding joins and leaves, and alice leaves and reconnects.
// Also checks that the browser and the server negotiated permessage-deflate
// (RFC 7692) on /chat with context takeover both ways, from the handshake
// response headers that Chromium reports over CDP.
// Needs playwright-core on NODE_PATH (tools/setup.sh installs it) and a
// Chromium (CHROMIUM, default /usr/bin/chromium); no browser is downloaded.
'use strict';

const { chromium } = require('playwright-core');

const url = process.argv[2];
// With a second URL: two demos sharing the room through Redis (--broker);
// alice's page is on the first, bob's on the second.
const urlB = process.argv[3];
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const step_ms = 10_000; // any one wait
const total_ms = 55_000; // the whole test

if (!url) {
  console.error('usage: node chat_test.js http://127.0.0.1:PORT/ [http://127.0.0.1:OTHER_PORT/]');
  process.exit(2);
}

const started = Date.now();
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);

// A page plus what Chromium saw of its WebSocket handshakes.
async function openPage(browser, who) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(step_ms);
  const errors = [];
  page.on('pageerror', (e) => errors.push(`${who}: page error: ${e.message}`));
  // Console errors (a failed request, a refused connection) are shown, not failed on: the steps say what broke.
  page.on('console', (m) => { if (m.type() === 'error') log(`${who}: console error: ${m.text()}`); });

  // Chromium sends the handshake response headers only over CDP; page.on('websocket') has none.
  const cdp = await context.newCDPSession(page);
  const sockets = new Map(); // requestId -> {url, status, headers}
  cdp.on('Network.webSocketCreated', ({ requestId, url }) => sockets.set(requestId, { url }));
  cdp.on('Network.webSocketHandshakeResponseReceived', ({ requestId, response }) => {
    const s = sockets.get(requestId) || {};
    sockets.set(requestId, { ...s, status: response.status, headers: response.headers });
  });
  await cdp.send('Network.enable');
  return { who, context, page, errors, sockets };
}

// Text of the message list, for failure messages.
async function messages(p) {
  return p.page.$$eval('#messages li', (lis) => lis.map((li) => `  [${li.dataset.kind}] ${li.querySelector('.text').textContent}`))
    .then((lines) => lines.join('\n') || '  (none)', () => '  (page gone)');
}

async function members(p) {
  return p.page.$$eval('#members li', (lis) => lis.map((li) => li.dataset.name));
}

// Waits until p's message list has the line `text` shown as `kind` (chat, join, leave).
async function expectLine(p, text, kind) {
  try {
    await p.page.waitForFunction(([text, kind]) =>
      [...document.querySelectorAll('#messages li')].some((li) =>
        li.dataset.kind === kind && li.querySelector('.text').textContent === text),
    [text, kind], { timeout: step_ms });
  } catch (e) {
    throw new Error(`${p.who}'s page did not show the ${kind} line "${text}" within ${step_ms} ms; it shows:\n${await messages(p)}`);
  }
  log(`${p.who} sees "${text}" (${kind})`);
}

async function expectMembers(p, expected) {
  try {
    await p.page.waitForFunction((expected) =>
      JSON.stringify([...document.querySelectorAll('#members li')].map((li) => li.dataset.name).sort()) ===
        JSON.stringify(expected),
    [...expected].sort(), { timeout: step_ms });
  } catch (e) {
    throw new Error(`${p.who}'s member list is [${await members(p)}], expected [${expected}]`);
  }
}

async function join(p, name, at = url) {
  await p.page.goto(at, { timeout: step_ms });
  await p.page.fill('#name', name);
  await p.page.click('#join');
  try {
    await p.page.waitForFunction(() => document.querySelector('#status').dataset.state === 'open', null, { timeout: step_ms });
  } catch (e) {
    const status = await p.page.textContent('#status').catch(() => '?');
    throw new Error(`${name} did not connect to ${at} within ${step_ms} ms; status: "${status}"`);
  }
  log(`${name} connected: "${await p.page.textContent('#status')}"`);
}

// RFC 7692 §5: the server accepts the offer by naming permessage-deflate in its response.
// The demo runs with the default options, context takeover (§7.1.1) both
// ways, and Chromium offers it: the answer must not take it away.
function expectDeflate(p) {
  const chats = [...p.sockets.values()].filter((s) => /\/chat\?name=/.test(s.url || ''));
  if (chats.length === 0) throw new Error(`${p.who}: Chromium reported no WebSocket handshake for /chat`);
  for (const s of chats) {
    if (s.status !== 101) throw new Error(`${p.who}: handshake for ${s.url} answered ${s.status}, expected 101`);
    const ext = Object.entries(s.headers || {}).find(([k]) => k.toLowerCase() === 'sec-websocket-extensions');
    if (!ext || !/(^|,)\s*permessage-deflate\b/.test(ext[1])) {
      throw new Error(`${p.who}: the server did not accept permessage-deflate on ${s.url}; response headers: ${JSON.stringify(s.headers)}`);
    }
    if (/\b(server|client)_no_context_takeover\b/.test(ext[1])) {
      throw new Error(`${p.who}: the chat on ${s.url} goes without context takeover: Sec-WebSocket-Extensions: ${ext[1]}`);
    }
    log(`${p.who}: Sec-WebSocket-Extensions: ${ext[1]}`);
  }
}

async function launch() {
  return chromium.launch({
    executablePath: chromiumPath, headless: true, timeout: step_ms,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
}

// Two servers, one room: each page sees the other join, chat and leave,
// each line once, and the room is compressed on both sides.
async function runAcross() {
  const browser = await launch();
  try {
    const alice = await openPage(browser, 'alice');
    const bob = await openPage(browser, 'bob');
    await join(alice, 'alice', url);
    await expectLine(alice, 'alice joined', 'join');
    await join(bob, 'bob', urlB);
    await expectLine(bob, 'bob joined', 'join');
    await expectLine(alice, 'bob joined', 'join');
    await alice.page.fill('#input', 'hello from server A');
    await alice.page.press('#input', 'Enter');
    await expectLine(bob, 'alice: hello from server A', 'chat');
    await expectLine(alice, 'alice: hello from server A', 'chat');
    await bob.page.fill('#input', 'hello from server B');
    await bob.page.click('#send');
    await expectLine(alice, 'bob: hello from server B', 'chat');
    await expectLine(bob, 'bob: hello from server B', 'chat');
    const long = 'across two servers through one broker. '.repeat(60).trim();
    await alice.page.fill('#input', long);
    await alice.page.press('#input', 'Enter');
    await expectLine(bob, `alice: ${long}`, 'chat');
    expectDeflate(alice);
    expectDeflate(bob);
    // Each line once on each page: a server does not deliver its own publish twice.
    for (const p of [alice, bob]) {
      const lines = await p.page.$$eval('#messages li .text', (ts) => ts.map((t) => t.textContent));
      for (const line of ['alice: hello from server A', 'bob: hello from server B', 'bob joined']) {
        const n = lines.filter((l) => l === line).length;
        if (n !== 1) throw new Error(`${p.who}'s page shows "${line}" ${n} times:\n${await messages(p)}`);
      }
    }
    await bob.context.close();
    log('bob closed his page');
    await expectLine(alice, 'bob left', 'leave');
    const errors = [...alice.errors, ...bob.errors];
    if (errors.length) throw new Error(`JavaScript errors in the pages:\n  ${errors.join('\n  ')}`);
  } finally {
    await browser.close().catch(() => {});
  }
}

async function run() {
  if (urlB) return runAcross();
  const browser = await launch();
  try {
    const alice = await openPage(browser, 'alice');
    const bob = await openPage(browser, 'bob');

    await join(alice, 'alice');
    await expectLine(alice, 'alice joined', 'join');
    await join(bob, 'bob');
    await expectLine(bob, 'bob joined', 'join');
    await expectLine(alice, 'bob joined', 'join');
    await expectMembers(alice, ['alice', 'bob']);

    // Enter in the input sends; the line reaches everyone, the sender included.
    await alice.page.fill('#input', 'hello from alice');
    await alice.page.press('#input', 'Enter');
    await expectLine(bob, 'alice: hello from alice', 'chat');
    await expectLine(alice, 'alice: hello from alice', 'chat');
    if (await alice.page.inputValue('#input') !== '') throw new Error('alice: the input was not cleared after sending');

    // The send button, and text that looks like markup or a leave line stays plain chat text.
    const tricky = '<b>x</b> left';
    await bob.page.fill('#input', tricky);
    await bob.page.click('#send');
    await expectLine(alice, `bob: ${tricky}`, 'chat');

    // A long line: above the server's compression threshold it reaches the
    // browsers compressed (and Chromium compresses what it sends).
    const long = 'all work and no play makes jack a dull boy. '.repeat(60).trim();
    await alice.page.fill('#input', long);
    await alice.page.press('#input', 'Enter');
    await expectLine(bob, `alice: ${long}`, 'chat');

    expectDeflate(alice);
    expectDeflate(bob);

    await bob.context.close();
    log('bob closed his page');
    await expectLine(alice, 'bob left', 'leave');
    await expectMembers(alice, ['alice']);

    // A name that needs percent-encoding in the URL comes back decoded, UTF-8 intact.
    const zoe = await openPage(browser, 'zoë');
    const odd = 'Zoë & co/?#%';
    await join(zoe, odd);
    await expectLine(alice, `${odd} joined`, 'join');
    await zoe.context.close();
    await expectLine(alice, `${odd} left`, 'leave');

    // Leave, then Reconnect: a new connection joins again.
    await alice.page.click('#leave');
    await alice.page.waitForSelector('#reconnect', { state: 'visible', timeout: step_ms })
      .catch(() => { throw new Error('alice: no Reconnect button after leaving'); });
    await alice.page.click('#reconnect');
    await alice.page.waitForFunction(() =>
      [...document.querySelectorAll('#messages li[data-kind="join"] .text')].filter((t) => t.textContent === 'alice joined').length === 2,
    null, { timeout: step_ms }).catch(async () => {
      throw new Error(`alice: no second "alice joined" after Reconnect; the page shows:\n${await messages(alice)}`);
    });
    log('alice reconnected');

    const errors = [...alice.errors, ...bob.errors, ...zoe.errors];
    if (errors.length) throw new Error(`JavaScript errors in the pages:\n  ${errors.join('\n  ')}`);
  } finally {
    await browser.close().catch(() => {});
  }
}

const deadline = setTimeout(() => {
  console.error(`chat_test.js: FAILED: the test took more than ${total_ms / 1000} s`);
  process.exit(1);
}, total_ms);

run().then(() => {
  clearTimeout(deadline);
  log('chat_test.js: OK');
  process.exit(0);
}, (e) => {
  console.error(`chat_test.js: FAILED: ${e.message}`);
  process.exit(1);
});
