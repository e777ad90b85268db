// Advisory locks: the lock a server holds for its life on a file beside its
// pidfile and state file, so that a second server naming the same files is
// refused (src/control/lock.ts). flock locks belong to the open file
// description: the lock lasts as long as a descriptor for it stays open, in
// this process image or, across a hot restart's execve, in the next one.
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <string>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "unique_fd.h"

namespace nserve {
namespace {

// lockFile(path: string): number. open(O_RDWR | O_CREAT | O_CLOEXEC, 0644)
// then flock(LOCK_EX | LOCK_NB); returns the descriptor that holds the lock
// (close-on-exec). The path may sit in a directory other users can write
// (/tmp): a symbolic link is never followed (O_NOFOLLOW: ELOOP), and anything
// but a regular file is refused (EINVAL, before any lock is taken). O_NONBLOCK
// and O_NOCTTY keep the open itself harmless on a FIFO or a terminal planted
// there. Held by another open file description: EAGAIN (== EWOULDBLOCK).
Napi::Value LockFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0);
  ErrorContext context = ErrorContext::Path(path);
  unique_fd fd;
  do {
    fd.reset(
        open(path.c_str(),
             O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY,
             0644));
  } while (!fd && errno == EINTR);
  if (!fd) ThrowErrno(env, "open", context);
  // statx, not fstat: glibc 2.33 made fstat a symbol of its own
  // (fstat64@GLIBC_2.33), above the prebuilds' glibc floor (2.28, where statx
  // came in).
  struct statx st;
  if (statx(fd.get(), "", AT_EMPTY_PATH, STATX_TYPE, &st) != 0)
    ThrowErrno(env, "statx", context);
  if (!S_ISREG(st.stx_mode)) throw ErrnoError(env, EINVAL, "open", context);
  int rc;
  do {
    rc = flock(fd.get(), LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) ThrowErrno(env, "flock", context);
  return Napi::Number::New(env, fd.release());
}

}  // namespace

void InitLock(Napi::Env env, Napi::Object exports) {
  exports.Set("lockFile", Napi::Function::New(env, LockFile, "lockFile"));
}

}  // namespace nserve
