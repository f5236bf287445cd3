#!/usr/bin/python3
"""lancer-serve's /ws echo endpoint driven by Python's `websockets` (Debian's
python3-websockets: run with /usr/bin/python3): echo of text and binary, fragmented and large
messages, ping, close codes, the message limit and permessage-deflate.

usage: /usr/bin/python3 python_clients.py PATH/TO/lancer-serve [unittest arguments]
"""
import asyncio
import os
import sys
import unittest

import websockets
from websockets.extensions.permessage_deflate import PerMessageDeflate

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from wsserver import Server  # noqa: E402

SERVE = None
# Per step: generous, for the ASan build on a busy machine.
TIMEOUT = 30


class ServerCase(unittest.TestCase):
    """One lancer-serve (with `flags`) for the class's tests; a sanitizer report fails."""
    flags = ()

    @classmethod
    def setUpClass(cls):
        cls.server = Server(SERVE, *cls.flags)

    @classmethod
    def tearDownClass(cls):
        code = cls.server.stop()
        if code != 0:
            raise AssertionError(f"lancer-serve exited with {code}:\n{cls.server.stderr}")

    def url(self):
        return f"ws://127.0.0.1:{self.server.port}/ws"

    def run_client(self, coroutine_fn, **connect_kw):
        """Runs coroutine_fn(ws) on a new connection, within TIMEOUT."""
        async def main():
            connect_kw.setdefault("compression", None)
            connect_kw.setdefault("open_timeout", TIMEOUT)
            connect_kw.setdefault("close_timeout", TIMEOUT)
            async with websockets.connect(self.url(), ping_interval=None, **connect_kw) as ws:
                return await coroutine_fn(ws)
        return asyncio.run(asyncio.wait_for(main(), TIMEOUT * 2))


async def recv(ws):
    return await asyncio.wait_for(ws.recv(), TIMEOUT)


class EchoTests(ServerCase):
    def test_text_is_echoed_as_text(self):
        async def go(ws):
            await ws.send("hello, κόσμε 𝄞")
            return await recv(ws)
        self.assertEqual(self.run_client(go), "hello, κόσμε 𝄞")

    def test_binary_is_echoed_as_binary(self):
        data = bytes(range(256)) * 4

        async def go(ws):
            await ws.send(data)
            return await recv(ws)
        self.assertEqual(self.run_client(go), data)

    def test_empty_messages(self):
        async def go(ws):
            await ws.send("")
            await ws.send(b"")
            return [await recv(ws), await recv(ws)]
        self.assertEqual(self.run_client(go), ["", b""])

    def test_many_messages_on_one_connection_in_order(self):
        async def go(ws):
            for i in range(200):
                await ws.send(f"message {i}" if i % 2 else f"message {i}".encode())
            return [await recv(ws) for _ in range(200)]
        self.assertEqual(self.run_client(go),
                         [f"message {i}" if i % 2 else f"message {i}".encode()
                          for i in range(200)])

    def test_fragmented_text_from_an_iterable_comes_back_whole(self):
        async def go(ws):
            await ws.send(["frag", "mented ", "κόσ", "με"])
            return await recv(ws)
        self.assertEqual(self.run_client(go), "fragmented κόσμε")

    def test_fragmented_binary_from_an_async_iterator_comes_back_whole(self):
        async def parts():
            for i in range(10):
                yield bytes([i]) * 1000
                await asyncio.sleep(0.01)  # the fragments arrive apart

        async def go(ws):
            await ws.send(parts())
            return await recv(ws)
        self.assertEqual(self.run_client(go), b"".join(bytes([i]) * 1000 for i in range(10)))

    def test_large_message_under_the_limit_is_echoed_whole(self):
        data = os.urandom(512 * 1024)

        async def go(ws):
            await ws.send(data)
            text = ("0123456789abcdef" * 32768)  # 512 KiB of text
            await ws.send(text)
            return await recv(ws), await recv(ws), text
        got_binary, got_text, text = self.run_client(go, max_size=2 ** 21)
        self.assertEqual(got_binary, data)
        self.assertEqual(got_text, text)

    def test_ping_gets_a_pong_with_its_payload(self):
        async def go(ws):
            waiter = await ws.ping(b"are you there")
            await asyncio.wait_for(waiter, TIMEOUT)
            await ws.send("after the ping")
            return await recv(ws)
        self.assertEqual(self.run_client(go), "after the ping")

    def test_normal_close_with_a_reason_is_answered_with_1000(self):
        async def go(ws):
            await ws.send("bye soon")
            self.assertEqual(await recv(ws), "bye soon")
            await ws.close(1000, "done here")
            return ws.close_code, ws.close_reason
        code, reason = self.run_client(go)
        self.assertEqual(code, 1000)
        # The server echoes the code; its reason may be empty or ours.
        self.assertIn(reason, ("", "done here"))

    def test_close_code_4000_is_echoed(self):
        async def go(ws):
            await ws.close(4000, "application code")
            return ws.close_code
        self.assertEqual(self.run_client(go), 4000)

    def test_the_default_limit_is_1_mib(self):
        async def go(ws):
            await ws.send(bytes(1048576))
            got = await recv(ws)
            await ws.send(bytes(1048577))
            with self.assertRaises(websockets.ConnectionClosedError):
                await recv(ws)
            return got, ws.close_code
        got, code = self.run_client(go, max_size=2 ** 21)
        self.assertEqual(len(got), 1048576)
        self.assertEqual(code, 1009)

    def test_deflate_is_not_agreed_without_ws_deflate(self):
        async def go(ws):
            await ws.send("plain " * 1000)
            return ws.extensions, ws.response_headers.get("Sec-WebSocket-Extensions"), \
                await recv(ws)
        extensions, header, got = self.run_client(go, compression="deflate")
        self.assertEqual(extensions, [])
        self.assertIsNone(header)
        self.assertEqual(got, "plain " * 1000)


class LimitTests(ServerCase):
    flags = ("--ws-max-message", "65536")

    def test_a_message_over_the_limit_gets_1009(self):
        async def go(ws):
            await ws.send(b"x" * 65536)  # at the limit: echoed
            got = await recv(ws)
            await ws.send(b"y" * (100 * 1024))
            with self.assertRaises(websockets.ConnectionClosedError) as e:
                await recv(ws)
            return got, ws.close_code, e.exception
        got, code, exc = self.run_client(go)
        self.assertEqual(got, b"x" * 65536)
        self.assertEqual(code, 1009, exc)

    def test_fragments_adding_up_over_the_limit_get_1009(self):
        async def go(ws):
            await ws.send(["a" * 40000, "b" * 40000])
            with self.assertRaises(websockets.ConnectionClosedError):
                await recv(ws)
            return ws.close_code
        self.assertEqual(self.run_client(go), 1009)


class DeflateTests(ServerCase):
    flags = ("--ws-deflate",)

    def test_compressible_message_round_trips_compressed(self):
        text = "lancer speaks permessage-deflate. " * 3000

        async def go(ws):
            await ws.send(text)
            got = await recv(ws)
            await ws.send(text.encode())
            return ws.extensions, ws.response_headers.get("Sec-WebSocket-Extensions"), got, \
                await recv(ws)
        extensions, header, got_text, got_binary = self.run_client(go, compression="deflate")
        self.assertEqual(got_text, text)
        self.assertEqual(got_binary, text.encode())
        self.assertIsNotNone(header)
        self.assertIn("permessage-deflate", header)
        self.assertEqual(len(extensions), 1)
        self.assertIsInstance(extensions[0], PerMessageDeflate)

    def test_many_compressed_messages_share_the_context(self):
        async def go(ws):
            for i in range(50):
                await ws.send(f"message {i}: " + "the same words again " * 20)
            return [await recv(ws) for _ in range(50)]
        self.assertEqual(self.run_client(go, compression="deflate"),
                         [f"message {i}: " + "the same words again " * 20 for i in range(50)])

    def test_fragmented_compressed_message(self):
        async def go(ws):
            await ws.send(["compressed " * 100, "and fragmented " * 100, "κόσμε"])
            return await recv(ws)
        self.assertEqual(self.run_client(go, compression="deflate"),
                         "compressed " * 100 + "and fragmented " * 100 + "κόσμε")

    def test_without_compression_offered_messages_are_plain(self):
        async def go(ws):
            await ws.send("no offer")
            return ws.extensions, await recv(ws)
        self.assertEqual(self.run_client(go), ([], "no offer"))

    def test_fifty_connections_at_once_half_of_them_compressed(self):
        async def one(i):
            async with websockets.connect(self.url(), ping_interval=None, open_timeout=TIMEOUT,
                                          compression="deflate" if i % 2 else None) as ws:
                sent = [f"connection {i} message {j} " * (j % 7 + 1) for j in range(100)]
                for m in sent:
                    await ws.send(m)
                got = [await recv(ws) for _ in sent]
                return got == sent and (i % 2 == 0) == (ws.extensions == [])

        async def main():
            return await asyncio.gather(*[one(i) for i in range(50)])
        self.assertEqual(asyncio.run(asyncio.wait_for(main(), TIMEOUT * 2)), [True] * 50)

    def test_a_small_compressed_bomb_over_the_limit_gets_1009(self):
        async def go(ws):
            await ws.send(bytes(2 * 1048576))  # compresses to a few KiB
            with self.assertRaises(websockets.ConnectionClosedError):
                await recv(ws)
            return ws.close_code
        self.assertEqual(self.run_client(go, compression="deflate"), 1009)


class ShutdownTests(unittest.TestCase):
    def test_sigterm_closes_open_connections_with_1001_and_exits_0(self):
        server = Server(SERVE)
        self.addCleanup(server.stop)

        async def main():
            url = f"ws://127.0.0.1:{server.port}/ws"
            conns = [await websockets.connect(url, ping_interval=None, compression=None,
                                              open_timeout=TIMEOUT, close_timeout=TIMEOUT)
                     for _ in range(3)]
            await conns[0].send("echoed before the signal")
            self.assertEqual(await recv(conns[0]), "echoed before the signal")
            server.proc.terminate()
            codes = []
            for ws in conns:
                with self.assertRaises(websockets.ConnectionClosed):
                    await recv(ws)
                codes.append(ws.close_code)
            return codes
        self.assertEqual(asyncio.run(asyncio.wait_for(main(), TIMEOUT * 2)), [1001] * 3)
        # The drain ends by itself once the closes are done: wait for it, rather than have
        # stop() send a second SIGTERM (which stops at once) while the process is on its way out.
        self.assertEqual(server.proc.wait(timeout=TIMEOUT * 2), 0)
        self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    SERVE = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
