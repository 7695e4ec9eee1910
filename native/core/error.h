// Errors raised by kernels and the binding. A tessera::Error thrown anywhere below an N-API entry
// point is caught by the binding and becomes a JS Error carrying the same message, so a message
// must name the op, the tensors' shapes/dtypes and what was expected.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace tessera {

struct Error : std::runtime_error {
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  append(os, rest...);
}
}  // namespace detail

template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream os;
  detail::append(os, parts...);
  throw Error(os.str());
}

}  // namespace tessera

// TS_CHECK(cond, "op: message parts", ...) throws tessera::Error when cond is false.
#define TS_CHECK(cond, ...)                 \
  do {                                      \
    if (!(cond)) ::tessera::fail(__VA_ARGS__); \
  } while (0)
