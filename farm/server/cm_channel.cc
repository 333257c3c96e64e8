#include "farm/server/cm_channel.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "farm/cm/config_state.h"
#include "farm/server/control.pb.h"
#include "glog/logging.h"

namespace dctk::farm::server {
namespace {

// One CM command on `ch`: the CM's Result, or its error (a Result whose
// code is not OK) as a status.
absl::StatusOr<cm::Result> CallCm(ControlChannel& ch, const cm::Command& c,
                                  absl::Duration timeout) {
  absl::StatusOr<std::string> bytes = ch.Call(CM_COMMAND, c.SerializeAsString(), timeout);
  if (!bytes.ok()) return bytes.status();
  cm::Result r;
  if (!r.ParseFromString(*bytes)) return absl::DataLossError("CM: malformed result");
  if (r.code() != 0) return absl::Status(static_cast<absl::StatusCode>(r.code()), r.message());
  return r;
}

}  // namespace

absl::StatusOr<cm::Result> CmChannel::Call(const cm::Command& c, absl::Duration timeout) {
  absl::MutexLock l(&mu_);
  if (ch_ == nullptr) {
    absl::StatusOr<std::unique_ptr<ControlChannel>> ch = ControlChannel::Connect(address_);
    if (!ch.ok()) return ch.status();
    ch_ = std::move(*ch);
  }
  absl::StatusOr<cm::Result> r = CallCm(*ch_, c, timeout);
  if (ch_->broken()) ch_.reset();
  return r;
}

void CmChannel::Suspect(fabric::MachineId m, fabric::MachineId by) {
  absl::Status s = Call(cm::SuspectCommand(m, by)).status();
  LOG_IF(WARNING, !s.ok()) << "machine " << by << ": reporting machine " << m
                           << " to the CM (Suspect): " << s;
}

std::string PrioritizeLeaseThread(absl::string_view who) {
  sched_param fifo{};
  fifo.sched_priority = kLeaseFifoPriority;
  const int fifo_error = pthread_setschedparam(pthread_self(), SCHED_FIFO, &fifo);
  if (fifo_error == 0) {
    LOG(INFO) << who << ": lease work at SCHED_FIFO priority " << kLeaseFifoPriority;
    return "fifo";
  }
  // Linux applies a thread id's nice value to that thread alone.
  const bool niced = setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kLeaseNice) == 0;
  const int nice_error = errno;
  // The process's credentials decide, so its other lease threads (a client
  // program's FarmClients, a test's machines) get the same: said once.
  static std::atomic<bool> said{false};
  if (said.exchange(true)) return niced ? "nice" : "normal";
  if (niced) {
    LOG(WARNING) << who << ": SCHED_FIFO refused (" << strerror(fifo_error)
                 << "; needs CAP_SYS_NICE or RLIMIT_RTPRIO); lease work at nice " << kLeaseNice
                 << " (said once per process)";
    return "nice";
  }
  LOG(WARNING) << who << ": SCHED_FIFO refused (" << strerror(fifo_error) << ") and nice "
               << kLeaseNice << " refused (" << strerror(nice_error)
               << "): leases are renewed at normal priority, so a short lease may expire under "
               << "CPU load (needs CAP_SYS_NICE or RLIMIT_RTPRIO, which a user namespace such as "
               << "Bazel's linux-sandbox does not give; said once per process)";
  return "normal";
}

}  // namespace dctk::farm::server
