// nserve's native addon: one small function per system call family. The typed
// face, argument validation and documentation are in src/native.ts, the only
// module that loads this file.
#include "addon.h"

static Napi::Object InitNserve(Napi::Env env, Napi::Object exports) {
  nserve::InitSocket(env, exports);
  nserve::InitFdPass(env, exports);
  nserve::InitExec(env, exports);
  nserve::InitFds(env, exports);
  nserve::InitNotify(env, exports);
  nserve::InitReuseport(env, exports);
  nserve::InitLock(env, exports);
  return exports;
}

NODE_API_MODULE(nserve, InitNserve)
