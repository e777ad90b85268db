// Process-level calls: execve (replace the running image), waitpid, and the
// signal mask and early signals of the image a hot restart execs.
#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"

// Defined by nserve_signals.so (early_signals.cc) when it is preloaded. A weak
// reference, resolved by the dynamic loader when the addon loads, and null
// without it: dlsym would need glibc 2.34's symbol version, above the floor of
// the prebuilds (docs/install.md).
extern "C" int nserve_early_signal_take(int sig) __attribute__((weak));
extern "C" void nserve_early_signal_release() __attribute__((weak));

namespace nserve {
namespace {

// holdSignals: the stop signals recorded by this handler from just before a
// hot restart's exec, whichever thread takes them, instead of by libuv's
// (whose JS callback would never run: the exec comes first).
volatile sig_atomic_t held_arrived[NSIG];
bool held_[NSIG];
struct sigaction held_saved_[NSIG];
// The thread that holds them and execs (the JS main thread).
volatile pid_t held_tid = 0;

// On the main thread: recorded, raised again once it is blocked (Execve).
// On another thread (the main thread blocks it from just before the exec,
// so the kernel picks another): sent on to the main thread, where it stays
// pending through the exec. A flag set on another thread could be too late
// for the main thread to see before the exec.
void RecordHeld(int sig) {
  if (sig <= 0 || sig >= NSIG) return;
  int saved = errno;
  if (static_cast<pid_t>(syscall(SYS_gettid)) == held_tid)
    held_arrived[sig] = 1;
  else
    syscall(SYS_tgkill, getpid(), held_tid, sig);
  errno = saved;
}

// A held signal that arrived, raised again on the calling thread, where it is
// delivered to the handler now in place.
void RaiseArrived() {
  for (int sig = 1; sig < NSIG; sig++) {
    if (!held_[sig] || held_arrived[sig] == 0) continue;
    held_arrived[sig] = 0;
    raise(sig);
  }
}

std::vector<char*> NullTerminated(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) out.push_back(&s[0]);
  out.push_back(nullptr);
  return out;
}

// The signal state that execve must not leak into the new image, saved so
// that a failed execve can put it back.
class SignalState {
 public:
  // Blocks every signal, then sets every catchable one to SIG_DFL, or SIG_IGN
  // when listed in `ignore` (ignored signals survive exec). One listed in
  // `keep` keeps its handler: another thread that takes it before the exec
  // runs that handler rather than a fatal default (execve resets it anyway).
  //
  // sigprocmask, not pthread_sigmask: on Linux both set the calling thread's
  // mask, and glibc moved pthread_sigmask to a GLIBC_2.32 symbol, which would
  // stop the prebuilt addon loading on glibc 2.28 (docs/install.md).
  SignalState(const std::vector<int>& ignore, const std::vector<int>& keep) {
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &mask_);
    for (int sig = 1; sig < NSIG; sig++) {
      if (sig == SIGKILL || sig == SIGSTOP) continue;
      bool kept = false;
      for (int s : keep) kept = kept || s == sig;
      if (kept) continue;
      // Fails for the signals glibc keeps for itself (32, 33): skip them.
      if (sigaction(sig, nullptr, &saved_[sig]) != 0) continue;
      struct sigaction act = {};
      sigemptyset(&act.sa_mask);
      act.sa_handler = SIG_DFL;
      for (int s : ignore) {
        if (s == sig) act.sa_handler = SIG_IGN;
      }
      if (sigaction(sig, &act, nullptr) == 0) changed_[sig] = true;
    }
  }

  // The new image starts with only `block` blocked (the mask survives execve).
  void BlockOnly(const std::vector<int>& block) {
    sigset_t set;
    sigemptyset(&set);
    for (int s : block) sigaddset(&set, s);
    sigprocmask(SIG_SETMASK, &set, nullptr);
  }

  // Handlers first, with everything blocked, then the original mask.
  void Restore() {
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);
    for (int sig = 1; sig < NSIG; sig++) {
      if (changed_[sig]) sigaction(sig, &saved_[sig], nullptr);
    }
    sigprocmask(SIG_SETMASK, &mask_, nullptr);
  }

 private:
  sigset_t mask_;
  struct sigaction saved_[NSIG] = {};
  bool changed_[NSIG] = {};
};

// execve(path: string, argv: string[], env: string[], ignore: number[],
// block: number[]): never returns normally.
//
// Between BlockOnly() and execve a signal still pending or arriving is
// handled by its default action, as in the new image: this is the same trade
// node-pty makes, and the reason for `ignore`. A signal in `block` (and
// ignored) stays pending through the exec instead: only pass those when the
// new image installs a handler before it unblocks them (nserve_signals.so).
//
// Threads: the handlers are reset process-wide, but the mask is the calling
// thread's only. Another thread of this process (libuv's pool, V8's workers)
// may still take a signal between the reset and the exec, and then runs its
// default action: the reason the restart signals are set to ignored here
// rather than only blocked.
Napi::Value Execve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0);
  std::vector<std::string> argv = StringArrayArg(info, 1);
  std::vector<std::string> envp = StringArrayArg(info, 2);
  std::vector<int> ignore = IntArrayArg(info, 3, 1, NSIG - 1);
  std::vector<int> block = IntArrayArg(info, 4, 1, NSIG - 1);
  std::vector<char*> argv_ptrs = NullTerminated(argv);
  std::vector<char*> envp_ptrs = NullTerminated(envp);

  // Blocked and not ignored (SIGTERM, SIGINT): pending across the exec.
  std::vector<int> keep;
  for (int s : block) {
    bool ignored = false;
    for (int i : ignore) ignored = ignored || i == s;
    if (!ignored) keep.push_back(s);
  }
  SignalState signals(ignore, keep);
  signals.BlockOnly(block);
  // Only those now blocked (a held signal raised unblocked would be fatal).
  for (int sig : keep) {
    if (held_[sig] && held_arrived[sig] != 0) {
      held_arrived[sig] = 0;
      raise(sig);
    }
  }
  execve(path.c_str(), argv_ptrs.data(), envp_ptrs.data());
  int err = errno;
  signals.Restore();
  throw ErrnoError(env, err, "execve", ErrorContext::Path(path));
}

// waitpid(pid: number): { pid, code: number | null, signal: number | null }
// | null. WNOHANG: null while the child runs. Only ever a given PID: waiting
// for -1 would steal the exits of libuv's own children.
Napi::Value WaitPid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  pid_t pid = static_cast<pid_t>(IntArg(info, 0, 1, INT32_MAX));
  int status = 0;
  pid_t rc;
  do {
    rc = waitpid(pid, &status, WNOHANG);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) ThrowErrno(env, "waitpid");
  if (rc == 0) return env.Null();

  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", rc);
  out.Set("code", WIFEXITED(status)
                      ? Napi::Number::New(env, WEXITSTATUS(status))
                      : env.Null());
  out.Set("signal", WIFSIGNALED(status)
                        ? Napi::Number::New(env, WTERMSIG(status))
                        : env.Null());
  return out;
}

// unblockSignals(signals: number[]): number[]. Unblock them on the calling
// (main) thread, so that one held pending (SIGUSR1 under Node's
// --disable-sigusr1, which keeps it blocked for the life of the process) is
// delivered now; returns those of them that were pending, so the caller knows
// the delivery that follows is an old one.
Napi::Value UnblockSignals(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<int> sigs = IntArrayArg(info, 0, 1, NSIG - 1);
  sigset_t set;
  sigemptyset(&set);
  for (int s : sigs) sigaddset(&set, s);
  sigset_t pending;
  if (sigpending(&pending) != 0) ThrowErrno(env, "sigpending");
  // nserve_signals.so holds SIGTERM and SIGINT blocked until now (a hot
  // restart's image): let them go too.
  if (&nserve_early_signal_release != nullptr &&
      (sigismember(&set, SIGTERM) == 1 || sigismember(&set, SIGINT) == 1))
    nserve_early_signal_release();
  // sigprocmask, as above: pthread_sigmask is a GLIBC_2.32 symbol.
  if (sigprocmask(SIG_UNBLOCK, &set, nullptr) != 0)
    ThrowErrno(env, "sigprocmask");
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  for (int s : sigs) {
    if (sigismember(&pending, s) == 1) out.Set(n++, s);
  }
  return out;
}

// holdSignals(signals: number[]): undefined. From now until the exec (or
// releaseHeldSignals), these are recorded by RecordHeld, on any thread.
Napi::Value HoldSignals(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<int> sigs = IntArrayArg(info, 0, 1, NSIG - 1);
  held_tid = static_cast<pid_t>(syscall(SYS_gettid));
  for (int sig : sigs) {
    if (held_[sig]) continue;
    struct sigaction act = {};
    act.sa_handler = RecordHeld;
    sigfillset(&act.sa_mask);
    act.sa_flags = SA_RESTART;
    if (sigaction(sig, &act, &held_saved_[sig]) != 0)
      ThrowErrno(env, "sigaction");
    held_arrived[sig] = 0;
    held_[sig] = true;
  }
  return env.Undefined();
}

// releaseHeldSignals(): undefined. The exec failed: the previous handlers
// back, and what arrived meanwhile delivered to them.
Napi::Value ReleaseHeldSignals(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  for (int sig = 1; sig < NSIG; sig++) {
    if (!held_[sig]) continue;
    sigaction(sig, &held_saved_[sig], nullptr);
  }
  RaiseArrived();
  for (int sig = 1; sig < NSIG; sig++) held_[sig] = false;
  return env.Undefined();
}

// takeEarlySignals(signals: number[]): number[] | null. How many times each
// signal reached nserve_signals.so's recorder since the last call; null when
// that object is not loaded in this process.
Napi::Value TakeEarlySignals(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<int> sigs = IntArrayArg(info, 0, 1, NSIG - 1);
  if (&nserve_early_signal_take == nullptr) return env.Null();
  Napi::Array out = Napi::Array::New(env, sigs.size());
  for (uint32_t i = 0; i < sigs.size(); i++) {
    out.Set(i, nserve_early_signal_take(sigs[i]));
  }
  return out;
}

}  // namespace

void InitExec(Napi::Env env, Napi::Object exports) {
  exports.Set("execve", Napi::Function::New(env, Execve, "execve"));
  exports.Set("waitpid", Napi::Function::New(env, WaitPid, "waitpid"));
  exports.Set("unblockSignals",
              Napi::Function::New(env, UnblockSignals, "unblockSignals"));
  exports.Set("takeEarlySignals",
              Napi::Function::New(env, TakeEarlySignals, "takeEarlySignals"));
  exports.Set("holdSignals",
              Napi::Function::New(env, HoldSignals, "holdSignals"));
  exports.Set("releaseHeldSignals", Napi::Function::New(env, ReleaseHeldSignals,
                                                        "releaseHeldSignals"));
}

}  // namespace nserve
