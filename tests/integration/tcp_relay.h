// TcpRelay: listens on a fixed address (SO_REUSEADDR, so a restarted process
// gets its port back at once) and splices every accepted connection to a
// target address, byte for byte, both ways; closing either side closes both.
//
// Why: farm/server's ControlServer listens on port 0 only, and the demo's
// Bastion policy and the machines' --cm flag need the CM driver at a fixed
// port that survives its restart. cm_driver runs its CmService on loopback
// and fronts it with a TcpRelay on the fixed port. (When ControlServer can
// bind a given port, the relay is no longer needed.)
//
// Example:
//   absl::StatusOr<std::unique_ptr<TcpRelay>> r = TcpRelay::Start("10.88.0.2:7101", "127.0.0.1:40123");
//   // (*r)->address() == "10.88.0.2:7101"; serves until destroyed
#ifndef DCTK_TESTS_INTEGRATION_TCP_RELAY_H_
#define DCTK_TESTS_INTEGRATION_TCP_RELAY_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace dctk::integration {

class TcpRelay {
 public:
  // `listen` is IP:PORT (PORT 0: any free port); `target` IP:PORT.
  static absl::StatusOr<std::unique_ptr<TcpRelay>> Start(const std::string& listen, const std::string& target);
  ~TcpRelay();
  TcpRelay(const TcpRelay&) = delete;
  TcpRelay& operator=(const TcpRelay&) = delete;

  const std::string& address() const { return address_; }

 private:
  TcpRelay(std::string target, int listen_fd, std::string address);
  void AcceptLoop();
  void Splice(int client, int server);

  const std::string target_;
  const int listen_fd_;
  const std::string address_;
  std::atomic<bool> stop_{false};
  std::thread accept_thread_;
  absl::Mutex mu_;
  std::vector<std::thread> connections_ ABSL_GUARDED_BY(mu_);
  std::vector<int> fds_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dctk::integration

#endif  // DCTK_TESTS_INTEGRATION_TCP_RELAY_H_
