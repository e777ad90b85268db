// Listening sockets and their addresses: socket, setsockopt, bind, listen,
// getsockname, getsockopt(TCP_INFO). Every socket is created SOCK_CLOEXEC |
// SOCK_NONBLOCK.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "sockaddr.h"
#include "unique_fd.h"

namespace nserve {

socklen_t MakeUnixAddress(Napi::Env env, const std::string& path,
                          const char* syscall, sockaddr_un* addr) {
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  bool abstract = !path.empty() && path[0] == '@';
  // A filesystem path keeps a terminating NUL; an abstract name needs none.
  size_t room = sizeof(addr->sun_path) - (abstract ? 0 : 1);
  if (path.empty() || path.size() > room) {
    throw ErrnoError(env, path.empty() ? ENOENT : ENAMETOOLONG, syscall,
                     ErrorContext::Path(path));
  }
  memcpy(addr->sun_path, path.data(), path.size());
  if (abstract) {
    addr->sun_path[0] = '\0';
    return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) +
                                  path.size());
  }
  return static_cast<socklen_t>(sizeof(*addr));
}

Napi::Value SockaddrToJs(Napi::Env env, const sockaddr_storage& ss,
                         socklen_t len) {
  Napi::Object out = Napi::Object::New(env);
  char text[INET6_ADDRSTRLEN];
  switch (ss.ss_family) {
    case AF_INET: {
      auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
      inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
      out.Set("family", "IPv4");
      out.Set("address", text);
      out.Set("port", ntohs(sin->sin_port));
      return out;
    }
    case AF_INET6: {
      auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
      inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
      out.Set("family", "IPv6");
      out.Set("address", text);
      out.Set("port", ntohs(sin6->sin6_port));
      return out;
    }
    case AF_UNIX: {
      auto* sun = reinterpret_cast<const sockaddr_un*>(&ss);
      size_t offset = offsetof(sockaddr_un, sun_path);
      size_t n = len > offset ? len - offset : 0;
      std::string path;
      if (n > 0 && sun->sun_path[0] == '\0') {
        path = "@" + std::string(sun->sun_path + 1, n - 1);
      } else if (n > 0) {
        path.assign(sun->sun_path, strnlen(sun->sun_path, n));
      }
      out.Set("family", "unix");
      out.Set("path", path);
      return out;
    }
    default:
      return env.Undefined();
  }
}

namespace {

constexpr int kSocketFlags = SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK;

void SetOption(Napi::Env env, int fd, int level, int name,
               const ErrorContext& context) {
  int one = 1;
  if (setsockopt(fd, level, name, &one, sizeof(one)) != 0) {
    ThrowErrno(env, "setsockopt", context);
  }
}

// Parses a numeric address ("::1", "fe80::1%eth0"); no name resolution,
// which could block the event loop.
bool ParseIp(const std::string& host, bool v6, sockaddr_storage* ss,
             socklen_t* len) {
  memset(ss, 0, sizeof(*ss));
  if (!v6) {
    auto* sin = reinterpret_cast<sockaddr_in*>(ss);
    sin->sin_family = AF_INET;
    *len = sizeof(*sin);
    return inet_pton(AF_INET, host.c_str(), &sin->sin_addr) == 1;
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(ss);
  sin6->sin6_family = AF_INET6;
  *len = sizeof(*sin6);
  std::string ip = host;
  size_t percent = host.find('%');
  if (percent != std::string::npos) {
    ip = host.substr(0, percent);
    std::string zone = host.substr(percent + 1);
    unsigned index = if_nametoindex(zone.c_str());
    if (index == 0) {
      char* end = nullptr;
      index = static_cast<unsigned>(strtoul(zone.c_str(), &end, 10));
      if (zone.empty() || *end != '\0') return false;
    }
    sin6->sin6_scope_id = index;
  }
  return inet_pton(AF_INET6, ip.c_str(), &sin6->sin6_addr) == 1;
}

// listenTcp(v6: boolean, host: string, port: number, reusePort: boolean,
//           backlog: number): number
Napi::Value ListenTcp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool v6 = BoolArg(info, 0);
  std::string host = StringArg(info, 1);
  int port = static_cast<int>(IntArg(info, 2, 0, 65535));
  bool reuse_port = BoolArg(info, 3);
  int backlog = static_cast<int>(IntArg(info, 4, 0, INT32_MAX));

  sockaddr_storage ss;
  socklen_t len;
  if (!ParseIp(host, v6, &ss, &len)) ThrowType(env, "invalid IP address");
  if (v6) {
    reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in*>(&ss)->sin_port = htons(port);
  }
  ErrorContext context = ErrorContext::HostPort(host, port);

  unique_fd fd(socket(v6 ? AF_INET6 : AF_INET, kSocketFlags, 0));
  if (!fd) ThrowErrno(env, "socket", context);
  SetOption(env, fd.get(), SOL_SOCKET, SO_REUSEADDR, context);
  if (reuse_port) SetOption(env, fd.get(), SOL_SOCKET, SO_REUSEPORT, context);
  // Without V6ONLY a "::" listener would also take the IPv4 port.
  if (v6) SetOption(env, fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, context);
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    ThrowErrno(env, "bind", context);
  }
  if (listen(fd.get(), backlog) != 0) ThrowErrno(env, "listen", context);
  return Napi::Number::New(env, fd.release());
}

// A socket file left by a process that died keeps its path: probe it. Only
// ECONNREFUSED proves nobody listens; success, EAGAIN (backlog full) or
// EPROTOTYPE (a datagram socket) mean the path is taken.
void RemoveStaleSocket(Napi::Env env, const std::string& path,
                       const sockaddr_un& addr, socklen_t len,
                       const ErrorContext& context) {
  // statx (glibc 2.28) rather than lstat, which glibc 2.33 turned into a
  // GLIBC_2.33 symbol: the prebuilt addon must load on glibc 2.28.
  struct statx st;
  if (statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_TYPE, &st) !=
      0) {
    return;  // absent: bind reports the rest
  }
  if (!S_ISSOCK(st.stx_mode)) {
    throw ErrnoError(env, EADDRINUSE, "bind", context);
  }

  unique_fd probe(socket(AF_UNIX, kSocketFlags, 0));
  if (!probe) ThrowErrno(env, "socket", context);
  // Non-blocking AF_UNIX connect never returns EINTR or EINPROGRESS.
  int rc = connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), len);
  if (rc == 0 || errno != ECONNREFUSED) {
    throw ErrnoError(env, EADDRINUSE, "bind", context);
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    ThrowErrno(env, "unlink", context);
  }
}

// chmod the socket file just bound at `path` without following a symlink that
// someone may have put there since: open it O_PATH|O_NOFOLLOW, check that it is
// a socket, and chmod through /proc/self/fd (Linux has no lchmod). errno is set
// on failure (ELOOP or ENOTSOCK for anything but our socket).
bool ChmodSocketFile(const std::string& path, int mode) {
  unique_fd f(open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!f) return false;
  // statx (glibc 2.28), not fstat (a glibc 2.33 symbol): the floor stays 2.28.
  struct statx st;
  if (statx(f.get(), "", AT_EMPTY_PATH, STATX_TYPE, &st) != 0) return false;
  if (!S_ISSOCK(st.stx_mode)) {
    errno = ENOTSOCK;
    return false;
  }
  std::string via = "/proc/self/fd/" + std::to_string(f.get());
  return chmod(via.c_str(), static_cast<mode_t>(mode)) == 0;
}

// listenUnix(path: string, mode: number (-1: leave as umask made it),
//            backlog: number): number
Napi::Value ListenUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0);
  int mode = static_cast<int>(IntArg(info, 1, -1, 07777));
  int backlog = static_cast<int>(IntArg(info, 2, 0, INT32_MAX));
  ErrorContext context = ErrorContext::Path(path);
  bool on_disk = path[0] != '@';  // abstract names have no file

  sockaddr_un addr;
  socklen_t len = MakeUnixAddress(env, path, "bind", &addr);
  unique_fd fd(socket(AF_UNIX, kSocketFlags, 0));
  if (!fd) ThrowErrno(env, "socket", context);
  if (on_disk) RemoveStaleSocket(env, path, addr, len, context);
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    ThrowErrno(env, "bind", context);
  }
  // chmod before listen(): nobody can connect while the mode is still wrong.
  const char* failed = nullptr;
  if (on_disk && mode >= 0 && !ChmodSocketFile(path, mode)) {
    failed = "chmod";
  } else if (listen(fd.get(), backlog) != 0) {
    failed = "listen";
  }
  if (failed != nullptr) {
    int err = errno;
    if (on_disk) unlink(path.c_str());
    throw ErrnoError(env, err, failed, context);
  }
  return Napi::Number::New(env, fd.release());
}

// localAddress(fd: number): SocketAddress
Napi::Value LocalAddress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  memset(&ss, 0, sizeof(ss));
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    ThrowErrno(env, "getsockname");
  }
  Napi::Value address = SockaddrToJs(env, ss, len);
  if (address.IsUndefined()) {
    throw ErrnoError(env, EAFNOSUPPORT, "getsockname");
  }
  return address;
}

// listenQueue(fd: number): { depth: number, limit: number } | null
// The accept queue of a listening TCP socket: for a socket in LISTEN state,
// tcp_get_info reports sk_ack_backlog (connections completed, not accepted
// yet) as tcpi_unacked and sk_max_ack_backlog (its limit) as tcpi_sacked. One
// getsockopt per socket, however many connections the machine has: reading
// /proc/net/tcp6 instead walks every TCP socket of the host (measured: 5-20 ms
// a read with 56k sockets in TIME_WAIT). null for a socket that is not TCP or
// not listening.
Napi::Value ListenQueue(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  tcp_info ti;
  memset(&ti, 0, sizeof(ti));
  socklen_t len = sizeof(ti);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) {
    if (errno == EOPNOTSUPP || errno == ENOPROTOOPT) return env.Null();
    ThrowErrno(env, "getsockopt");
  }
  if (ti.tcpi_state != TCP_LISTEN) return env.Null();
  Napi::Object out = Napi::Object::New(env);
  out.Set("depth", Napi::Number::New(env, ti.tcpi_unacked));
  out.Set("limit", Napi::Number::New(env, ti.tcpi_sacked));
  return out;
}

// acceptAndClose(fd: number): number[]
// A graceful stop's last act on a listener: accept every connection queued on
// it (close-on-exec, non-blocking), then close it, in one call, so that the
// window in which a new connection could be queued and then reset by the close
// is one syscall wide. Closing a listener resets what is queued.
//
// Ownership: the listener is this call's from its first line, whether it
// returns or throws. It is closed on every path (a throw included, by
// unique_fd), so the caller must never close `fd` again, even after an error:
// the number may already name another descriptor. Connections accepted before
// a throw are closed too (their clients see a reset): none reaches JavaScript.
Napi::Value AcceptAndClose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  unique_fd listener(FdArg(info, 0));
  std::vector<unique_fd> accepted;
  for (;;) {
    int c =
        accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c >= 0) {
      accepted.emplace_back(c);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    // EAGAIN: the queue is empty. EMFILE/ENFILE: we cannot take more; the
    // close below resets the rest, as it would have anyway.
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EMFILE ||
        errno == ENFILE) {
      break;
    }
    ThrowErrno(env, "accept4");
  }
  listener.reset();
  // Every descriptor goes into the array before any is released (as in
  // RecvFds): a Set that throws midway leaves all of them owned here, closed
  // by the vector, instead of some released into an array nobody receives.
  Napi::Array out = Napi::Array::New(env, accepted.size());
  for (size_t i = 0; i < accepted.size(); i++) {
    out.Set(static_cast<uint32_t>(i), accepted[i].get());
  }
  for (unique_fd& fd : accepted) fd.release();
  return out;
}

}  // namespace

void InitSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("acceptAndClose",
              Napi::Function::New(env, AcceptAndClose, "acceptAndClose"));
  exports.Set("listenTcp", Napi::Function::New(env, ListenTcp, "listenTcp"));
  exports.Set("listenUnix", Napi::Function::New(env, ListenUnix, "listenUnix"));
  exports.Set("localAddress",
              Napi::Function::New(env, LocalAddress, "localAddress"));
  exports.Set("listenQueue",
              Napi::Function::New(env, ListenQueue, "listenQueue"));
}

}  // namespace nserve
