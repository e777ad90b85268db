// Sticky balancing for a SO_REUSEPORT group: a classic BPF program attached
// with SO_ATTACH_REUSEPORT_CBPF. The kernel runs it for each new connection
// (on the SYN) and its return value indexes the group's sockets in the order
// they joined the group; an index past the end makes the kernel fall back to
// its own 4-tuple hash. So the modulus is the group's size, and the order is
// stable only while no socket leaves the group: nserve's master holds every
// slot for the server's life (docs/balancing.md).
//
// The program is built here, not taken from JS: its shape is fixed (hash the
// source address, mod the group size) and nothing else can be attached.
#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51  // Linux 4.5
#endif
#ifndef SO_DETACH_REUSEPORT_BPF
#define SO_DETACH_REUSEPORT_BPF 68  // Linux 5.3
#endif

namespace nserve {
namespace {

// In the reuseport context the packet data starts past the TCP header, so the
// IP header is reached through SKF_NET_OFF. Absolute word loads are read in
// network byte order.
constexpr uint32_t kIpv4Source = static_cast<uint32_t>(SKF_NET_OFF + 12);
constexpr uint32_t kIpv6Source = static_cast<uint32_t>(SKF_NET_OFF + 8);

// src/native.ts keeps a copy of this hash (reuseportSlot) for the tests.
constexpr uint32_t kGolden = 0x9e3779b1;  // folds the IPv6 words together
constexpr uint32_t kMix1 = 0x85ebca6b;    // murmur3's fmix32 constants
constexpr uint32_t kMix2 = 0xc2b2ae35;

class Program {
 public:
  void Op(uint16_t code, uint32_t k) {
    code_.push_back(sock_filter{code, 0, 0, k});
  }
  void Load(uint32_t offset) { Op(BPF_LD | BPF_W | BPF_ABS, offset); }
  void ToX() { Op(BPF_MISC | BPF_TAX, 0); }
  void XorX() { Op(BPF_ALU | BPF_XOR | BPF_X, 0); }
  void Mul(uint32_t k) { Op(BPF_ALU | BPF_MUL | BPF_K, k); }
  // A ^= A >> shift
  void XorShift(uint32_t shift) {
    ToX();
    Op(BPF_ALU | BPF_RSH | BPF_K, shift);
    XorX();
  }
  std::vector<sock_filter>& code() { return code_; }

 private:
  std::vector<sock_filter> code_;
};

// A = source address hash (32-bit ALU: products wrap, as intended), then
// A % group_size, returned as the socket index.
std::vector<sock_filter> BuildProgram(bool v6, uint32_t group_size) {
  Program p;
  if (v6) {
    // h = ((((w0 * G) ^ w1) * G ^ w2) * G) ^ w3
    p.Load(kIpv6Source);
    for (uint32_t word = 1; word < 4; word++) {
      p.Mul(kGolden);
      p.ToX();
      p.Load(kIpv6Source + 4 * word);
      p.XorX();
    }
  } else {
    p.Load(kIpv4Source);
  }
  // fmix32: every input bit reaches every output bit, so neighbouring
  // addresses (10.0.0.1, 10.0.0.2, ...) spread over the slots.
  p.XorShift(16);
  p.Mul(kMix1);
  p.XorShift(13);
  p.Mul(kMix2);
  p.XorShift(16);
  p.Op(BPF_ALU | BPF_MOD | BPF_K, group_size);
  p.Op(BPF_RET | BPF_A, 0);
  return std::move(p.code());
}

// attachReuseportCbpf(fd: number, groupSize: number): void
// The program hashes the IPv4 or IPv6 source address by the socket's own
// family (SO_DOMAIN), so it cannot be attached with the wrong offsets.
Napi::Value AttachReuseportCbpf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  uint32_t group_size = static_cast<uint32_t>(IntArg(info, 1, 1, 65535));

  int domain = 0;
  socklen_t len = sizeof(domain);
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) {
    ThrowErrno(env, "getsockopt");
  }
  if (domain != AF_INET && domain != AF_INET6) {
    throw ErrnoError(env, EAFNOSUPPORT, "setsockopt");
  }
  std::vector<sock_filter> code = BuildProgram(domain == AF_INET6, group_size);
  sock_fprog prog{static_cast<unsigned short>(code.size()), code.data()};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog,
                 sizeof(prog)) != 0) {
    ThrowErrno(env, "setsockopt");
  }
  return env.Undefined();
}

// detachReuseportBpf(fd: number): boolean
// true when a program was detached, false when the group had none.
Napi::Value DetachReuseportBpf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  int unused = 0;  // the kernel reads an int before looking at the option
  if (setsockopt(fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &unused,
                 sizeof(unused)) != 0) {
    if (errno == ENOENT) return Napi::Boolean::New(env, false);
    ThrowErrno(env, "setsockopt");
  }
  return Napi::Boolean::New(env, true);
}

}  // namespace

void InitReuseport(Napi::Env env, Napi::Object exports) {
  exports.Set(
      "attachReuseportCbpf",
      Napi::Function::New(env, AttachReuseportCbpf, "attachReuseportCbpf"));
  exports.Set("detachReuseportBpf", Napi::Function::New(env, DetachReuseportBpf,
                                                        "detachReuseportBpf"));
}

}  // namespace nserve
