// The Boost.Beast baseline of bench/ws: a WebSocket echo server written the way Beast's own
// example `websocket_server_awaitable` is (and so the way users write one from it): C++20
// coroutines on one io_context, co_spawn per session, websocket::stream over a
// beast::tcp_stream with use_awaitable as its default completion token, the suggested server
// timeouts, a fresh flat_buffer per message, ws.text(ws.got_text()) so that text comes back as
// text and binary as binary. No lancer code.
//
//   ws_beast_server ADDRESS PORT THREADS     (bench/ws runs it with THREADS = 1)
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// A tcp_stream whose operations return awaitables when given no completion token.
using stream = websocket::stream<typename beast::tcp_stream::rebind_executor<
    typename net::use_awaitable_t<>::executor_with_default<net::any_io_executor>>::other>;

namespace {

void report(std::exception_ptr e, const char* where) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    std::cerr << where << ": " << ex.what() << "\n";
  }
}

net::awaitable<void> session(stream ws) {
  ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
  ws.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
    res.set(http::field::server, std::string(BOOST_BEAST_VERSION_STRING) + " ws-beast-server");
  }));
  co_await ws.async_accept();
  try {
    for (;;) {
      beast::flat_buffer buffer;  // a new buffer per message, as in the example
      co_await ws.async_read(buffer);
      ws.text(ws.got_text());
      co_await ws.async_write(buffer.data());
    }
  } catch (const boost::system::system_error& e) {
    if (e.code() != websocket::error::closed) throw;
  }
}

net::awaitable<void> listen(tcp::endpoint endpoint) {
  auto acceptor =
      net::use_awaitable.as_default_on(tcp::acceptor(co_await net::this_coro::executor));
  acceptor.open(endpoint.protocol());
  acceptor.set_option(net::socket_base::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(net::socket_base::max_listen_connections);
  for (;;) {
    net::co_spawn(acceptor.get_executor(), session(stream(co_await acceptor.async_accept())),
                  [](std::exception_ptr e) { report(e, "session"); });
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: ws_beast_server ADDRESS PORT THREADS\n";
    return EXIT_FAILURE;
  }
  const auto address = net::ip::make_address(argv[1]);
  const auto port = static_cast<unsigned short>(std::atoi(argv[2]));
  const int threads = std::max(1, std::atoi(argv[3]));

  net::io_context ioc(threads);
  net::co_spawn(ioc, listen(tcp::endpoint{address, port}),
                [](std::exception_ptr e) { report(e, "listen"); });
  std::vector<std::thread> others;
  for (int i = 1; i < threads; ++i)
    others.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  for (auto& t : others)
    t.join();
  return EXIT_SUCCESS;
}
