// RecordingTransport: a Transport decorator that records, in arrival order,
// the (sender id, sender sequence number) of every MOM packet (mom.proto's
// MomPacket) delivered to any receiver registered through it, then passes the
// message on unchanged. A replica process wraps its UdpTransport in one so
// the order in which its requests arrived can be compared across replicas
// (the reorder rate, mom/measure/reorder.h) without touching the replica.
//
// Everything else (sends, timers, groups, the loop) goes to the wrapped
// transport; receivers are wrapped in a small shim per registration.
//
// Example:
//   RecordingTransport net(udp.get());
//   Replica replica(&net, config, index, &app);   // registers through `net`
//   net.Run();
//   for (const mom::MessageId& id : net.arrivals()) ...
#ifndef DCTK_SPECULATIVE_PAXOS_OVER_MOM_RECORDING_TRANSPORT_H_
#define DCTK_SPECULATIVE_PAXOS_OVER_MOM_RECORDING_TRANSPORT_H_

#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/transport/transport.h"
#include "mom/measure/reorder.h"

namespace dctk::spaxos {

class RecordingTransport : public transport::Transport {
 public:
  explicit RecordingTransport(transport::Transport* inner) : inner_(inner) {}

  absl::StatusOr<transport::Address> Register(transport::TransportReceiver* receiver,
                                              const transport::Address& addr,
                                              const transport::EndpointOptions& options = {}) override;
  void Unregister(transport::TransportReceiver* receiver) override;
  absl::Status JoinGroup(transport::TransportReceiver* receiver,
                         const transport::Address& group) override;
  absl::Status LeaveGroup(transport::TransportReceiver* receiver,
                          const transport::Address& group) override;
  absl::Status SendRaw(transport::TransportReceiver* sender, const transport::Address& to,
                       uint32_t type_id, absl::string_view payload) override;
  transport::TimerId Timer(absl::Duration delay, std::function<void()> cb) override {
    return inner_->Timer(delay, std::move(cb));
  }
  bool CancelTimer(transport::TimerId id) override { return inner_->CancelTimer(id); }
  absl::Time Now() const override { return inner_->Now(); }
  void Post(std::function<void()> cb) override { inner_->Post(std::move(cb)); }
  void Run() override { inner_->Run(); }
  void Stop() override { inner_->Stop(); }

  // MOM packets in arrival order, duplicates included. Loop thread only (or
  // after Run() returned).
  const std::vector<mom::MessageId>& arrivals() const { return arrivals_; }

 private:
  class Shim : public transport::TransportReceiver {
   public:
    Shim(RecordingTransport* owner, transport::TransportReceiver* target)
        : owner_(owner), target_(target) {}
    void ReceiveMessage(const transport::Address& from, const transport::Envelope& msg) override;

   private:
    RecordingTransport* owner_;
    transport::TransportReceiver* target_;
  };
  // The shim registered for `receiver` (nullptr if none).
  Shim* ShimOf(transport::TransportReceiver* receiver) const;

  transport::Transport* inner_;
  absl::flat_hash_map<transport::TransportReceiver*, std::unique_ptr<Shim>> shims_;
  std::vector<mom::MessageId> arrivals_;
};

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_OVER_MOM_RECORDING_TRANSPORT_H_
