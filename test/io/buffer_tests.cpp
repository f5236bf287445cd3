// lancer::buffer: a byte queue that gives its storage back.
#include "lancer/io/buffer.hpp"

#include <doctest/doctest.h>

#include <string>

TEST_CASE("a buffer hands bytes out in the order they went in") {
  lancer::buffer b;
  b.append("hello ");
  b.append("world");
  CHECK(b.view() == "hello world");
  b.consume(6);
  CHECK(b.view() == "world");
  b.append("!");
  CHECK(b.view() == "world!");
  b.consume(100);
  CHECK(b.empty());
}

TEST_CASE("a buffer grows past its first block and keeps every byte") {
  lancer::buffer b;
  std::string expect;
  for (int i = 0; i < 5000; ++i) {
    const std::string piece = std::to_string(i) + ",";
    b.append(piece);
    expect += piece;
  }
  CHECK(b.view() == expect);
  CHECK(b.capacity() >= expect.size());
}

TEST_CASE("a drained buffer reuses its storage and gives it back on release") {
  lancer::buffer b;
  b.append(std::string(1000, 'a'));
  const std::size_t cap = b.capacity();
  for (int i = 0; i < 100; ++i) {
    b.consume(b.size());
    b.append(std::string(1000, 'b'));
  }
  CHECK(b.capacity() == cap);  // consumed fully each time: no growth
  b.release();
  CHECK(b.capacity() == 1000 * 0 + cap);  // not empty: release keeps it
  b.consume(b.size());
  b.release();
  CHECK(b.capacity() == 0);
}

TEST_CASE("a buffer compacts instead of growing when consumed space suffices") {
  lancer::buffer b;
  b.append(std::string(3000, 'a'));
  const std::size_t cap = b.capacity();
  b.consume(2500);
  b.append(std::string(2000, 'b'));  // 500 + 2000 fits once the front is reclaimed
  CHECK(b.capacity() == cap);
  CHECK(b.view() == std::string(500, 'a') + std::string(2000, 'b'));
}

TEST_CASE("a moved buffer carries its bytes and leaves an empty one") {
  lancer::buffer a;
  a.append("payload");
  lancer::buffer b = std::move(a);
  CHECK(b.view() == "payload");
  CHECK(a.empty());
  CHECK(a.capacity() == 0);
}

TEST_CASE("erase drops bytes from the middle and keeps both sides") {
  lancer::buffer b;
  b.append("HEADERbodybytesTAIL");
  b.erase(6, 9);
  CHECK(b.view() == "HEADERTAIL");
  b.erase(6, 100);  // past the end: clipped
  CHECK(b.view() == "HEADER");
  b.erase(10, 1);  // offset past the end: nothing
  CHECK(b.view() == "HEADER");
}
