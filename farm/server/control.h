// Control: a small blocking request/response RPC over TCP for FaRM's control
// plane (joining the CM, leases, region hosting, ring set-up, recovery). The
// data path never uses it: transactions go over message rings and one-sided
// operations. One thread per accepted connection; a ControlChannel is one
// connection used by one caller at a time.
//
// Frames: request [u32 length][u16 method][payload]; reply [u32 length]
// [u8 status code][payload or error message].
//
// Example:
//   ControlServer server([](uint16_t method, absl::string_view req) -> absl::StatusOr<std::string> {
//     return std::string(req);   // echo
//   });
//   absl::Status s = server.Start("127.0.0.1");       // port 0: server.address()
//   absl::StatusOr<std::unique_ptr<ControlChannel>> ch = ControlChannel::Connect(server.address());
//   absl::StatusOr<std::string> reply = (*ch)->Call(1, "hello", absl::Seconds(1));
#ifndef DCTK_FARM_SERVER_CONTROL_H_
#define DCTK_FARM_SERVER_CONTROL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace dctk::farm::server {

using ControlHandler = std::function<absl::StatusOr<std::string>(uint16_t method, absl::string_view request)>;

class ControlServer {
 public:
  explicit ControlServer(ControlHandler handler) : handler_(std::move(handler)) {}
  ~ControlServer();
  // Listens on host, port 0.
  absl::Status Start(const std::string& host);
  const std::string& address() const { return address_; }

 private:
  void AcceptLoop();
  void Serve(int fd);

  ControlHandler handler_;
  std::string address_;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread accept_thread_;
  absl::Mutex mu_;
  std::vector<std::thread> connections_ ABSL_GUARDED_BY(mu_);
  std::vector<int> fds_ ABSL_GUARDED_BY(mu_);
};

class ControlChannel {
 public:
  static absl::StatusOr<std::unique_ptr<ControlChannel>> Connect(const std::string& address);
  ~ControlChannel();
  // After a transport error (Unavailable) or timeout (DeadlineExceeded) the
  // channel is broken (every later call fails Unavailable, naming that
  // error): connect again. An error the server replied with (a whole frame,
  // any code) leaves the channel usable.
  absl::StatusOr<std::string> Call(uint16_t method, absl::string_view request, absl::Duration timeout);
  const std::string& address() const { return address_; }
  // Whether a transport error broke the channel (connect again).
  bool broken() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    return !broken_.ok();
  }

 private:
  ControlChannel(std::string address, int fd) : address_(std::move(address)), fd_(fd) {}
  absl::StatusOr<std::string> CallLocked(uint16_t method, absl::string_view request, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string address_;
  int fd_;
  absl::Mutex mu_;
  absl::Status broken_ ABSL_GUARDED_BY(mu_);  // what broke the stream
};

}  // namespace dctk::farm::server

#endif  // DCTK_FARM_SERVER_CONTROL_H_
