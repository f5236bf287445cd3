#!/usr/bin/env node
// lancer-serve's WebSocket echo endpoint (/ws) used by a real browser: headless Chromium
// (Debian's /usr/bin/chromium, driven by puppeteer-core) opens examples/site/echo.html from
// lancer-serve, waits for the connection, sends text messages (ASCII, non-ASCII, empty, 526
// bytes and 80 000 bytes: every payload length encoding) and a binary one and checks each echo
// on the page, closes with 1000 and checks the close code shown, and keeps a screenshot. It
// fails on a console error of the page and on a sanitizer report in lancer-serve's stderr, and
// gives up after an overall timeout.
//
// usage: node browser_test.mjs PATH/TO/lancer-serve [--root DIR] [--screenshot FILE]
//                              [--timeout SECONDS]
//   --root        the site to serve (default: examples/site of this checkout)
//   --screenshot  where the screenshot goes (default: $LANCER_WS_BROWSER_SCREENSHOT, else
//                 artifacts/ws-browser.png under the current directory)
//   --timeout     the whole run's limit (default 60)
// Needs `npm ci` in this directory (puppeteer-core) and Debian's chromium package; CHROMIUM
// names another Chromium binary. Prints a summary in Python unittest's words (Ran N tests ...,
// OK or FAILED (failures=K)), and exits 1 on any failure.

import { spawn } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const STEP_MS = 15_000; // the longest any one wait may take

// What a sanitizer's runtime prints when it finds something (as test/serve/serve_test.py).
const SANITIZER_REPORT =
  /(ERROR: (Address|Leak|Thread|Memory)Sanitizer|WARNING: ThreadSanitizer|runtime error: |UndefinedBehaviorSanitizer|SUMMARY: \w+Sanitizer)/;

// Chromium on a machine with no network: without these it stalls on refused connections.
const CHROMIUM_ARGS = [
  "--headless=new",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

// The bytes echo.html's "Send binary" sends, as the page shows them.
const BINARY_SHOWN = "8 bytes: 00 01 7f 80 c3 28 fe ff";

function usage(message) {
  console.error(`browser_test: ${message}`);
  console.error("usage: node browser_test.mjs PATH/TO/lancer-serve [--root DIR] " +
                "[--screenshot FILE] [--timeout SECONDS]");
  process.exit(2);
}

function parseArgs(argv) {
  const o = {
    serve: null,
    root: path.resolve(HERE, "../../../examples/site"),
    screenshot: process.env.LANCER_WS_BROWSER_SCREENSHOT ||
      path.resolve("artifacts", "ws-browser.png"),
    timeout: 60,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--root") o.root = path.resolve(value());
    else if (a === "--screenshot") o.screenshot = path.resolve(value());
    else if (a === "--timeout") o.timeout = Number(value());
    else if (a.startsWith("-")) usage(`unknown option ${a}`);
    else if (o.serve === null) o.serve = path.resolve(a);
    else usage(`unexpected argument ${a}`);
  }
  if (o.serve === null) usage("no lancer-serve given");
  if (!(o.timeout > 0)) usage("--timeout needs a positive number of seconds");
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

// --- lancer-serve -------------------------------------------------------------------------

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class Serve {
  async start() {
    this.dir = await fsp.mkdtemp(path.join(os.tmpdir(), "lancer-ws-browser-"));
    this.pidFile = path.join(this.dir, "lancer.pid");
    this.errPath = path.join(this.dir, "stderr.txt");
    this.port = await freePort();
    // stderr goes to a file: a pipe nobody reads would fill and stall the server.
    const err = fs.openSync(this.errPath, "w");
    this.exited = null;
    this.proc = spawn(opts.serve,
      ["--listen", `tcp/127.0.0.1:${this.port}`, "--root", opts.root, "--out-pid", this.pidFile,
       "--log-level", "warn", "--access-log", "off"],
      { stdio: ["ignore", "ignore", err] });
    fs.closeSync(err);
    this.exit = new Promise((resolve) => {
      this.proc.on("exit", (code, signal) => resolve((this.exited = { code, signal })));
      this.proc.on("error", (e) => resolve((this.exited = { code: null, signal: null, error: e })));
    });
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (this.exited) throw new Error(`lancer-serve did not start: ${this.describeExit()}`);
      if (fs.existsSync(this.pidFile)) return;
      await sleep(20);
    }
    throw new Error("lancer-serve did not write its pid file within 10 s");
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  stderr() {
    try {
      return fs.readFileSync(this.errPath, "utf8");
    } catch {
      return "";
    }
  }

  describeExit() {
    const e = this.exited;
    const how = e.error ? `could not run: ${e.error.message}`
      : e.signal ? `killed by ${e.signal}` : `exit code ${e.code}`;
    const err = this.stderr().trim();
    return err ? `${how}; its stderr:\n${err.slice(0, 4000)}` : how;
  }

  sanitizerReport() {
    const err = this.stderr();
    const m = SANITIZER_REPORT.exec(err);
    if (!m) return null;
    const start = Math.max(0, err.lastIndexOf("\n", m.index));
    return err.slice(start, start + 4000);
  }

  // SIGTERM (a drain), then the exit; SIGKILL if it takes more than `ms`.
  async stop(ms = 20_000) {
    if (!this.proc) return null;
    if (!this.exited) this.proc.kill("SIGTERM");
    const t = setTimeout(() => this.proc.kill("SIGKILL"), ms);
    const e = await this.exit;
    clearTimeout(t);
    return e;
  }

  cleanup() {
    if (this.proc && !this.exited) this.proc.kill("SIGKILL");
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// --- the run ------------------------------------------------------------------------------

const results = []; // { name, error }
let step = "starting";
let serve = null;
let browser = null;
let userDataDir = null;
const pageProblems = []; // console errors and uncaught exceptions of the page
const started = Date.now();

function fail(message) {
  throw new Error(message);
}

let timedOut = false;

async function run(name, fn) {
  if (timedOut) return false;
  step = name;
  let error = null;
  try {
    await fn();
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
  }
  if (timedOut) return false; // the overall timeout has reported it
  results.push({ name, error });
  console.log(`${name} ... ${error ? "FAIL" : "ok"}`);
  return !error;
}

function summary() {
  for (const r of results.filter((r) => r.error)) {
    console.log("=".repeat(70));
    console.log(`FAIL: ${r.name} (browser_test)`);
    console.log("-".repeat(70));
    console.log(r.error);
    console.log();
  }
  const failures = results.filter((r) => r.error).length;
  console.log("-".repeat(70));
  console.log(`Ran ${results.length} tests in ${((Date.now() - started) / 1000).toFixed(3)}s`);
  console.log();
  console.log(failures ? `FAILED (failures=${failures})` : "OK");
  return failures;
}

// Any Chromium process still running on `dir` (the run's own fresh profile): what a launch
// that the overall timeout cut short leaves behind.
function killChromiumOn(dir) {
  const flag = `--user-data-dir=${dir}`;
  for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      if (fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(flag)) {
        process.kill(Number(pid), "SIGKILL");
      }
    } catch {} // gone meanwhile, or not ours to read
  }
}

// Closes Chromium, removes its profile and stops lancer-serve if still running; once, however
// often it is called (the overall timeout and the end of the run may both ask).
let tornDown = null;
const teardown = () => (tornDown ??= (async () => {
  if (browser) {
    const proc = browser.process();
    await Promise.race([browser.close().catch(() => {}), sleep(5_000)]);
    if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
  }
  if (userDataDir) {
    killChromiumOn(userDataDir);
    // A killed Chromium's helpers may still write there for a moment.
    for (let i = 0; i < 20; i++) {
      try {
        fs.rmSync(userDataDir, { recursive: true, force: true });
        break;
      } catch {
        await sleep(100);
      }
    }
  }
  if (serve) serve.cleanup();
})());

// However the process ends (a crash of this script too), it leaves no server or browser behind.
process.on("exit", () => {
  if (serve && serve.proc && !serve.exited) serve.proc.kill("SIGKILL");
  if (userDataDir) killChromiumOn(userDataDir);
});

// The overall limit: whatever hangs, the run ends, says where it was, and fails.
const NAMES = [
  "test_page_loads_and_connects",
  "test_text_messages_are_echoed",
  "test_binary_message_is_echoed",
  "test_close_1000_shows_the_code",
  "test_screenshot_kept",
  "test_page_logged_no_console_error",
  "test_lancer_serve_stops_cleanly_without_sanitizer_report",
];
const overall = setTimeout(async () => {
  timedOut = true;
  console.log(`browser_test: the whole run took longer than ${opts.timeout} s ` +
              `(stuck in ${step}); giving up`);
  const err = serve ? serve.stderr().trim() : "";
  if (err) console.log(`lancer-serve's stderr so far:\n${err.slice(0, 4000)}`);
  const ran = new Set(results.map((r) => r.name));
  for (const name of NAMES) {
    if (!ran.has(name)) results.push({ name, error: `not finished: overall timeout (${opts.timeout} s)` });
  }
  summary();
  await Promise.race([teardown(), sleep(3_000)]);
  process.exit(1);
}, opts.timeout * 1000);

let puppeteer;
try {
  puppeteer = (await import("puppeteer-core")).default;
} catch (e) {
  console.error(`browser_test: cannot load puppeteer-core (${e.message}); ` +
                `run \`npm ci\` in ${HERE} (scripts/test does)`);
  process.exit(1);
}
if (!fs.existsSync(CHROMIUM)) {
  console.error(`browser_test: no Chromium at ${CHROMIUM}; install Debian's chromium package ` +
                "(scripts/test does)");
  process.exit(1);
}

let page = null;
// What the page shows: state, close info and every log line.
const pageView = () => page.evaluate(() => ({
  state: document.getElementById("state").dataset.state,
  closeInfo: document.getElementById("close-info").textContent,
  lines: Array.from(document.querySelectorAll("#log li"), (li) => ({
    id: li.id, kind: li.dataset.kind, text: li.textContent })),
}));
const needPage = () => page || fail("no page (test_page_loads_and_connects failed)");
const short = (s) => (s.length > 60 ? `${s.slice(0, 60)}... (${s.length} characters)` : s);

// Waits until fn(arg) holds on the page; fails at once, rather than at the step's limit, if the
// connection closes first (unless that is what is awaited).
async function waitFor(what, fn, arg, { untilClosed = false } = {}) {
  const closed = 'document.getElementById("state").dataset.state === "closed"';
  const condition = `(${fn})(${JSON.stringify(arg)})` + (untilClosed ? "" : ` || ${closed}`);
  let why;
  try {
    await page.waitForFunction(condition, { timeout: STEP_MS, polling: 50 });
    if (await page.evaluate(fn, arg)) return;
    why = "the connection closed first";
  } catch (e) {
    why = `not within ${STEP_MS / 1000} s: ${e.message.split("\n")[0]}`;
  }
  let view = "";
  try {
    const v = await pageView();
    view = `; the page shows state "${v.state}", close info "${v.closeInfo}", log: ` +
      JSON.stringify(v.lines.map((l) => `${l.id} ${l.kind}: ${short(l.text)}`));
  } catch {}
  const gone = serve.exited ? `; lancer-serve exited: ${serve.describeExit()}` : "";
  fail(`waited for ${what}: ${why}${view}${gone}`);
}

// The later tests need the connection the first one opened.
async function needOpen() {
  needPage();
  const state = await page.$eval("#state", (e) => e.dataset.state);
  if (state !== "open") fail(`the connection is not open (state "${state}")`);
}

// The messages typed or set into the input, in order. The long one is set rather than typed.
const MESSAGES = [
  { text: "hello lancer", how: "type, click Send" },
  { text: "héllo ✓", how: "type, Enter" },
  { text: "Grüße, привет, γειά, 𝔸𝔹 (4 bytes each in UTF-8)", how: "type, Enter" },
  { text: "", how: "click Send" },
  { text: "x".repeat(125) + "|" + "ü".repeat(200), how: "set, click Send" },
  { text: "0123456789abcdé".repeat(5000), how: "set, click Send" },
];

try {
  await run("test_page_loads_and_connects", async () => {
    serve = new Serve();
    await serve.start();
    userDataDir = await fsp.mkdtemp(path.join(os.tmpdir(), "lancer-ws-chromium-"));
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      pipe: true,
      userDataDir,
      args: CHROMIUM_ARGS,
      timeout: 30_000,
      protocolTimeout: 30_000,
      defaultViewport: { width: 900, height: 1000 },
    });
    const args = browser.process().spawnargs;
    const missing = CHROMIUM_ARGS.filter((a) => !args.includes(a));
    if (missing.length) fail(`Chromium was launched without ${missing.join(" ")}`);
    page = await browser.newPage();
    page.on("console", (m) => {
      if (m.type() === "error") {
        const where = m.location() && m.location().url ? ` (${m.location().url})` : "";
        pageProblems.push(`console error: ${m.text()}${where}`);
      }
    });
    page.on("pageerror", (e) => pageProblems.push(`uncaught: ${e.message}`));
    const response = await page.goto(`${serve.url}/echo.html`,
      { waitUntil: "load", timeout: STEP_MS });
    if (!response || response.status() !== 200) {
      fail(`GET /echo.html answered ${response ? response.status() : "nothing"}`);
    }
    await waitFor("the connection to open",
      () => document.getElementById("state").dataset.state === "open");
  });

  await run("test_text_messages_are_echoed", async () => {
    await needOpen();
    for (const m of MESSAGES) {
      if (m.how.startsWith("type")) {
        await page.click("#message");
        await page.type("#message", m.text);
      } else if (m.how.startsWith("set")) {
        await page.$eval("#message", (el, t) => { el.value = t; }, m.text);
      }
      const typed = await page.$eval("#message", (el) => el.value);
      if (typed !== m.text) fail(`the input holds ${JSON.stringify(short(typed))}, not ${JSON.stringify(short(m.text))}`);
      if (m.how.endsWith("Enter")) await page.keyboard.press("Enter");
      else await page.click("#send");
    }
    const n = MESSAGES.length;
    await waitFor(`${n} echoes`, (k) => document.querySelectorAll("#log li.received").length >= k, n);
    const v = await pageView();
    const sent = v.lines.filter((l) => l.id.startsWith("sent-"));
    const received = v.lines.filter((l) => l.id.startsWith("received-"));
    if (received.length !== n) fail(`${received.length} messages came back, not ${n}`);
    MESSAGES.forEach((m, i) => {
      const s = sent[i];
      const r = received[i];
      if (s.id !== `sent-${i + 1}` || s.text !== m.text) {
        fail(`sent-${i + 1} shows ${JSON.stringify(short(s.text))}, not ${JSON.stringify(short(m.text))}`);
      }
      if (r.id !== `received-${i + 1}` || r.kind !== "text") {
        fail(`message ${i + 1} came back as ${r.id}, ${r.kind}, not text`);
      }
      if (r.text !== m.text) {
        fail(`message ${i + 1} (${m.how}) came back as ${JSON.stringify(short(r.text))}, ` +
             `not ${JSON.stringify(short(m.text))}`);
      }
    });
  });

  await run("test_binary_message_is_echoed", async () => {
    await needOpen();
    const before = await page.$$eval("#log li.received", (l) => l.length);
    await page.click("#send-binary");
    await waitFor("the binary echo",
      (k) => document.querySelectorAll("#log li.received").length > k, before);
    const id = `received-${before + 1}`;
    const r = await page.$eval(`#${id}`, (li) => ({ kind: li.dataset.kind, text: li.textContent }));
    if (r.kind !== "binary") fail(`the binary message came back as ${r.kind}: ${JSON.stringify(r.text)}`);
    if (r.text !== BINARY_SHOWN) fail(`the binary echo shows "${r.text}", not "${BINARY_SHOWN}"`);
    const s = await page.$eval(`#sent-${before + 1}`, (li) => li.textContent);
    if (s !== BINARY_SHOWN) fail(`the sent binary line shows "${s}", not "${BINARY_SHOWN}"`);
  });

  await run("test_close_1000_shows_the_code", async () => {
    await needOpen();
    await page.click("#close");
    await waitFor("the close handshake",
      () => document.getElementById("state").dataset.state === "closed", null,
      { untilClosed: true });
    const info = await page.$eval("#close-info", (p) => ({
      hidden: p.hidden, text: p.textContent, ...p.dataset }));
    console.log(`close shown: ${info.text}`);
    if (info.hidden) fail("the close info is hidden");
    if (info.code !== "1000") fail(`closed with code ${info.code}, not 1000: ${info.text}`);
    if (info.clean !== "true") fail(`the close was not clean: ${info.text}`);
    if (!info.text.includes("code 1000")) fail(`the page shows "${info.text}"`);
  });

  await run("test_screenshot_kept", async () => {
    if (!page) fail("no page to take a screenshot of");
    await fsp.mkdir(path.dirname(opts.screenshot), { recursive: true });
    await page.screenshot({ path: opts.screenshot, fullPage: true });
    console.log(`screenshot: ${opts.screenshot}`);
  });

  await run("test_page_logged_no_console_error", async () => {
    if (pageProblems.length) fail(`the page logged:\n  ${pageProblems.join("\n  ")}`);
  });

  await run("test_lancer_serve_stops_cleanly_without_sanitizer_report", async () => {
    if (!serve || !serve.proc) fail("lancer-serve never started");
    const ranBefore = !serve.exited;
    if (browser) await Promise.race([browser.close().catch(() => {}), sleep(5_000)]);
    const e = await serve.stop();
    const report = serve.sanitizerReport();
    if (report) fail(`lancer-serve printed a sanitizer report:\n${report}`);
    if (!ranBefore) fail(`lancer-serve exited during the test: ${serve.describeExit()}`);
    if (e.code !== 0) fail(`lancer-serve stopped with ${serve.describeExit()}`);
    const err = serve.stderr().trim();
    if (err) console.log(`lancer-serve's stderr (level warn):\n${err.slice(0, 2000)}`);
  });
} finally {
  // After the overall timeout, its handler reports and exits.
  if (!timedOut) {
    clearTimeout(overall);
    await teardown();
    process.exit(summary() ? 1 : 0);
  }
}
