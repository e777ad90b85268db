// Passing descriptors between processes over an AF_UNIX SOCK_SEQPACKET pair
// (SCM_RIGHTS), and Watcher: a uv_poll_t that tells JavaScript when the
// channel is readable without blocking the event loop.
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#include <memory>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "unique_fd.h"

namespace nserve {
namespace {

constexpr size_t kMaxFds = 64;
constexpr size_t kMaxPayload = 64 * 1024;
constexpr size_t kControlSize = CMSG_SPACE(sizeof(int) * kMaxFds);

// socketpair(): [number, number]
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sv[2];
  // SEQPACKET keeps message boundaries, so one sendmsg is one recvmsg.
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
                 sv) != 0) {
    ThrowErrno(env, "socketpair");
  }
  unique_fd a(sv[0]), b(sv[1]);
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, a.get());
  out.Set(1u, b.get());
  a.release();
  b.release();
  return out;
}

// sendFds(sock: number, fds: number[], payload: Buffer): void
Napi::Value SendFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock = FdArg(info, 0);
  std::vector<int> fds = IntArrayArg(info, 1, 0, INT32_MAX);
  if (!info[2].IsBuffer()) ThrowType(env, "payload must be a Buffer");
  auto payload = info[2].As<Napi::Buffer<char>>();
  if (fds.size() > kMaxFds || payload.Length() == 0 ||
      payload.Length() > kMaxPayload) {
    throw Napi::RangeError::New(env,
                                "too many descriptors or bad payload size");
  }

  iovec iov = {payload.Data(), payload.Length()};
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[kControlSize];
  if (!fds.empty()) {
    size_t bytes = sizeof(int) * fds.size();
    memset(control, 0, sizeof(control));
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(bytes);
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(bytes);
    memcpy(CMSG_DATA(cmsg), fds.data(), bytes);
  }

  ssize_t n;
  do {
    n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) ThrowErrno(env, "sendmsg");
  // A datagram or seqpacket message goes whole or not at all; only a stream
  // socket could take part of it, and the rest would be lost silently.
  if (static_cast<size_t>(n) != payload.Length()) {
    throw ErrnoError(env, EMSGSIZE, "sendmsg");
  }
  return env.Undefined();
}

// recvFds(sock: number): { data: Buffer, fds: number[] } | null
Napi::Value RecvFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock = FdArg(info, 0);
  static thread_local char data[kMaxPayload];
  alignas(cmsghdr) char control[kControlSize];

  iovec iov = {data, sizeof(data)};
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return env.Null();
    ThrowErrno(env, "recvmsg");
  }

  // Owned until handed to JavaScript, so every early exit closes them.
  std::vector<unique_fd> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
       c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds.emplace_back(fd);
    }
  }
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    throw ErrnoError(env, EMSGSIZE, "recvmsg");
  }

  Napi::Object out = Napi::Object::New(env);
  out.Set("data", Napi::Buffer<char>::Copy(env, data, n));
  Napi::Array list = Napi::Array::New(env, fds.size());
  for (size_t i = 0; i < fds.size(); i++) {
    list.Set(static_cast<uint32_t>(i), fds[i].get());
  }
  out.Set("fds", list);
  for (unique_fd& fd : fds) fd.release();
  return out;
}

// The libuv side of a Watcher. It lives until its handle's close callback,
// which may come after the JavaScript object is gone.
//
// Code that runs from libuv (OnPoll, OnClose, OnTeardown) uses plain N-API
// calls and checks their status: nothing may throw across libuv, and while a
// worker thread is being terminated node-addon-api would turn a refused call
// into a fatal error.
struct Poll {
  uv_poll_t handle;
  napi_env env = nullptr;
  napi_ref callback = nullptr;
  napi_ref resource = nullptr;
  napi_async_context context = nullptr;
  napi_async_cleanup_hook_handle cleanup = nullptr;

  // Never inside the callback itself: dropping the async context during its
  // own MakeCallback would free it while in use. Hence OnClose, or teardown.
  void ReleaseJs() {
    napi_handle_scope scope;
    bool scoped = napi_open_handle_scope(env, &scope) == napi_ok;
    if (context != nullptr) napi_async_destroy(env, context);
    if (callback != nullptr) napi_delete_reference(env, callback);
    if (resource != nullptr) napi_delete_reference(env, resource);
    context = nullptr;
    callback = resource = nullptr;
    if (scoped) napi_close_handle_scope(env, scope);
  }

  ~Poll() { ReleaseJs(); }
};

void OnClose(uv_handle_t* handle) {
  auto* poll = static_cast<Poll*>(handle->data);
  if (poll->cleanup != nullptr) napi_remove_async_cleanup_hook(poll->cleanup);
  delete poll;
}

void BeginClose(Poll* poll) {
  uv_close(reinterpret_cast<uv_handle_t*>(&poll->handle), OnClose);
}

// A worker thread that ends with a watcher running must not leave an open
// handle on its loop (Node aborts in uv_loop_close). The async hook keeps the
// environment waiting until OnClose has run.
void OnTeardown(napi_async_cleanup_hook_handle, void* arg) {
  auto* poll = static_cast<Poll*>(arg);
  if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&poll->handle))) return;
  poll->ReleaseJs();
  BeginClose(poll);
}

// onEvent threw: hand the exception to napi_fatal_exception, which treats it
// like one thrown by a Node callback: process 'uncaughtException', or print
// and exit(1) with no handler. (Napi::Error::Fatal would abort instead.) While
// the environment is shutting down both calls refuse, and nothing happens.
void RouteException(napi_env env) {
  bool pending = false;
  napi_value error;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending &&
      napi_get_and_clear_last_exception(env, &error) == napi_ok) {
    napi_fatal_exception(env, error);
  }
}

void OnPoll(uv_poll_t* handle, int status, int events) {
  auto* poll = static_cast<Poll*>(handle->data);
  napi_env env = poll->env;
  if (poll->callback == nullptr) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;

  bool ok = status >= 0;
  napi_value argv[3], recv, fn, result;
  bool ready =
      napi_get_boolean(env, ok && (events & UV_READABLE), &argv[0]) ==
          napi_ok &&
      napi_get_boolean(env, ok && (events & UV_DISCONNECT), &argv[1]) ==
          napi_ok &&
      (ok ? napi_get_null(env, &argv[2]) == napi_ok
          : (argv[2] = MakeUvError(env, status, "uv_poll")) != nullptr) &&
      napi_get_reference_value(env, poll->resource, &recv) == napi_ok &&
      napi_get_reference_value(env, poll->callback, &fn) == napi_ok;
  if (ready && napi_make_callback(env, poll->context, recv, fn, 3, argv,
                                  &result) != napi_ok) {
    RouteException(env);
  }
  napi_close_handle_scope(env, scope);
}

// new Watcher(fd, onEvent): polls fd for UV_READABLE | UV_DISCONNECT and
// calls onEvent(readable, hangup, error) on each event, through
// napi_make_callback with its own async context (async_hooks and
// AsyncLocalStorage see it like a Node callback). uv_poll_init makes fd
// non-blocking.
class Watcher : public Napi::ObjectWrap<Watcher> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Watcher",
                       {InstanceMethod("stop", &Watcher::JsStop),
                        InstanceMethod("ref", &Watcher::JsRef),
                        InstanceMethod("unref", &Watcher::JsUnref)});
  }

  explicit Watcher(const Napi::CallbackInfo& info) : ObjectWrap(info) {
    Napi::Env env = info.Env();
    int fd = FdArg(info, 0);
    if (!info[1].IsFunction()) ThrowType(env, "onEvent must be a function");
    uv_loop_t* loop = nullptr;
    NAPI_THROW_IF_FAILED_VOID(env, napi_get_uv_event_loop(env, &loop));

    // Everything that can throw comes before uv_poll_init: once the handle is
    // initialized, only its close callback may free it.
    auto poll = std::make_unique<Poll>();
    poll->env = env;
    poll->handle.data = poll.get();
    Napi::Object resource = Napi::Object::New(env);
    resource.Set("fd", fd);
    NAPI_THROW_IF_FAILED_VOID(
        env, napi_create_reference(env, info[1], 1, &poll->callback));
    NAPI_THROW_IF_FAILED_VOID(
        env, napi_create_reference(env, resource, 1, &poll->resource));
    NAPI_THROW_IF_FAILED_VOID(
        env, napi_async_init(env, resource,
                             Napi::String::New(env, "nserve:watchReadable"),
                             &poll->context));

    int rc = uv_poll_init(loop, &poll->handle, fd);
    // EEXIST: libuv already watches this descriptor (e.g. a net.Socket).
    if (rc < 0) throw UvError(env, rc, "uv_poll_init");
    rc = uv_poll_start(&poll->handle, UV_READABLE | UV_DISCONNECT, OnPoll);
    if (rc < 0) {
      BeginClose(poll.release());  // the handle is initialized: uv_close it
      throw UvError(env, rc, "uv_poll_start");
    }
    napi_add_async_cleanup_hook(env, OnTeardown, poll.get(), &poll->cleanup);
    poll_ = poll.release();
  }

 private:
  // Idempotent. The caller must stop before closing the descriptor.
  Napi::Value JsStop(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr) BeginClose(poll_);
    poll_ = nullptr;
    return info.Env().Undefined();
  }

  // (Not named Ref/Unref: those are ObjectWrap's own reference counting.)
  Napi::Value JsRef(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr) {
      uv_ref(reinterpret_cast<uv_handle_t*>(&poll_->handle));
    }
    return info.Env().Undefined();
  }

  Napi::Value JsUnref(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr) {
      uv_unref(reinterpret_cast<uv_handle_t*>(&poll_->handle));
    }
    return info.Env().Undefined();
  }

  // Not owned: freed by OnClose after stop(), or at the environment's
  // teardown. If this object is collected without stop(), the poll runs on,
  // like any leaked handle, and keeps its callback alive.
  Poll* poll_ = nullptr;
};

}  // namespace

void InitFdPass(Napi::Env env, Napi::Object exports) {
  exports.Set("socketpair", Napi::Function::New(env, SocketPair, "socketpair"));
  exports.Set("sendFds", Napi::Function::New(env, SendFds, "sendFds"));
  exports.Set("recvFds", Napi::Function::New(env, RecvFds, "recvFds"));
  exports.Set("Watcher", Watcher::Define(env));
}

}  // namespace nserve
