// Doorbell: lets a thread that polls its own registered memory (a message
// ring's receiver) sleep while nothing arrives instead of spinning. A fabric
// whose remote writes are executed by a thread of this process (NetFabric's
// progress thread) rings the doorbell attached to a region after each pass
// that wrote into it; the poller reads epoch() BEFORE polling and, if the
// poll found nothing, calls Wait(epoch, timeout), which returns at once if a
// write landed in between (no lost wake-up) and otherwise sleeps on a futex.
// Wake-ups may be spurious (a write that was not a message): poll again.
//
// Example (receiver thread; `bell` attached to the ring's region):
//   while (running) {
//     const uint32_t seen = bell->epoch();
//     if (PollRing() == 0) bell->Wait(seen, absl::Milliseconds(5));
//   }
#ifndef DCTK_FARM_FABRIC_DOORBELL_H_
#define DCTK_FARM_FABRIC_DOORBELL_H_

#include <atomic>
#include <concepts>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace dctk::farm::fabric {

class Doorbell {
 public:
  Doorbell() = default;
  Doorbell(const Doorbell&) = delete;
  Doorbell& operator=(const Doorbell&) = delete;

  // Changes (wrapping) every time the bell rings.
  uint32_t epoch() const { return epoch_.load(std::memory_order_seq_cst); }
  // Sleeps until epoch() != seen or `timeout` passed (or a spurious wake-up).
  void Wait(uint32_t seen, absl::Duration timeout);
  // Advances the epoch and wakes every waiter (no system call if none waits).
  void Ring();

  uint64_t rings() const { return rings_.load(std::memory_order_relaxed); }
  uint64_t sleeps() const { return sleeps_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint32_t> epoch_{0};
  std::atomic<uint32_t> waiters_{0};
  std::atomic<uint64_t> rings_{0};
  std::atomic<uint64_t> sleeps_{0};
};

// A fabric that can ring a doorbell when a remote write lands in a region
// (NetFabric). NewDoorbell fails where the fabric's waiters are set to spin.
template <typename F>
concept DoorbellFabric = requires(F& f, const void* addr, Doorbell* bell) {
  { f.NewDoorbell() } -> std::same_as<absl::StatusOr<Doorbell*>>;
  { f.AttachDoorbell(addr, bell) } -> std::same_as<absl::Status>;
};

}  // namespace dctk::farm::fabric

#endif  // DCTK_FARM_FABRIC_DOORBELL_H_
