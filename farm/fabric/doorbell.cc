#include "farm/fabric/doorbell.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <climits>

namespace dctk::farm::fabric {

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t) &&
              std::atomic<uint32_t>::is_always_lock_free, "futex word");

void Doorbell::Wait(uint32_t seen, absl::Duration timeout) {
  if (timeout <= absl::ZeroDuration()) return;
  // Dekker-style with Ring(): we publish waiters_ then check the epoch (in the
  // kernel, atomically with going to sleep); Ring() publishes the epoch then
  // checks waiters_. Both seq_cst, so at least one side sees the other.
  waiters_.fetch_add(1, std::memory_order_seq_cst);
  if (epoch_.load(std::memory_order_seq_cst) == seen) {
    sleeps_.fetch_add(1, std::memory_order_relaxed);
    const timespec ts = absl::ToTimespec(timeout);
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&epoch_), FUTEX_WAIT_PRIVATE, seen, &ts,
            nullptr, 0);
  }
  waiters_.fetch_sub(1, std::memory_order_seq_cst);
}

void Doorbell::Ring() {
  rings_.fetch_add(1, std::memory_order_relaxed);
  epoch_.fetch_add(1, std::memory_order_seq_cst);
  if (waiters_.load(std::memory_order_seq_cst) != 0) {
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&epoch_), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr,
            nullptr, 0);
  }
}

}  // namespace dctk::farm::fabric
