// The one place where a failed system call becomes a JavaScript Error.
//
// Shape (as Node's own net/fs errors): message "<syscall> <CODE>[ <context>]",
// e.g. "bind EADDRINUSE 127.0.0.1:3000", and properties code ("EADDRINUSE"),
// errno (negative, -98), syscall, plus address/port or path when given.
#ifndef NSERVE_ERRORS_H_
#define NSERVE_ERRORS_H_

#include <napi.h>

#include <optional>
#include <string>

namespace nserve {

struct ErrorContext {
  std::optional<std::string> address;
  std::optional<int> port;
  std::optional<std::string> path;

  static ErrorContext Path(std::string p) {
    ErrorContext c;
    c.path = std::move(p);
    return c;
  }
  static ErrorContext HostPort(std::string host, int port) {
    ErrorContext c;
    c.address = std::move(host);
    c.port = port;
    return c;
  }
};

// The error object itself, built with plain N-API calls that report failure
// instead of throwing: nullptr when the environment refuses (a worker thread
// being terminated). For libuv callbacks, where nothing may throw.
napi_value MakeUvError(napi_env env, int uv_err, const char* syscall,
                       const ErrorContext& context = {});

// uv_err is a libuv error code (negative; on Linux -errno).
Napi::Error UvError(Napi::Env env, int uv_err, const char* syscall,
                    const ErrorContext& context = {});

// err is a positive errno value, as left in errno by a failed call.
inline Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall,
                              const ErrorContext& context = {}) {
  return UvError(env, -err, syscall, context);
}

// Throws ErrnoError(env, errno, ...) as a C++ exception (node-addon-api turns
// it into a JS exception at the boundary). errno is read inside, after the
// arguments are built: pass a context built beforehand, or save errno and use
// ErrnoError when the context is built on the spot.
[[noreturn]] void ThrowErrno(Napi::Env env, const char* syscall,
                             const ErrorContext& context = {});

}  // namespace nserve

#endif  // NSERVE_ERRORS_H_
