// ForwardingTransport: the base of Transport decorators that look at (or hold
// back) what their receivers get without touching the receivers.
//
// Everything - sends, groups, timers, the loop - goes to the wrapped
// transport. Each receiver registered through the decorator is registered on
// the wrapped transport as a small shim, so every message delivered to it
// passes through `Deliver` first; the default passes it on at once. A
// subclass overrides `Deliver` to record, count or delay messages, and calls
// `Forward` (now, or later from a timer) to hand one to its receiver.
//
// Example (RecordingTransport, ReorderingTransport derive from it):
//   class Counting : public ForwardingTransport {
//    public:
//     using ForwardingTransport::ForwardingTransport;
//     int n = 0;
//    protected:
//     void Deliver(TransportReceiver* to, const Address& from, const Envelope& msg) override {
//       ++n;
//       Forward(to, from, msg);
//     }
//   };
#ifndef DCTK_COMMON_TRANSPORT_FORWARDING_TRANSPORT_H_
#define DCTK_COMMON_TRANSPORT_FORWARDING_TRANSPORT_H_

#include <functional>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "common/transport/transport.h"

namespace dctk::transport {

class ForwardingTransport : public Transport {
 public:
  explicit ForwardingTransport(Transport* inner) : inner_(inner) {}
  // Unregisters every receiver still registered through it from the wrapped
  // transport (which must outlive it).
  ~ForwardingTransport() override;

  absl::StatusOr<Address> Register(TransportReceiver* receiver, const Address& addr,
                                   const EndpointOptions& options = {}) override;
  void Unregister(TransportReceiver* receiver) override;
  absl::Status JoinGroup(TransportReceiver* receiver, const Address& group) override;
  absl::Status LeaveGroup(TransportReceiver* receiver, const Address& group) override;
  absl::Status SendRaw(TransportReceiver* sender, const Address& to, uint32_t type_id,
                       absl::string_view payload) override;
  void AwaitPeers(TransportReceiver* receiver, int n) override;
  TimerId Timer(absl::Duration delay, std::function<void()> cb) override {
    return inner_->Timer(delay, std::move(cb));
  }
  bool CancelTimer(TimerId id) override { return inner_->CancelTimer(id); }
  absl::Time Now() const override { return inner_->Now(); }
  void Post(std::function<void()> cb) override { inner_->Post(std::move(cb)); }
  void Run() override { inner_->Run(); }
  void Stop() override { inner_->Stop(); }

 protected:
  // Called for every message the wrapped transport delivers to `to` (a
  // receiver registered through this decorator). Default: Forward at once.
  virtual void Deliver(TransportReceiver* to, const Address& from, const Envelope& msg) {
    Forward(to, from, msg);
  }
  // Hands `msg` to `to`.
  static void Forward(TransportReceiver* to, const Address& from, const Envelope& msg) {
    to->ReceiveMessage(from, msg);
  }
  bool IsRegistered(TransportReceiver* receiver) const { return ShimOf(receiver) != nullptr; }

 private:
  class Shim : public TransportReceiver {
   public:
    Shim(ForwardingTransport* owner, TransportReceiver* target)
        : owner_(owner), target_(target) {}
    void ReceiveMessage(const Address& from, const Envelope& msg) override {
      owner_->Deliver(target_, from, msg);
    }

   private:
    ForwardingTransport* owner_;
    TransportReceiver* target_;
  };
  // The shim registered for `receiver` (nullptr if none).
  Shim* ShimOf(TransportReceiver* receiver) const;

  Transport* inner_;
  absl::flat_hash_map<TransportReceiver*, std::unique_ptr<Shim>> shims_;
};

}  // namespace dctk::transport

#endif  // DCTK_COMMON_TRANSPORT_FORWARDING_TRANSPORT_H_
