// lancer::connection_error: what a stream throws when its transport fails; lancer::file_error:
// what stream::send_file throws when its file fails.
#pragma once

#include <system_error>

namespace lancer {

// A transport failure on a stream or a server's connection: the peer reset it or went away, a
// write met a stream that failed or was cut off, more input was buffered than allowed, or a
// fault was injected. The message names the stream ("conn/42: Connection reset by peer",
// "tcp/10.0.0.2:8080: Connection refused"). It is the peer's doing, not a bug
// (core/failure.hpp logs it at INFO); a write after the program's own close() is a bug and
// throws std::system_error instead.
class connection_error : public std::system_error {
 public:
  using std::system_error::system_error;
};

// A file a stream was sending (stream::send_file) could not be read, or ended before the
// length promised (it was truncated while being sent: the code is std::errc::io_error). The
// stream was aborted first, so the peer sees the connection end mid-body. The message names
// the stream.
class file_error : public std::system_error {
 public:
  using std::system_error::system_error;
};

}  // namespace lancer
