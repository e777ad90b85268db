// nserve_signals.so: preloaded (LD_PRELOAD) into the image a hot restart execs,
// never loaded by the addon.
//
// Why: Node's start-up resets every signal disposition to its default (fatal
// for SIGUSR2, SIGHUP, and stop for SIGTTIN/SIGTTOU) before any JS runs, so a
// restart signal that arrives while the new image boots, tens of milliseconds
// after the exec, killed the server. Node keeps a handler that is neither
// default nor ignored, as it does for a profiler an LD_PRELOADed library
// installs (ResetSignalHandlers in node.cc). This object's constructor, which
// runs before Node's main(), installs such a handler for the restart signals:
// it only counts what arrived. nserve's JS replaces it once it runs, and takes
// the counts through the addon (nserve_early_signal_take, found with dlsym) to
// log them.
//
// The old image execs with these signals ignored and blocked: one sent before
// this constructor ran stays pending (blocked signals are never discarded), and
// Node's start-up unblocks it once the handler below is in place.
//
// SIGTERM and SIGINT: Node installs its own handlers for them unconditionally
// (SignalExit: reset the terminal, die), so a recorder cannot stay. Instead
// the old image execs with them blocked, and this object keeps them blocked
// until nserve's JS has its own handlers in place
// (nserve_early_signal_release, through the addon): it interposes
// pthread_sigmask and sigprocmask, through which Node's start-up empties the
// mask, and leaves those two signals in it. A stop sent during the exec then
// waits, pending, for nserve to drain, instead of killing the server.
//
// Only in this process: after a fork (libuv's spawn resets the child's mask
// before its exec) the calls pass through unchanged, so the app's children
// never inherit a blocked SIGTERM.
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace {

int counts[NSIG];

// The stop signals held blocked, and the process that holds them (0: none).
const int kStopSignals[] = {SIGTERM, SIGINT};
sigset_t held;
pid_t holder = 0;

// The mask change itself, as glibc makes it (the raw system call, without
// blocking the two signals glibc keeps for its threads, 32 and 33: bits 31
// and 32 of the kernel's mask).
int SetMask(int how, const sigset_t* set, sigset_t* old) {
  sigset_t copy;
  if (set != nullptr && how != SIG_UNBLOCK) {
    copy = *set;
    reinterpret_cast<unsigned long*>(&copy)[0] &= ~(3UL << 31);
    set = &copy;
  }
  return static_cast<int>(syscall(SYS_rt_sigprocmask, how, set, old, NSIG / 8));
}

// `set` with the held signals kept blocked, while this process holds them.
const sigset_t* Holding(int how, const sigset_t* set, sigset_t* copy) {
  if (set == nullptr || how == SIG_BLOCK) return set;
  if (__atomic_load_n(&holder, __ATOMIC_ACQUIRE) != getpid()) return set;
  *copy = *set;
  for (int sig : kStopSignals) {
    if (sigismember(&held, sig) != 1) continue;
    if (how == SIG_SETMASK) sigaddset(copy, sig);
    if (how == SIG_UNBLOCK) sigdelset(copy, sig);
  }
  return copy;
}

const int kRestartSignals[] = {SIGUSR1, SIGUSR2, SIGHUP, SIGTTIN, SIGTTOU};

void Record(int sig) {
  if (sig > 0 && sig < NSIG)
    __atomic_fetch_add(&counts[sig], 1, __ATOMIC_RELAXED);
}

__attribute__((constructor)) void InstallRecorders() {
  // Held: the stop signals the old image execed with blocked.
  sigset_t now;
  sigemptyset(&held);
  if (syscall(SYS_rt_sigprocmask, SIG_BLOCK, nullptr, &now, NSIG / 8) == 0) {
    for (int sig : kStopSignals) {
      if (sigismember(&now, sig) == 1) sigaddset(&held, sig);
    }
    if (sigismember(&held, SIGTERM) == 1 || sigismember(&held, SIGINT) == 1)
      __atomic_store_n(&holder, getpid(), __ATOMIC_RELEASE);
  }
  for (int sig : kRestartSignals) {
    struct sigaction old = {};
    if (sigaction(sig, nullptr, &old) != 0) continue;
    // Only where nobody chose a handler: the default, or ignored (as nserve's
    // exec leaves them).
    if ((old.sa_flags & SA_SIGINFO) != 0) continue;
    if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN) continue;
    struct sigaction act = {};
    act.sa_handler = Record;
    sigemptyset(&act.sa_mask);
    act.sa_flags = SA_RESTART;
    sigaction(sig, &act, nullptr);
  }
}

}  // namespace

// How many times `sig` arrived since the last call (0 for a signal this object
// does not record).
extern "C" __attribute__((visibility("default"))) int nserve_early_signal_take(
    int sig) {
  if (sig <= 0 || sig >= NSIG) return 0;
  return __atomic_exchange_n(&counts[sig], 0, __ATOMIC_RELAXED);
}

// nserve's handlers for SIGTERM and SIGINT are in place: stop holding them
// (the caller then unblocks them, and one pending is delivered to nserve).
extern "C" __attribute__((visibility("default"))) void
nserve_early_signal_release() {
  __atomic_store_n(&holder, 0, __ATOMIC_RELEASE);
}

// Node's start-up (and libuv) change the mask through these: see the top.
extern "C" __attribute__((visibility("default"))) int pthread_sigmask(
    int how, const sigset_t* set, sigset_t* old) {
  sigset_t copy;
  if (SetMask(how, Holding(how, set, &copy), old) != 0) return errno;
  return 0;
}

extern "C" __attribute__((visibility("default"))) int sigprocmask(
    int how, const sigset_t* set, sigset_t* old) {
  sigset_t copy;
  return SetMask(how, Holding(how, set, &copy), old) == 0 ? 0 : -1;
}
