#include "common/transport/reordering_transport.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace dctk::transport {

absl::StatusOr<std::unique_ptr<ReorderingTransport>> ReorderingTransport::Create(
    Transport* inner, ReorderOptions options) {
  if (!(options.rate >= 0 && options.rate <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ReorderingTransport: rate ", options.rate, " is not in [0, 1]"));
  }
  if (options.max_hold <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ReorderingTransport: max_hold ", absl::FormatDuration(options.max_hold),
        " is not above zero"));
  }
  if (options.type_ids.empty()) {
    return absl::InvalidArgumentError("ReorderingTransport: no message types to hold");
  }
  return std::unique_ptr<ReorderingTransport>(new ReorderingTransport(inner, std::move(options)));
}

ReorderingTransport::~ReorderingTransport() {
  for (const auto& [key, held] : held_) CancelTimer(held.timer);
}

void ReorderingTransport::Unregister(TransportReceiver* receiver) {
  absl::erase_if(held_, [&](const auto& entry) {
    if (entry.second.to != receiver) return false;
    CancelTimer(entry.second.timer);
    return true;
  });
  ForwardingTransport::Unregister(receiver);
}

bool ReorderingTransport::Matches(uint32_t type_id) const {
  return std::find(options_.type_ids.begin(), options_.type_ids.end(), type_id) !=
         options_.type_ids.end();
}

void ReorderingTransport::Deliver(TransportReceiver* to, const Address& from,
                                  const Envelope& msg) {
  if (!Matches(msg.type_id())) return Forward(to, from, msg);
  ++stats_.matched;
  if (options_.rate == 0 || RandomUnit() >= options_.rate) {
    newest_forwarded_ = stats_.matched;
    return Forward(to, from, msg);
  }
  ++stats_.held;
  // (1 - u) is in (0, 1]: a held message is always actually delayed.
  const absl::Duration hold = options_.max_hold * (1.0 - RandomUnit());
  const uint64_t key = next_key_++;
  const TimerId timer = Timer(hold, [this, key] { Release(key); });
  held_.emplace(key,
                Held{timer, to, from, msg.type_id(), std::string(msg.payload()), stats_.matched});
}

void ReorderingTransport::Release(uint64_t key) {
  auto it = held_.find(key);
  if (it == held_.end()) return;
  Held held = std::move(it->second);
  held_.erase(it);
  if (newest_forwarded_ > held.arrival) {
    ++stats_.overtaken;
  } else {
    newest_forwarded_ = held.arrival;
  }
  Forward(held.to, held.from, Envelope(held.type_id, held.payload));
}

}  // namespace dctk::transport
