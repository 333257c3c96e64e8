// RetryWithRefresh: runs a client's operation on the cluster again until it
// succeeds, refreshing the client's configuration after each failure that
// is not a conflict (Aborted is retried at once). For setup and checking
// steps (creating a bank, a hashtable, journals; auditing balances) that a
// loaded machine can fail with a LOCK or ALLOC timing out, or that a
// reconfiguration interrupts. Each try must be whole on its own: a failed
// try's committed objects are simply left behind.
//
// Example:
//   const absl::Time deadline = absl::Now() + absl::Seconds(30);
//   absl::StatusOr<workload::Bank> bank = client::RetryWithRefresh(
//       *farm, deadline, [&] { return workload::Bank::Create(farm->tx(), 16, 1000); });
#ifndef DCTK_FARM_CLIENT_RETRY_H_
#define DCTK_FARM_CLIENT_RETRY_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace dctk::farm::client {

namespace internal_retry {
inline const absl::Status& StatusOf(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& r) {
  return r.status();
}
}  // namespace internal_retry

// Until `op` succeeds, finds data loss (a broken invariant: final) or
// `deadline` passes; returns op's last result (an absl::Status or
// absl::StatusOr). `Client` has Refresh() (FarmClient).
template <typename Client, typename Op>
auto RetryWithRefresh(Client& c, absl::Time deadline, Op op) -> decltype(op()) {
  decltype(op()) r = op();
  for (absl::Status s = internal_retry::StatusOf(r);
       !s.ok() && !absl::IsDataLoss(s) && absl::Now() < deadline; s = internal_retry::StatusOf(r)) {
    if (!absl::IsAborted(s)) {
      absl::SleepFor(absl::Milliseconds(20));
      (void)c.Refresh();
    }
    r = op();
  }
  return r;
}

}  // namespace dctk::farm::client

#endif  // DCTK_FARM_CLIENT_RETRY_H_
