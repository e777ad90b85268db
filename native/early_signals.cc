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
// Node's start-up unblocks it once the handler below is in place. SIGTERM and
// SIGINT are not covered: Node installs its own handlers for them
// unconditionally (docs/restarts.md measures that window).
#include <signal.h>

namespace {

int counts[NSIG];

const int kRestartSignals[] = {SIGUSR1, SIGUSR2, SIGHUP, SIGTTIN, SIGTTOU};

void Record(int sig) {
  if (sig > 0 && sig < NSIG)
    __atomic_fetch_add(&counts[sig], 1, __ATOMIC_RELAXED);
}

__attribute__((constructor)) void InstallRecorders() {
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
