// Owning wrapper for a file descriptor: closes it in the destructor unless
// ownership was handed on with release() (usually to JavaScript).
#ifndef NSERVE_UNIQUE_FD_H_
#define NSERVE_UNIQUE_FD_H_

#include <unistd.h>

namespace nserve {

class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {}
  ~unique_fd() { reset(); }

  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  unique_fd(unique_fd&& other) noexcept : fd_(other.release()) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }

  // Hands ownership to the caller; this object no longer closes it.
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

  // Not retried on EINTR: on Linux the descriptor is gone even then, and a
  // retry could close a descriptor another thread has just opened.
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace nserve

#endif  // NSERVE_UNIQUE_FD_H_
