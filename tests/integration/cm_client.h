// CmClient: the client library of the replicated configuration manager, for
// FaRM machines (farmd), the demo's driver and tools.
//
// Every call is one CM command (farm/cm/cm.proto) ordered by Speculative
// Paxos: it runs on a spaxos::ThreadedClient (own event-loop thread, so the
// embedding process needs no loop), blocks up to `call_timeout`, and hides a
// leader change (the client resends and follows the new view). Commands that
// depend on time carry now_ms from the injected clock; the CM itself reads no
// clock. A command the CM rejects comes back as its absl::Status code and
// message; DeadlineExceeded means the outcome is unknown (Join and Renew may
// simply be repeated: both are idempotent for the same machine and endpoint).
//
// Example:
//   absl::StatusOr<CmClientOptions> o = CmClientOptionsFromClusterFile("cluster.conf", "cm");
//   o->bind = transport::Address(my_ip, 0);
//   absl::StatusOr<std::unique_ptr<CmClient>> cm = CmClient::Create(*o);
//   absl::Status s = (*cm)->Initialize(/*replicas=*/2, 16 << 20, /*lease_ms=*/1000);
//   absl::StatusOr<cm::Configuration> c = (*cm)->Join(7, "10.0.0.7:7100", "10.0.0.7:7101");
//   c = (*cm)->Renew(7);               // every lease/4
//   c = (*cm)->GetConfiguration();     // region placement: c->regions()
#ifndef DCTK_TESTS_INTEGRATION_CM_CLIENT_H_
#define DCTK_TESTS_INTEGRATION_CM_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "common/config/cluster_config.h"
#include "common/transport/address.h"
#include "farm/cm/cm.pb.h"
#include "mom/group.h"
#include "speculative_paxos/threaded_client.h"

namespace dctk::integration {

struct CmClientOptions {
  // The CM replica group, members[0] first.
  std::vector<transport::Address> replicas;
  // Where the client's sockets bind; in a container, its own address.
  transport::Address bind = transport::Address::Loopback(0);
  // Spaxos client resend timeout (the cluster file's timeouts.request_ms).
  absl::Duration resend_timeout = absl::Milliseconds(10);
  // How long one call may take, view changes included.
  absl::Duration call_timeout = absl::Seconds(2);
  // Calls in flight at once (more wait in a queue).
  int concurrency = 1;
  // Milliseconds stamped on Join / Renew / Tick; default: Unix time.
  std::function<int64_t()> now_ms;
  // Send requests through this MOM group (the replicas join it: cm_replica
  // --mom_group) instead of one unicast copy per replica.
  absl::optional<mom::GroupConfig> mom;
};

// The MOM group named `multicast` in `cluster` for the CM replica group
// `group`: IP multicast to its address, the replicas as members, serialized
// (the network stamps a group sequence number). NotFound
// (naming `path`) if the file has no such multicast group.
absl::StatusOr<mom::GroupConfig> CmMomGroup(const config::ClusterConfig& cluster,
                                            const config::ClusterConfig::Group& group,
                                            absl::string_view path, absl::string_view multicast);

// Replicas of replica group `group` and the resend timeout from a
// common/config cluster file; with `multicast`, requests go through that MOM
// group (CmMomGroup).
absl::StatusOr<CmClientOptions> CmClientOptionsFromClusterFile(absl::string_view path,
                                                               absl::string_view group,
                                                               absl::string_view multicast = "");

class CmClient {
 public:
  static absl::StatusOr<std::unique_ptr<CmClient>> Create(CmClientOptions options);

  // Any command; an error result becomes its Status.
  absl::StatusOr<farm::cm::Result> Execute(const farm::cm::Command& command);
  // Any command; the CM's Result as it came, a rejection included (its code).
  // An error status only when no Result came back: the command may or may not
  // have run (farm/server's CmExecutor contract).
  absl::StatusOr<farm::cm::Result> Submit(const farm::cm::Command& command);

  // Initialises the CM, or checks that it already holds these parameters
  // (FailedPrecondition if it holds others). Any number of callers may race.
  absl::Status Initialize(uint32_t replicas, uint64_t region_size, int64_t lease_ms);
  // Registers `machine` (or renews it if already a member at `endpoint`).
  absl::StatusOr<farm::cm::Configuration> Join(uint32_t machine, const std::string& endpoint,
                                               const std::string& control);
  absl::StatusOr<farm::cm::Configuration> Renew(uint32_t machine);
  // Removes machines whose lease ran out before now; returns their ids.
  absl::StatusOr<std::vector<uint32_t>> Tick();
  // Places a new region (primary + backups); returns its id.
  absl::StatusOr<uint32_t> CreateRegion();
  absl::StatusOr<farm::cm::Configuration> SetReplicaKey(uint32_t region, uint32_t machine,
                                                        uint32_t key);
  absl::StatusOr<farm::cm::Configuration> RemoveMachine(uint32_t machine);
  // The current configuration (membership, leases, region placement); a read
  // ordered through the log, so it reflects every call that completed before.
  absl::StatusOr<farm::cm::Configuration> GetConfiguration();

  spaxos::ClientStats stats() { return client_->stats(); }

 private:
  CmClient(CmClientOptions options, std::unique_ptr<spaxos::ThreadedClient> client)
      : options_(std::move(options)), client_(std::move(client)) {}
  int64_t Now() const;

  const CmClientOptions options_;
  std::unique_ptr<spaxos::ThreadedClient> client_;
};

}  // namespace dctk::integration

#endif  // DCTK_TESTS_INTEGRATION_CM_CLIENT_H_
