#include "errors.h"

#include <errno.h>
#include <uv.h>

namespace nserve {

Napi::Error UvError(Napi::Env env, int uv_err, const char* syscall,
                    const ErrorContext& context) {
  char name[64];
  uv_err_name_r(uv_err, name, sizeof(name));

  std::string message = std::string(syscall) + " " + name;
  if (context.path) {
    message += " " + *context.path;
  } else if (context.address) {
    message += " " + *context.address;
    if (context.port && *context.port > 0) {
      message += ":" + std::to_string(*context.port);
    }
  }

  Napi::Error error = Napi::Error::New(env, message);
  Napi::Object obj = error.Value();
  obj.Set("errno", Napi::Number::New(env, uv_err));
  obj.Set("code", Napi::String::New(env, name));
  obj.Set("syscall", Napi::String::New(env, syscall));
  if (context.address) obj.Set("address", *context.address);
  if (context.port) obj.Set("port", Napi::Number::New(env, *context.port));
  if (context.path) obj.Set("path", *context.path);
  return error;
}

void ThrowErrno(Napi::Env env, const char* syscall,
                const ErrorContext& context) {
  throw ErrnoError(env, errno, syscall, context);
}

}  // namespace nserve
