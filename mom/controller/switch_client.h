// SwitchClient: the controller's side of a MOM switch's gRPC control API
// (switch_service.proto): install a SwitchConfig, read counters.
//
// PushConfigs installs a whole fabric's configuration: every switch gets its
// config from SwitchConfigs(), and switches without rules for the groups get an
// empty one (so a previous design's rules do not linger).
//
// Example:
//   absl::StatusOr<std::unique_ptr<SwitchClient>> c =
//       SwitchClient::Connect("127.0.0.1:50051", absl::Seconds(5));
//   absl::StatusOr<uint64_t> version = (*c)->Configure(config);
//   absl::StatusOr<SwitchStats> stats = (*c)->Stats();
#ifndef DCTK_MOM_CONTROLLER_SWITCH_CLIENT_H_
#define DCTK_MOM_CONTROLLER_SWITCH_CLIENT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "mom/controller/switch_service.grpc.pb.h"

namespace dctk::mom {

class SwitchClient {
 public:
  // Waits up to `timeout` for the channel to connect.
  static absl::StatusOr<std::unique_ptr<SwitchClient>> Connect(const std::string& target,
                                                               absl::Duration timeout);

  // The switch's config version after installing `config`.
  absl::StatusOr<uint64_t> Configure(const SwitchConfig& config);
  // Counters and port states; the switch then sends a probe out of each of
  // `request.probe_ports()`.
  absl::StatusOr<SwitchStats> Stats(const StatsRequest& request = StatsRequest());

  const std::string& target() const { return target_; }

 private:
  SwitchClient(std::string target, std::unique_ptr<MomSwitch::Stub> stub)
      : target_(std::move(target)), stub_(std::move(stub)) {}

  std::string target_;
  std::unique_ptr<MomSwitch::Stub> stub_;
};

// Installs `configs` (by switch_name) on `switches` (switch name -> client);
// switches without a config get an empty SwitchConfig. Fails on the first
// error, naming the switch, or if a config names a switch not in `switches`.
absl::Status PushConfigs(const std::map<std::string, SwitchClient*>& switches,
                         const std::vector<SwitchConfig>& configs);

}  // namespace dctk::mom

#endif  // DCTK_MOM_CONTROLLER_SWITCH_CLIENT_H_
