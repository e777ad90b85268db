// sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET.
#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "sockaddr.h"
#include "unique_fd.h"

namespace nserve {
namespace {

// sdNotify(socketPath: string, state: string): void. '@name' is an abstract
// address. SOCK_NONBLOCK: a receiver with a full queue gives EAGAIN instead
// of blocking the event loop.
Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0);
  std::string state = StringArg(info, 1);
  ErrorContext context = ErrorContext::Path(path);

  sockaddr_un addr;
  socklen_t len = MakeUnixAddress(env, path, "sendto", &addr);
  unique_fd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) ThrowErrno(env, "socket", context);
  ssize_t n;
  do {
    n = sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL,
               reinterpret_cast<sockaddr*>(&addr), len);
  } while (n < 0 && errno == EINTR);
  if (n < 0) ThrowErrno(env, "sendto", context);
  return env.Undefined();
}

}  // namespace

void InitNotify(Napi::Env env, Napi::Object exports) {
  exports.Set("sdNotify", Napi::Function::New(env, SdNotify, "sdNotify"));
}

}  // namespace nserve
