#include "common/transport/forwarding_transport.h"

#include "absl/strings/str_cat.h"

namespace dctk::transport {

ForwardingTransport::~ForwardingTransport() {
  for (const auto& [receiver, shim] : shims_) inner_->Unregister(shim.get());
}

ForwardingTransport::Shim* ForwardingTransport::ShimOf(TransportReceiver* receiver) const {
  auto it = shims_.find(receiver);
  return it == shims_.end() ? nullptr : it->second.get();
}

absl::StatusOr<Address> ForwardingTransport::Register(TransportReceiver* receiver,
                                                      const Address& addr,
                                                      const EndpointOptions& options) {
  if (ShimOf(receiver) != nullptr) {
    return absl::AlreadyExistsError(
        absl::StrCat("ForwardingTransport: receiver already registered (", addr.ToString(), ")"));
  }
  auto shim = std::make_unique<Shim>(this, receiver);
  absl::StatusOr<Address> bound = inner_->Register(shim.get(), addr, options);
  if (bound.ok()) shims_.emplace(receiver, std::move(shim));
  return bound;
}

void ForwardingTransport::Unregister(TransportReceiver* receiver) {
  Shim* shim = ShimOf(receiver);
  if (shim == nullptr) return;
  inner_->Unregister(shim);
  shims_.erase(receiver);
}

absl::Status ForwardingTransport::JoinGroup(TransportReceiver* receiver, const Address& group) {
  Shim* shim = ShimOf(receiver);
  if (shim == nullptr) return absl::FailedPreconditionError("JoinGroup: receiver not registered");
  return inner_->JoinGroup(shim, group);
}

absl::Status ForwardingTransport::LeaveGroup(TransportReceiver* receiver, const Address& group) {
  Shim* shim = ShimOf(receiver);
  if (shim == nullptr) return absl::FailedPreconditionError("LeaveGroup: receiver not registered");
  return inner_->LeaveGroup(shim, group);
}

absl::Status ForwardingTransport::SendRaw(TransportReceiver* sender, const Address& to,
                                          uint32_t type_id, absl::string_view payload) {
  Shim* shim = ShimOf(sender);
  if (shim == nullptr) return absl::FailedPreconditionError("SendRaw: sender not registered");
  return inner_->SendRaw(shim, to, type_id, payload);
}

void ForwardingTransport::AwaitPeers(TransportReceiver* receiver, int n) {
  if (Shim* shim = ShimOf(receiver)) inner_->AwaitPeers(shim, n);
}

}  // namespace dctk::transport
