// Timeout: a restartable, periodic timer owned by a protocol object.
//
// Protocols (view-change timers, heartbeats, retransmission) hold Timeouts as
// members. The destructor cancels the pending timer, so a protocol object that
// is destroyed (a crashed replica in a test) never gets a callback afterwards.
//
// Semantics follow specpaxos' Timeout: once started, a Timeout is periodic. When
// it expires it re-arms itself for another `duration` *before* running the
// callback, so a callback that does nothing keeps firing every `duration`; a
// callback that wants a one-shot timer calls Stop(). Start() and Reset() both
// (re)arm the timer for `duration` from now, replacing any pending expiry.
//
// All calls must be made on the transport's event-loop thread. The callback may
// Stop() or Reset() its own Timeout but must not destroy it.
//
// Example:
//   class Replica : public TransportReceiver {
//     Timeout view_change_{transport_, absl::Milliseconds(500),
//                          [this] { StartViewChange(); }};
//     void OnHeartbeat() { view_change_.Reset(); }
//   };
#ifndef DCTK_COMMON_TRANSPORT_TIMEOUT_H_
#define DCTK_COMMON_TRANSPORT_TIMEOUT_H_

#include <functional>
#include <utility>

#include "absl/time/time.h"
#include "common/transport/transport.h"

namespace dctk::transport {

class Timeout {
 public:
  Timeout(Transport* transport, absl::Duration duration, std::function<void()> callback)
      : transport_(transport), duration_(duration), callback_(std::move(callback)) {}
  ~Timeout() { Stop(); }

  Timeout(const Timeout&) = delete;
  Timeout& operator=(const Timeout&) = delete;

  // Arms the timeout to fire `duration` from now (restarting it if active).
  void Start() {
    Stop();
    timer_ = transport_->Timer(duration_, [this] {
      timer_ = 0;
      Start();  // periodic: re-arm first, so the callback may Stop() it
      callback_();
    });
  }
  // Same as Start(); reads better when postponing a running timeout.
  void Reset() { Start(); }
  // Cancels the pending expiry, if any.
  void Stop() {
    if (timer_ != 0) {
      transport_->CancelTimer(timer_);
      timer_ = 0;
    }
  }
  bool Active() const { return timer_ != 0; }

  absl::Duration duration() const { return duration_; }
  // Takes effect at the next Start()/Reset() (or the next periodic re-arm).
  void set_duration(absl::Duration duration) { duration_ = duration; }

 private:
  Transport* transport_;
  absl::Duration duration_;
  std::function<void()> callback_;
  TimerId timer_ = 0;  // 0: not armed
};

}  // namespace dctk::transport

#endif  // DCTK_COMMON_TRANSPORT_TIMEOUT_H_
