// Socket address conversions shared by socket.cc, fds.cc and notify.cc.
#ifndef NSERVE_SOCKADDR_H_
#define NSERVE_SOCKADDR_H_

#include <napi.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <string>

namespace nserve {

// Fills *addr for a filesystem path or, when path starts with '@', a Linux
// abstract name (first byte NUL, no trailing NUL, the length says where the
// name ends). Returns the length to pass to bind/connect/sendto. Throws
// ENAMETOOLONG (with `syscall` and path) when the name does not fit.
socklen_t MakeUnixAddress(Napi::Env env, const std::string& path,
                          const char* syscall, sockaddr_un* addr);

// { family: 'IPv4' | 'IPv6', address, port } or { family: 'unix', path }
// (path '' when unnamed, '@name' when abstract); undefined for any other
// address family (netlink, ...).
Napi::Value SockaddrToJs(Napi::Env env, const sockaddr_storage& ss,
                         socklen_t len);

}  // namespace nserve

#endif  // NSERVE_SOCKADDR_H_
