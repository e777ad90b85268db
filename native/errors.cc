#include "errors.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "errnames.h"

namespace nserve {
namespace {

// "EADDRINUSE" for -98. libuv names only the errors it maps (not ECHILD, for
// one); errnames.h names the rest, so `code` is always the errno name.
std::string ErrorName(int uv_err) {
  char name[64];
  uv_err_name_r(uv_err, name, sizeof(name));
  const char* libc_name = ErrnoName(-uv_err);
  if (strncmp(name, "Unknown", 7) == 0 && libc_name != nullptr) {
    return libc_name;
  }
  return name;
}

bool SetString(napi_env env, napi_value object, const char* key,
               const std::string& value) {
  napi_value v;
  return napi_create_string_utf8(env, value.data(), value.size(), &v) ==
             napi_ok &&
         napi_set_named_property(env, object, key, v) == napi_ok;
}

bool SetInt(napi_env env, napi_value object, const char* key, int value) {
  napi_value v;
  return napi_create_int32(env, value, &v) == napi_ok &&
         napi_set_named_property(env, object, key, v) == napi_ok;
}

}  // namespace

napi_value MakeUvError(napi_env env, int uv_err, const char* syscall,
                       const ErrorContext& context) {
  std::string code = ErrorName(uv_err);
  std::string message = std::string(syscall) + " " + code;
  if (context.path) {
    message += " " + *context.path;
  } else if (context.address) {
    message += " " + *context.address;
    if (context.port && *context.port > 0) {
      message += ":" + std::to_string(*context.port);
    }
  }

  napi_value text, error;
  if (napi_create_string_utf8(env, message.data(), message.size(), &text) !=
          napi_ok ||
      napi_create_error(env, nullptr, text, &error) != napi_ok) {
    return nullptr;
  }
  bool ok = SetInt(env, error, "errno", uv_err) &&
            SetString(env, error, "code", code) &&
            SetString(env, error, "syscall", syscall) &&
            (!context.address ||
             SetString(env, error, "address", *context.address)) &&
            (!context.port || SetInt(env, error, "port", *context.port)) &&
            (!context.path || SetString(env, error, "path", *context.path));
  return ok ? error : nullptr;
}

Napi::Error UvError(Napi::Env env, int uv_err, const char* syscall,
                    const ErrorContext& context) {
  napi_value error = MakeUvError(env, uv_err, syscall, context);
  if (error == nullptr) throw Napi::Error::New(env);
  return Napi::Error(env, error);
}

void ThrowErrno(Napi::Env env, const char* syscall,
                const ErrorContext& context) {
  throw ErrnoError(env, errno, syscall, context);
}

}  // namespace nserve
