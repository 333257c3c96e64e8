#include "speculative_paxos/over_mom/recording_transport.h"

#include "absl/strings/str_cat.h"
#include "mom/mom.pb.h"

namespace dctk::spaxos {

void RecordingTransport::Shim::ReceiveMessage(const transport::Address& from,
                                              const transport::Envelope& msg) {
  if (msg.Is<mom::MomPacket>()) {
    mom::MomPacket packet;
    if (packet.ParseFromArray(msg.payload().data(), static_cast<int>(msg.payload().size()))) {
      owner_->arrivals_.push_back({packet.sender_id(), packet.sender_seq()});
    }
  }
  target_->ReceiveMessage(from, msg);
}

RecordingTransport::Shim* RecordingTransport::ShimOf(
    transport::TransportReceiver* receiver) const {
  auto it = shims_.find(receiver);
  return it == shims_.end() ? nullptr : it->second.get();
}

absl::StatusOr<transport::Address> RecordingTransport::Register(
    transport::TransportReceiver* receiver, const transport::Address& addr,
    const transport::EndpointOptions& options) {
  if (ShimOf(receiver) != nullptr) {
    return absl::AlreadyExistsError(
        absl::StrCat("RecordingTransport: receiver already registered (", addr.ToString(), ")"));
  }
  auto shim = std::make_unique<Shim>(this, receiver);
  absl::StatusOr<transport::Address> bound = inner_->Register(shim.get(), addr, options);
  if (bound.ok()) shims_.emplace(receiver, std::move(shim));
  return bound;
}

void RecordingTransport::Unregister(transport::TransportReceiver* receiver) {
  Shim* shim = ShimOf(receiver);
  if (shim == nullptr) return;
  inner_->Unregister(shim);
  shims_.erase(receiver);
}

absl::Status RecordingTransport::JoinGroup(transport::TransportReceiver* receiver,
                                           const transport::Address& group) {
  Shim* shim = ShimOf(receiver);
  if (shim == nullptr) return absl::FailedPreconditionError("JoinGroup: receiver not registered");
  return inner_->JoinGroup(shim, group);
}

absl::Status RecordingTransport::LeaveGroup(transport::TransportReceiver* receiver,
                                            const transport::Address& group) {
  Shim* shim = ShimOf(receiver);
  if (shim == nullptr) return absl::FailedPreconditionError("LeaveGroup: receiver not registered");
  return inner_->LeaveGroup(shim, group);
}

absl::Status RecordingTransport::SendRaw(transport::TransportReceiver* sender,
                                         const transport::Address& to, uint32_t type_id,
                                         absl::string_view payload) {
  Shim* shim = ShimOf(sender);
  if (shim == nullptr) return absl::FailedPreconditionError("SendRaw: sender not registered");
  return inner_->SendRaw(shim, to, type_id, payload);
}

}  // namespace dctk::spaxos
