// The node baseline of bench/ws: a WebSocket echo server on the npm package `ws` (the version
// pinned in bench/ws-node/package-lock.json; bench/ws runs `npm ci` there), one process, one
// thread of JavaScript, as its README's echo example: every message is sent back as it came,
// text as text and binary as binary. No compression (the ws server's default).
//
//   node bench/ws_node_server.mjs HOST PORT
import { createRequire } from 'node:module';

// ws is installed under bench/ws-node/, not beside this file.
const require = createRequire(new URL('./ws-node/package.json', import.meta.url));
const { WebSocketServer } = require('ws');

const [host, port] = process.argv.slice(2);
if (!host || !port) {
  console.error('usage: node ws_node_server.mjs HOST PORT');
  process.exit(2);
}

const wss = new WebSocketServer({ host, port: Number(port), path: '/ws' });
wss.on('connection', (ws) => {
  ws.on('error', (err) => console.error('connection:', err.message));
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
wss.on('error', (err) => {
  console.error('server:', err.message);
  process.exit(1);
});
