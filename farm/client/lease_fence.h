// LeaseFence: a leased member's own bound on how long it may act on the
// configuration it follows (FaRM SOSP'15 section 5.3: after NEW-CONFIG a
// machine stops reading machines outside the configuration; the CM commits a
// configuration only once the leases of earlier ones ran out).
//
// The CM stamps a renewal when it receives it, so a renewal sent at `sent`
// and acknowledged keeps the member in every configuration the CM commits
// until `sent + lease` on the CM's clock; the CM resumes a region whose
// primary changed only once each client acknowledged the new configuration
// or that lease ran out (cm_service.h). The fence opens until
// `sent + lease - lease/8` (the eighth covers clocks running at different
// rates, as machines' own fencing in machine_service.h), so a member paused
// or cut off past its lease cannot read a removed primary's copy after the
// CM let a write commit at the new one. Renewed() must follow the install of
// the configuration the renewal's reply carried, so whatever validity a
// renewal answered with a newer configuration grants, the member reads
// through that configuration.
//
// FarmClient fences its transactions with it, and a farmd machine its lease
// thread and its ship workers' transactions (machine_service.h).
//
// The hot path is Open(Now()): one monotonic clock read and one atomic load.
//
// Example:
//   LeaseFence fence;
//   const int64_t sent = LeaseFence::Now();
//   ... renewal acknowledged, its configuration installed ...
//   fence.Renewed(sent, absl::Milliseconds(config.lease_ms()));
//   if (!fence.Open(LeaseFence::Now())) return absl::UnavailableError(...);
#ifndef DCTK_FARM_CLIENT_LEASE_FENCE_H_
#define DCTK_FARM_CLIENT_LEASE_FENCE_H_

#include <time.h>

#include <atomic>
#include <cstdint>
#include <limits>

#include "absl/time/time.h"

namespace dctk::farm::client {

class LeaseFence {
 public:
  // Closed until the first Renewed().
  LeaseFence() = default;
  LeaseFence(const LeaseFence&) = delete;
  LeaseFence& operator=(const LeaseFence&) = delete;

  // Nanoseconds on the monotonic clock (never jumps with the wall clock).
  static int64_t Now() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
  }

  // A renewal sent at `sent` (Now()) for a `lease` was acknowledged.
  // Out-of-order calls keep the latest bound; none reopens a removed
  // member's fence.
  void Renewed(int64_t sent, absl::Duration lease) {
    const int64_t until = sent + absl::ToInt64Nanoseconds(lease - lease / 8);
    int64_t cur = valid_until_.load(std::memory_order_relaxed);
    while (cur != kRemoved && cur < until &&
           !valid_until_.compare_exchange_weak(cur, until, std::memory_order_release,
                                               std::memory_order_relaxed)) {
    }
  }
  // The CM refused a renewal (it removed the member): closed for good.
  void Remove() { valid_until_.store(kRemoved, std::memory_order_release); }

  bool Open(int64_t now) const { return now < valid_until_.load(std::memory_order_acquire); }
  bool removed() const { return valid_until_.load(std::memory_order_acquire) == kRemoved; }
  // Now() value the fence closes at (kRemoved: removed; kNever: never renewed).
  int64_t valid_until() const { return valid_until_.load(std::memory_order_acquire); }

  static constexpr int64_t kRemoved = std::numeric_limits<int64_t>::min();
  static constexpr int64_t kNever = std::numeric_limits<int64_t>::min() + 1;

 private:
  std::atomic<int64_t> valid_until_{kNever};
};

}  // namespace dctk::farm::client

#endif  // DCTK_FARM_CLIENT_LEASE_FENCE_H_
