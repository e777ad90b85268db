// Each native/*.cc file adds its exports here; addon.cc calls them all.
#ifndef NSERVE_ADDON_H_
#define NSERVE_ADDON_H_

#include <napi.h>

namespace nserve {

void InitSocket(Napi::Env env, Napi::Object exports);     // socket.cc
void InitFdPass(Napi::Env env, Napi::Object exports);     // fdpass.cc
void InitExec(Napi::Env env, Napi::Object exports);       // exec.cc
void InitFds(Napi::Env env, Napi::Object exports);        // fds.cc
void InitNotify(Napi::Env env, Napi::Object exports);     // notify.cc
void InitReuseport(Napi::Env env, Napi::Object exports);  // reuseport.cc
void InitLock(Napi::Env env, Napi::Object exports);       // lock.cc

}  // namespace nserve

#endif  // NSERVE_ADDON_H_
