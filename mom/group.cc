#include "mom/group.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "mom/mom.pb.h"

namespace dctk::mom {

using transport::Address;
using transport::Envelope;

absl::Status ValidateGroupConfig(const GroupConfig& config) {
  switch (config.delivery) {
    case Delivery::kIpMulticast:
      if (!config.group_address.is_multicast()) {
        return absl::InvalidArgumentError(
            absl::StrCat("MOM group ", config.group_id, ": group_address ",
                         config.group_address.ToString(),
                         " is not a multicast (224.0.0.0/4) address"));
      }
      for (const auto& [sender, address] : config.sender_addresses) {
        if (!address.is_multicast()) {
          return absl::InvalidArgumentError(
              absl::StrCat("MOM group ", config.group_id, ": sender ", sender, "'s address ",
                           address.ToString(), " is not a multicast (224.0.0.0/4) address"));
        }
      }
      return absl::OkStatus();
    case Delivery::kReplicatedUnicast:
      if (config.members.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "MOM group ", config.group_id, ": replicated unicast needs members"));
      }
      for (const Address& m : config.members) {
        if (m.is_multicast()) {
          return absl::InvalidArgumentError(
              absl::StrCat("MOM group ", config.group_id, ": member ", m.ToString(),
                           " is a multicast address"));
        }
      }
      return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("MOM group ", config.group_id, ": unknown delivery"));
}

transport::EndpointOptions SenderEndpointOptions(const GroupConfig& config) {
  transport::EndpointOptions options;
  if (HighPriority(config.design)) options.dscp = kMomDscp;
  return options;
}

absl::StatusOr<std::unique_ptr<MomSender>> MomSender::Create(
    transport::Transport* transport, transport::TransportReceiver* endpoint,
    GroupConfig config, uint32_t sender_id, uint64_t incarnation) {
  if (absl::Status s = ValidateGroupConfig(config); !s.ok()) return s;
  return std::unique_ptr<MomSender>(
      new MomSender(transport, endpoint, std::move(config), sender_id, incarnation));
}

absl::Status MomSender::MulticastRaw(uint32_t type_id, absl::string_view payload) {
  MomPacket packet;
  if (Serialized(config_.design)) packet.set_group_seq(0);  // slot for the switch
  packet.set_group_id(config_.group_id);
  packet.set_sender_id(sender_id_);
  packet.set_sender_seq(next_seq_++);
  packet.set_incarnation(incarnation_);
  packet.set_payload_type(type_id);
  packet.set_payload(payload.data(), payload.size());
  const std::string wire = packet.SerializeAsString();
  const uint32_t wire_type = transport::TypeId<MomPacket>();

  absl::Status first_error;
  uint64_t sent = 0;
  auto send_one = [&](const Address& to) {
    absl::Status s = transport_->SendRaw(endpoint_, to, wire_type, wire);
    if (s.ok()) {
      ++sent;
    } else {
      ++stats_.send_errors;
      if (first_error.ok()) {
        first_error = absl::Status(
            s.code(), absl::StrCat("MOM group ", config_.group_id, " sender ", sender_id_,
                                   " to ", to.ToString(), ": ", s.message()));
      }
    }
  };
  if (config_.delivery == Delivery::kIpMulticast) {
    auto own = config_.sender_addresses.find(sender_id_);
    send_one(own != config_.sender_addresses.end() ? own->second : config_.group_address);
  } else {
    for (const Address& member : config_.members) send_one(member);
  }
  stats_.copies_sent += sent;
  if (sent > 0) ++stats_.multicasts;
  return first_error;
}

MomReceiver::MomReceiver(transport::Transport* transport,
                         transport::TransportReceiver* endpoint, GroupConfig config,
                         DeliverFn deliver, Options options)
    : transport_(transport), endpoint_(endpoint), config_(std::move(config)),
      deliver_(std::move(deliver)), options_(options) {}

absl::Status MomReceiver::Join() {
  if (absl::Status s = ValidateGroupConfig(config_); !s.ok()) return s;
  if (config_.delivery != Delivery::kIpMulticast) return absl::OkStatus();
  for (const Address& a : ChannelAddresses()) {
    if (absl::Status s = transport_->JoinGroup(endpoint_, a); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status MomReceiver::Leave() {
  if (config_.delivery != Delivery::kIpMulticast) return absl::OkStatus();
  absl::Status first;
  for (const Address& a : ChannelAddresses()) {
    if (absl::Status s = transport_->LeaveGroup(endpoint_, a); !s.ok() && first.ok()) first = s;
  }
  return first;
}

std::vector<Address> MomReceiver::ChannelAddresses() const {
  std::vector<Address> all = {config_.group_address};
  for (const auto& [sender, address] : config_.sender_addresses) {
    if (std::find(all.begin(), all.end(), address) == all.end()) all.push_back(address);
  }
  return all;
}

bool MomReceiver::Handle(const Address& from, const Envelope& msg) {
  if (!msg.Is<MomPacket>()) return false;
  MomPacket packet;
  if (!msg.Parse(&packet) || packet.sender_seq() == 0) {
    ++stats_.malformed;
    return true;
  }
  if (packet.group_id() != config_.group_id) {
    ++stats_.other_group;
    return true;
  }

  SenderState& sender = senders_[packet.sender_id()];
  if (packet.incarnation() < sender.incarnation) {
    ++stats_.old_incarnation;
    return true;
  }
  if (packet.incarnation() > sender.incarnation) {
    // Gaps of the old incarnation stay counted in stats_.missing: presumed lost.
    if (sender.tracker.highest() > 0) ++stats_.sender_restarts;
    sender.incarnation = packet.incarnation();
    sender.tracker.Reset();
  }
  const uint64_t missing_before = sender.tracker.missing();
  const SequenceTracker::Result r = sender.tracker.Observe(packet.sender_seq());
  stats_.missing = stats_.missing + sender.tracker.missing() - missing_before;
  ++stats_.arrivals[static_cast<int>(r.kind)];

  const uint64_t group_seq = packet.has_group_seq() ? packet.group_seq() : 0;
  if (group_seq > 0) {
    const SequenceTracker::Result g = group_seq_.Observe(group_seq);
    if (g.kind == Arrival::kLate || g.kind == Arrival::kDuplicate ||
        g.kind == Arrival::kStale) {
      ++stats_.group_seq_out_of_order;
    }
    stats_.group_seq_missing = group_seq_.missing();
  }

  const bool duplicate_like = r.kind == Arrival::kDuplicate || r.kind == Arrival::kStale;
  if (duplicate_like && !options_.deliver_duplicates) return true;
  ++stats_.delivered;
  deliver_(MomDelivery{
      .from = from,
      .sender_id = packet.sender_id(),
      .sender_seq = packet.sender_seq(),
      .arrival = r.kind,
      .skipped = r.skipped,
      .group_seq = group_seq,
      .message = Envelope(packet.payload_type(), packet.payload()),
  });
  return true;
}

std::string MomReceiver::StatsText() const {
  const std::string group = absl::StrCat("group=\"", config_.group_id, "\"");
  std::string out;
  auto metric = [&](absl::string_view name, absl::string_view type,
                    absl::string_view labels, uint64_t value) {
    absl::StrAppend(&out, "# TYPE ", name, " ", type, "\n", name, "{", group, labels,
                    "} ", value, "\n");
  };
  metric("mom_receiver_delivered_total", "counter", "", stats_.delivered);
  absl::StrAppend(&out, "# TYPE mom_receiver_arrivals_total counter\n");
  for (int a = 0; a < kNumArrivals; ++a) {
    absl::StrAppend(&out, "mom_receiver_arrivals_total{", group, ",arrival=\"",
                    ArrivalName(static_cast<Arrival>(a)), "\"} ", stats_.arrivals[a], "\n");
  }
  metric("mom_receiver_missing", "gauge", "", stats_.missing);
  metric("mom_receiver_group_seq_missing", "gauge", "", stats_.group_seq_missing);
  metric("mom_receiver_group_seq_out_of_order_total", "counter", "",
         stats_.group_seq_out_of_order);
  metric("mom_receiver_sender_restarts_total", "counter", "", stats_.sender_restarts);
  absl::StrAppend(&out, "# TYPE mom_receiver_dropped_total counter\n");
  for (auto [reason, value] : {std::pair<absl::string_view, uint64_t>{"old_incarnation",
                                                                      stats_.old_incarnation},
                               {"malformed", stats_.malformed},
                               {"other_group", stats_.other_group}}) {
    absl::StrAppend(&out, "mom_receiver_dropped_total{", group, ",reason=\"", reason,
                    "\"} ", value, "\n");
  }
  return out;
}

}  // namespace dctk::mom
