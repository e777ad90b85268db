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

inline int64_t IntArg(const Napi::CallbackInfo& info, size_t i, int64_t min,
                      int64_t max) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) ThrowType(info.Env(), "argument " + std::to_string(i) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::trunc(d) != d || d < static_cast<double>(min) ||
      d > static_cast<double>(max)) {
    ThrowType(info.Env(), "argument " + std::to_string(i) + " is out of range");
  }
  return static_cast<int64_t>(d);
}

inline int FdArg(const Napi::CallbackInfo& info, size_t i) {
  return static_cast<int>(IntArg(info, i, 0, INT32_MAX));
}

inline bool BoolArg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (!v.IsBoolean()) ThrowType(info.Env(), "argument " + std::to_string(i) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

// Strings that reach the kernel must not contain NUL bytes.
inline std::string StringArg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (!v.IsString()) ThrowType(info.Env(), "argument " + std::to_string(i) + " must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) {
    ThrowType(info.Env(), "argument " + std::to_string(i) + " must not contain NUL bytes");
  }
  return s;
}

inline std::vector<std::string> StringArrayArg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (!v.IsArray()) ThrowType(info.Env(), "argument " + std::to_string(i) + " must be an array");
  Napi::Array array = v.As<Napi::Array>();
  std::vector<std::string> out;
  out.reserve(array.Length());
  for (uint32_t k = 0; k < array.Length(); k++) {
    Napi::Value item = array.Get(k);
    if (!item.IsString()) ThrowType(info.Env(), "argument " + std::to_string(i) + " must hold strings");
    out.push_back(item.As<Napi::String>().Utf8Value());
    if (out.back().find('\0') != std::string::npos) {
      ThrowType(info.Env(), "argument " + std::to_string(i) + " must not contain NUL bytes");
    }
  }
  return out;
}

inline std::vector<int> IntArrayArg(const Napi::CallbackInfo& info, size_t i, int min, int max) {
  Napi::Value v = info[i];
  if (!v.IsArray()) ThrowType(info.Env(), "argument " + std::to_string(i) + " must be an array");
  Napi::Array array = v.As<Napi::Array>();
  std::vector<int> out;
  out.reserve(array.Length());
  for (uint32_t k = 0; k < array.Length(); k++) {
    Napi::Value item = array.Get(k);
    double d = item.IsNumber() ? item.As<Napi::Number>().DoubleValue() : NAN;
    if (!std::isfinite(d) || std::trunc(d) != d || d < min || d > max) {
      ThrowType(info.Env(), "argument " + std::to_string(i) + " must hold integers in range");
    }
    out.push_back(static_cast<int>(d));
  }
  return out;
}

}  // namespace nserve

#endif  // NSERVE_ARGS_H_
