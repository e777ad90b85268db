// Argument access for the exported functions. src/native.ts validates every
// argument with exact messages first; these checks only keep a bad direct call
// from crashing the process (they throw a plain TypeError).
#ifndef NSERVE_ARGS_H_
#define NSERVE_ARGS_H_

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace nserve {

[[noreturn]] inline void ThrowType(Napi::Env env, const std::string& what) {
  throw Napi::TypeError::New(env, what);
}

[[noreturn]] inline void BadArg(const Napi::CallbackInfo& info, size_t i,
                                const char* what) {
  ThrowType(info.Env(), "argument " + std::to_string(i) + " " + what);
}

inline bool IsIntIn(Napi::Value v, double min, double max) {
  if (!v.IsNumber()) return false;
  double d = v.As<Napi::Number>().DoubleValue();
  return std::isfinite(d) && std::trunc(d) == d && d >= min && d <= max;
}

inline int64_t IntArg(const Napi::CallbackInfo& info, size_t i, int64_t min,
                      int64_t max) {
  if (!IsIntIn(info[i], min, max)) BadArg(info, i, "must be an integer");
  return static_cast<int64_t>(info[i].As<Napi::Number>().DoubleValue());
}

inline int FdArg(const Napi::CallbackInfo& info, size_t i) {
  return static_cast<int>(IntArg(info, i, 0, INT32_MAX));
}

inline bool BoolArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsBoolean()) BadArg(info, i, "must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

// Strings that reach the kernel must not contain NUL bytes.
inline std::string ToCString(const Napi::CallbackInfo& info, size_t i,
                             Napi::Value v) {
  if (!v.IsString()) BadArg(info, i, "must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) {
    BadArg(info, i, "must not contain NUL bytes");
  }
  return s;
}

inline std::string StringArg(const Napi::CallbackInfo& info, size_t i) {
  return ToCString(info, i, info[i]);
}

inline Napi::Array ArrayArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsArray()) BadArg(info, i, "must be an array");
  return info[i].As<Napi::Array>();
}

inline std::vector<std::string> StringArrayArg(const Napi::CallbackInfo& info,
                                               size_t i) {
  Napi::Array array = ArrayArg(info, i);
  std::vector<std::string> out;
  out.reserve(array.Length());
  for (uint32_t k = 0; k < array.Length(); k++) {
    out.push_back(ToCString(info, i, array.Get(k)));
  }
  return out;
}

inline std::vector<int> IntArrayArg(const Napi::CallbackInfo& info, size_t i,
                                    int min, int max) {
  Napi::Array array = ArrayArg(info, i);
  std::vector<int> out;
  out.reserve(array.Length());
  for (uint32_t k = 0; k < array.Length(); k++) {
    Napi::Value item = array.Get(k);
    if (!IsIntIn(item, min, max)) BadArg(info, i, "must hold integers");
    out.push_back(item.As<Napi::Number>().Int32Value());
  }
  return out;
}

}  // namespace nserve

#endif  // NSERVE_ARGS_H_
