// CmChannel: a member's channel to the CM service for CM commands (Join,
// Renew, Get, Suspect), connected at its first call and again after a
// transport error broke it (a CM restarted on its address is reached at the
// next call). FarmClient and farmd machines use it; Suspect is
// what their coordinators' TxClientOptions::suspect calls, so a client's
// transactions and those a machine's ship workers coordinate report a silent
// machine the same way.
//
// PrioritizeLeaseThread: what a lease renewal thread calls first. FaRM keeps
// leases short (5-10 ms) with a high-priority lease manager thread; here a
// renewal thread (and the CM process, which takes renewals) asks for
// SCHED_FIFO, else a lower nice value, so CPU-bound threads (other
// processes' builds, a machine's own pollers) do not delay renewals past the
// lease and get live machines removed (farm/README.md, "Leases under CPU
// load").
//
// Example:
//   CmChannel cm("127.0.0.1:4000");
//   absl::StatusOr<cm::Result> r = cm.Call(cm::GetCommand());
//   tx_options.suspect = [&cm](fabric::MachineId m) { cm.Suspect(m, /*by=*/100); };
#ifndef DCTK_FARM_SERVER_CM_CHANNEL_H_
#define DCTK_FARM_SERVER_CM_CHANNEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "farm/cm/cm.pb.h"
#include "farm/fabric/fabric.h"
#include "farm/server/control.h"

namespace dctk::farm::server {

class CmChannel {
 public:
  explicit CmChannel(std::string cm_address) : address_(std::move(cm_address)) {}

  // One command (callers on several threads take turns). A connection a
  // transport error broke is dropped and the next call connects again; one
  // the CM answered with an error is kept.
  absl::StatusOr<cm::Result> Call(const cm::Command& c, absl::Duration timeout = absl::Seconds(5))
      ABSL_LOCKS_EXCLUDED(mu_);

  // A coordinator on member `by` found machine `m` silent (it resent a
  // commit message for TxClientOptions::suspect_after): the CM stops
  // renewing m's lease, so recovery decides the commit about a lease later.
  // A report that fails is logged (the commit then waits out its
  // outcome_timeout, as without a report).
  void Suspect(fabric::MachineId m, fabric::MachineId by) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const std::string address_;
  absl::Mutex mu_;
  std::unique_ptr<ControlChannel> ch_ ABSL_GUARDED_BY(mu_);
};

// Raises the calling thread's scheduling priority for lease work: SCHED_FIFO
// (priority kLeaseFifoPriority), or where that is refused (no CAP_SYS_NICE,
// RLIMIT_RTPRIO 0, a user namespace) nice kLeaseNice. Logs what it got, naming
// `who`, and says plainly when both are refused (short leases may then expire
// under CPU load); a refusal is logged once per process (its credentials
// decide, so its other lease threads get the same). Threads the caller starts
// afterwards inherit it. Returns the policy it got: "fifo", "nice" or "normal".
inline constexpr int kLeaseFifoPriority = 10;
inline constexpr int kLeaseNice = -10;
std::string PrioritizeLeaseThread(absl::string_view who);

}  // namespace dctk::farm::server

#endif  // DCTK_FARM_SERVER_CM_CHANNEL_H_
