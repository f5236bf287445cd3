// lancer-serve's /ws echo endpoint driven by node's `ws` package (installed by `npm ci` in this
// folder, from package-lock.json): echo of text and binary, fragmented and large messages, ping,
// close codes, the message limit and permessage-deflate.
//
// usage: node node_clients.mjs PATH/TO/lancer-serve
//
// Starts lancer-serve itself (three times: default; --ws-max-message 65536; --ws-deflate),
// prints one line per case and a Python-unittest-style closing (`Ran N tests in Xs`, then `OK`
// or `FAILED (failures=K)`), and exits 1 on any failure, on a server that does not exit 0 at
// SIGTERM, or on a sanitizer report in a server's stderr.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

let WebSocket;
try {
  ({ default: WebSocket } = await import('ws'));
} catch (e) {
  console.error(`node_clients: cannot load the ws package (${e.message}); ` +
                'run `npm ci` in test/ws/clients');
  process.exit(1);
}

const serve = process.argv[2];
if (!serve) {
  console.error('usage: node node_clients.mjs PATH/TO/lancer-serve');
  process.exit(2);
}
// Per step: generous, for the ASan build on a busy machine.
const TIMEOUT = 30000;
// What a sanitizer's runtime prints when it finds something (as test/serve/serve_test.py).
const SANITIZER_REPORT = new RegExp(
  '(ERROR: (Address|Leak|Thread|Memory)Sanitizer|WARNING: ThreadSanitizer|runtime error: |' +
  'UndefinedBehaviorSanitizer|SUMMARY: \\w+Sanitizer)');

function withTimeout(promise, what, ms = TIMEOUT) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startServer(...extra) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lancer-ws-node-'));
  fs.mkdirSync(path.join(dir, 'root'));
  const pidFile = path.join(dir, 'lancer.pid');
  const errPath = path.join(dir, 'stderr.txt');
  const port = await freePort();
  const args = ['--listen', `tcp/127.0.0.1:${port}`, '--root', path.join(dir, 'root'),
                '--out-pid', pidFile, '--log-level', 'warn', '--access-log', 'off', ...extra];
  // A Python stand-in with the same command line may replace lancer-serve while developing.
  const [cmd, cmdArgs] = serve.endsWith('.py') ? ['/usr/bin/python3', [serve, ...args]]
                                                : [serve, args];
  const errFd = fs.openSync(errPath, 'w');
  const proc = spawn(cmd, cmdArgs, { stdio: ['ignore', 'ignore', errFd] });
  fs.closeSync(errFd);
  const exited = new Promise((resolve) =>
    proc.on('exit', (code, signal) => resolve({ code, signal })));
  let running = true;
  exited.then(() => { running = false; });
  const deadline = Date.now() + 30000;
  while (!(fs.existsSync(pidFile) && fs.statSync(pidFile).size > 0)) {
    if (!running || Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`lancer-serve ${extra.join(' ')} did not start: ` +
                      fs.readFileSync(errPath, 'utf8'));
    }
    await sleep(20);
  }
  return {
    url: `ws://127.0.0.1:${port}/ws`,
    flags: extra.join(' ') || '(default flags)',
    // SIGTERM; the error, if any: a non-zero exit or a sanitizer report.
    async stop() {
      if (running) proc.kill('SIGTERM');
      const { code, signal } = await withTimeout(exited, 'lancer-serve exit', 30000)
        .catch((e) => { proc.kill('SIGKILL'); throw e; });
      const stderr = fs.readFileSync(errPath, 'utf8');
      fs.rmSync(dir, { recursive: true, force: true });
      const m = SANITIZER_REPORT.exec(stderr);
      if (m) {
        return `sanitizer report:\n${stderr.slice(Math.max(0, m.index - 200), m.index + 4000)}`;
      }
      if (code !== 0) return `exit code ${code} signal ${signal}:\n${stderr.slice(-3000)}`;
      return null;
    },
  };
}

// A client connection whose messages and close are awaited in order.
class Client {
  static async open(url, options = {}) {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: TIMEOUT,
                                    ...options });
    const c = new Client(ws);
    await withTimeout(new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
      ws.once('unexpected-response', (req, res) =>
        reject(new Error(`handshake answered ${res.statusCode}`)));
    }), 'open');
    return c;
  }

  constructor(ws) {
    this.ws = ws;
    this.queue = [];
    this.waiters = [];
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        resolve({ code, reason: reason.toString() });
        for (const w of this.waiters.splice(0)) w.reject(new Error(`closed with ${code}`));
      });
    });
    ws.on('error', () => {}); // a failed connection ends in 'close', which tells the code
    ws.on('message', (data, isBinary) => {
      const m = { isBinary, data: isBinary ? data : data.toString('utf8') };
      const w = this.waiters.shift();
      if (w) w.resolve(m); else this.queue.push(m);
    });
  }

  next() {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    return withTimeout(new Promise((resolve, reject) => this.waiters.push({ resolve, reject })),
                       'a message');
  }

  send(data, options = {}) {
    return new Promise((resolve, reject) =>
      this.ws.send(data, options, (err) => (err ? reject(err) : resolve())));
  }

  async close(code, reason) {
    this.ws.close(code, reason);
    return withTimeout(this.closed, 'the close handshake');
  }
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

function expectMessage(m, isBinary, data) {
  check(m.isBinary === isBinary, `expected a ${isBinary ? 'binary' : 'text'} message`);
  if (isBinary) {
    check(Buffer.isBuffer(m.data) && m.data.equals(data),
          `binary echo differs (${m.data.length} bytes back, ${data.length} sent)`);
  } else {
    check(m.data === data, `text echo differs (${m.data.length} chars back, ${data.length} sent: ` +
          `${JSON.stringify(m.data.slice(0, 40))})`);
  }
}

const cases = [];
const test = (server, name, fn) => cases.push({ server, name, fn });

test('default', 'text is echoed as text', async (s) => {
  const c = await Client.open(s.url);
  await c.send('hello, κόσμε 𝄞');
  expectMessage(await c.next(), false, 'hello, κόσμε 𝄞');
  await c.close(1000);
});

test('default', 'binary is echoed as binary', async (s) => {
  const c = await Client.open(s.url);
  const data = Buffer.from([...Array(1024).keys()].map((i) => i % 256));
  await c.send(data);
  expectMessage(await c.next(), true, data);
  await c.close(1000);
});

test('default', 'text fragmented with send(chunk, {fin: false}) comes back whole', async (s) => {
  const c = await Client.open(s.url);
  await c.send('frag', { fin: false });
  await c.send('mented ', { fin: false });
  await c.send('κόσ', { fin: false });
  await c.send('με', { fin: true });
  expectMessage(await c.next(), false, 'fragmented κόσμε');
  await c.close(1000);
});

test('default', 'binary fragmented, fragments apart in time, comes back whole', async (s) => {
  const c = await Client.open(s.url);
  const parts = [...Array(10).keys()].map((i) => Buffer.alloc(1000, i));
  for (let i = 0; i < parts.length; i++) {
    await c.send(parts[i], { binary: true, fin: i === parts.length - 1 });
    await sleep(10);
  }
  expectMessage(await c.next(), true, Buffer.concat(parts));
  await c.close(1000);
});

test('default', 'a 512 KiB message is echoed whole', async (s) => {
  const c = await Client.open(s.url);
  const data = Buffer.alloc(512 * 1024);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7919) % 251;
  const text = '0123456789abcdef'.repeat(32768);
  await c.send(data);
  await c.send(text);
  expectMessage(await c.next(), true, data);
  expectMessage(await c.next(), false, text);
  await c.close(1000);
});

test('default', 'ping gets a pong with its payload', async (s) => {
  const c = await Client.open(s.url);
  const pong = withTimeout(new Promise((resolve) => c.ws.once('pong', resolve)), 'pong');
  c.ws.ping(Buffer.from('are you there'));
  check((await pong).toString() === 'are you there', 'pong payload differs');
  await c.close(1000);
});

test('default', 'a normal close with a reason is answered with 1000', async (s) => {
  const c = await Client.open(s.url);
  await c.send('bye soon');
  expectMessage(await c.next(), false, 'bye soon');
  const { code, reason } = await c.close(1000, 'done here');
  check(code === 1000, `close code ${code}`);
  check(reason === '' || reason === 'done here', `close reason ${JSON.stringify(reason)}`);
});

test('default', 'close code 4000 is echoed', async (s) => {
  const c = await Client.open(s.url);
  const { code } = await c.close(4000, 'application code');
  check(code === 4000, `close code ${code}`);
});

test('default', 'permessage-deflate is not agreed without --ws-deflate', async (s) => {
  const c = await Client.open(s.url, { perMessageDeflate: true });
  check(c.ws.extensions === '', `extensions ${JSON.stringify(c.ws.extensions)}`);
  await c.send('plain '.repeat(1000));
  expectMessage(await c.next(), false, 'plain '.repeat(1000));
  await c.close(1000);
});

test('limit', 'a message of 100 KiB over --ws-max-message 65536 gets 1009', async (s) => {
  const c = await Client.open(s.url);
  await c.send(Buffer.alloc(65536, 'x'));
  expectMessage(await c.next(), true, Buffer.alloc(65536, 'x'));
  await c.send(Buffer.alloc(100 * 1024, 'y'));
  const { code } = await withTimeout(c.closed, 'the server closing');
  check(code === 1009, `close code ${code}`);
});

test('limit', 'fragments adding up over the limit get 1009', async (s) => {
  const c = await Client.open(s.url);
  await c.send('a'.repeat(40000), { fin: false });
  await c.send('b'.repeat(40000), { fin: true });
  const { code } = await withTimeout(c.closed, 'the server closing');
  check(code === 1009, `close code ${code}`);
});

test('deflate', 'with --ws-deflate a compressible message round-trips compressed', async (s) => {
  const c = await Client.open(s.url, { perMessageDeflate: true });
  check(c.ws.extensions.includes('permessage-deflate'),
        `extensions ${JSON.stringify(c.ws.extensions)}`);
  const text = 'lancer speaks permessage-deflate. '.repeat(3000);
  await c.send(text, { compress: true });
  expectMessage(await c.next(), false, text);
  await c.send(Buffer.from(text), { compress: true });
  expectMessage(await c.next(), true, Buffer.from(text));
  await c.close(1000);
});

test('deflate', 'fragmented compressed message', async (s) => {
  const c = await Client.open(s.url, { perMessageDeflate: true });
  await c.send('compressed '.repeat(100), { fin: false, compress: true });
  await c.send('and fragmented '.repeat(100), { fin: false, compress: true });
  await c.send('κόσμε', { fin: true, compress: true });
  expectMessage(await c.next(), false,
                'compressed '.repeat(100) + 'and fragmented '.repeat(100) + 'κόσμε');
  await c.close(1000);
});

test('deflate', 'many compressed messages share the context', async (s) => {
  const c = await Client.open(s.url, { perMessageDeflate: { threshold: 0 } });
  const msgs = [...Array(50).keys()].map(
    (i) => `message ${i}: ` + 'the same words again '.repeat(20));
  for (const m of msgs) await c.send(m);
  for (const m of msgs) expectMessage(await c.next(), false, m);
  await c.close(1000);
});

test('deflate', 'a compressed bomb (2 MiB of zeros) over the limit gets 1009', async (s) => {
  const c = await Client.open(s.url, { perMessageDeflate: true });
  await c.send(Buffer.alloc(2 * 1048576), { compress: true });
  const { code } = await withTimeout(c.closed, 'the server closing');
  check(code === 1009, `close code ${code}`);
});

const flags = { default: [], limit: ['--ws-max-message', '65536'], deflate: ['--ws-deflate'] };
const started = Date.now();
let failures = 0;
let ran = 0;
for (const kind of Object.keys(flags)) {
  let server;
  try {
    server = await startServer(...flags[kind]);
  } catch (e) {
    for (const t of cases.filter((t) => t.server === kind)) {
      ran++;
      failures++;
      console.log(`not ok - ${t.name}: ${e.message}`);
    }
    continue;
  }
  for (const t of cases.filter((t) => t.server === kind)) {
    ran++;
    try {
      await withTimeout(t.fn(server), t.name, TIMEOUT * 2);
      console.log(`ok - ${t.name}`);
    } catch (e) {
      failures++;
      console.log(`not ok - ${t.name}: ${e.message}`);
    }
  }
  ran++;
  const err = await server.stop().catch((e) => e.message);
  if (err) {
    failures++;
    console.log(`not ok - lancer-serve ${server.flags} stops cleanly: ${err}`);
  } else {
    console.log(`ok - lancer-serve ${server.flags} stops cleanly`);
  }
}
console.log(`\nRan ${ran} tests in ${((Date.now() - started) / 1000).toFixed(3)}s\n`);
console.log(failures ? `FAILED (failures=${failures})` : 'OK');
process.exit(failures ? 1 : 0);
