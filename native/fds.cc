// Descriptor flags (close-on-exec, non-blocking), dup, close, and the
// /proc/PID/fd listing used for leak reports.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "sockaddr.h"
#include "unique_fd.h"

namespace nserve {
namespace {

int Fcntl(Napi::Env env, int fd, int cmd, int arg = 0) {
  int rc;
  do {
    rc = fcntl(fd, cmd, arg);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) ThrowErrno(env, "fcntl");
  return rc;
}

void SetFlag(Napi::Env env, int fd, int get, int set, int flag, bool on) {
  int flags = Fcntl(env, fd, get);
  int wanted = on ? (flags | flag) : (flags & ~flag);
  if (wanted != flags) Fcntl(env, fd, set, wanted);
}

// setCloexec(fd: number, on: boolean): void
Napi::Value SetCloexec(const Napi::CallbackInfo& info) {
  SetFlag(info.Env(), FdArg(info, 0), F_GETFD, F_SETFD, FD_CLOEXEC,
          BoolArg(info, 1));
  return info.Env().Undefined();
}

// getCloexec(fd: number): boolean
Napi::Value GetCloexec(const Napi::CallbackInfo& info) {
  int flags = Fcntl(info.Env(), FdArg(info, 0), F_GETFD);
  return Napi::Boolean::New(info.Env(), (flags & FD_CLOEXEC) != 0);
}

// setNonblock(fd: number, on: boolean): void
Napi::Value SetNonblock(const Napi::CallbackInfo& info) {
  SetFlag(info.Env(), FdArg(info, 0), F_GETFL, F_SETFL, O_NONBLOCK,
          BoolArg(info, 1));
  return info.Env().Undefined();
}

// getNonblock(fd: number): boolean
Napi::Value GetNonblock(const Napi::CallbackInfo& info) {
  int flags = Fcntl(info.Env(), FdArg(info, 0), F_GETFL);
  return Napi::Boolean::New(info.Env(), (flags & O_NONBLOCK) != 0);
}

// dup(fd: number): number. The copy is close-on-exec and never lands on
// 0-2, which a closed stdio slot would otherwise hand out.
Napi::Value Dup(const Napi::CallbackInfo& info) {
  return Napi::Number::New(
      info.Env(), Fcntl(info.Env(), FdArg(info, 0), F_DUPFD_CLOEXEC, 3));
}

// dup2(oldfd: number, newfd: number): void. dup3(O_CLOEXEC): newfd now refers
// to oldfd's open file, atomically (newfd is never closed-then-free, so no
// other thread can take its number meanwhile), and stays close-on-exec like
// the stdio Node set up. Used to point stdout/stderr at a log file.
Napi::Value Dup2(const Napi::CallbackInfo& info) {
  int oldfd = FdArg(info, 0);
  int newfd = FdArg(info, 1);
  int rc;
  do {
    rc = dup3(oldfd, newfd, O_CLOEXEC);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) ThrowErrno(info.Env(), "dup3");
  return info.Env().Undefined();
}

// close(fd: number): void. EINTR is not an error on Linux: the descriptor is
// closed, and retrying could close someone else's.
Napi::Value Close(const Napi::CallbackInfo& info) {
  if (close(FdArg(info, 0)) != 0 && errno != EINTR) {
    ThrowErrno(info.Env(), "close");
  }
  return info.Env().Undefined();
}

// Reads the "pos:" and "flags:" lines of /proc/PID/fdinfo/N. False when the
// descriptor has gone meanwhile.
bool ReadFdInfo(Napi::Env env, const std::string& path, long long* pos,
                bool* has_pos, unsigned* flags) {
  unique_fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    int err = errno;
    if (err == ENOENT) return false;
    throw ErrnoError(env, err, "open", ErrorContext::Path(path));
  }
  char buf[1024];  // pos and flags are the first lines
  ssize_t n;
  do {
    n = read(fd.get(), buf, sizeof(buf) - 1);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    int err = errno;
    if (err == ENOENT) return false;
    throw ErrnoError(env, err, "read", ErrorContext::Path(path));
  }
  buf[n] = '\0';
  if (const char* p = strstr(buf, "pos:")) {
    *pos = strtoll(p + 4, nullptr, 10);
    *has_pos = true;
  }
  if (const char* f = strstr(buf, "flags:")) {
    *flags = static_cast<unsigned>(strtoul(f + 6, nullptr, 8));
  }
  return true;
}

// listFdsRaw(pid: number (-1: this process)): RawFd[]
Napi::Value ListFdsRaw(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int pid = static_cast<int>(IntArg(info, 0, -1, INT32_MAX));
  bool self = pid < 0 || pid == getpid();
  std::string base =
      "/proc/" + (self ? std::to_string(getpid()) : std::to_string(pid));
  std::string dir_path = base + "/fd";

  unique_fd dir_fd(open(dir_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd) {
    int err = errno == ENOENT ? ESRCH : errno;  // no such process
    throw ErrnoError(env, err, "opendir", ErrorContext::Path(dir_path));
  }
  int listing_fd = dir_fd.get();
  DIR* dir = fdopendir(listing_fd);
  if (dir == nullptr) {
    int err = errno;
    throw ErrnoError(env, err, "fdopendir", ErrorContext::Path(dir_path));
  }
  dir_fd.release();  // closedir closes it
  std::unique_ptr<DIR, int (*)(DIR*)> dir_owner(dir, closedir);

  Napi::Array out = Napi::Array::New(env);
  uint32_t count = 0;
  while (dirent* entry = readdir(dir)) {
    char* end = nullptr;
    long fd = strtol(entry->d_name, &end, 10);
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9' || *end != '\0') {
      continue;  // "." and ".."
    }
    if (self && fd == listing_fd) continue;

    char target[4096];
    ssize_t len = readlinkat(listing_fd, entry->d_name, target, sizeof(target));
    if (len < 0) {
      if (errno == ENOENT) continue;  // closed while we were listing
      int err = errno;
      throw ErrnoError(env, err, "readlink",
                       ErrorContext::Path(dir_path + "/" + entry->d_name));
    }
    long long pos = 0;
    bool has_pos = false;
    unsigned flags = 0;
    if (!ReadFdInfo(env, base + "/fdinfo/" + entry->d_name, &pos, &has_pos,
                    &flags)) {
      continue;
    }

    Napi::Object item = Napi::Object::New(env);
    item.Set("fd", Napi::Number::New(env, fd));
    item.Set("target", std::string(target, len));
    item.Set("flags", flags);
    item.Set("cloexec", (flags & O_CLOEXEC) != 0);
    if (has_pos) item.Set("pos", Napi::Number::New(env, pos));
    if (self && strncmp(target, "socket:", 7) == 0) {
      sockaddr_storage ss = {};
      socklen_t ss_len = sizeof(ss);
      if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &ss_len) == 0) {
        Napi::Value address = SockaddrToJs(env, ss, ss_len);
        if (!address.IsUndefined()) item.Set("socket", address);
      }
    }
    out.Set(count++, item);
  }
  return out;
}

}  // namespace

void InitFds(Napi::Env env, Napi::Object exports) {
  exports.Set("setCloexec", Napi::Function::New(env, SetCloexec, "setCloexec"));
  exports.Set("getCloexec", Napi::Function::New(env, GetCloexec, "getCloexec"));
  exports.Set("setNonblock",
              Napi::Function::New(env, SetNonblock, "setNonblock"));
  exports.Set("getNonblock",
              Napi::Function::New(env, GetNonblock, "getNonblock"));
  exports.Set("dup", Napi::Function::New(env, Dup, "dup"));
  exports.Set("dup2", Napi::Function::New(env, Dup2, "dup2"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("listFdsRaw", Napi::Function::New(env, ListFdsRaw, "listFdsRaw"));
}

}  // namespace nserve
