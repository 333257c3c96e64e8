// MOM group: mostly-ordered multicast to a set of members over common/transport.
//
// A group has an id, a design (design.h), a delivery mechanism and members:
//   Delivery::kIpMulticast        one send to `group_address` (or the sender's
//                                 own channel address, `sender_addresses`);
//                                 members join them all. Also the mechanism for
//                                 the MOM switch: the switch replicates each
//                                 channel address in-network.
//   Delivery::kReplicatedUnicast  the no-network-support fallback: the sender
//                                 sends one copy to each member's address.
// `MomSender::Multicast(msg)` wraps a message in a MomPacket header (mom.proto)
// carrying (sender id, per-sender sequence number, incarnation) and, in
// serialized groups, a group-sequence slot the serialization switch stamps.
// `MomReceiver` unwraps and delivers every message in arrival order, without
// holding anything back: MOM is *mostly* ordered, and the protocol above
// (Speculative Paxos) decides what to do with misordering. Each delivery is
// tagged with its Arrival class, so gaps, late messages and duplicates are
// visible, and they are counted in MomReceiver::Stats.
//
// The sender and receiver do not own a network endpoint: the protocol object
// registers itself (so replies and other messages reach it directly) and routes
// MOM packets into MomReceiver::Handle. For high-priority designs the sender's
// endpoint must be registered with SenderEndpointOptions(config) (DSCP 46).
//
// Example (a replica and a client):
//   GroupConfig g{.group_id = 7, .group_address = *Address::Parse("239.1.1.7:7000"),
//                 .members = replica_addrs, .delivery = Delivery::kIpMulticast,
//                 .design = Design::kTopologyAwareQos};
//   // Replica:
//   MomReceiver mom(&transport, this, g, [this](const MomDelivery& d) { Execute(d); });
//   CHECK_OK(mom.Join());
//   void ReceiveMessage(const Address& from, const Envelope& m) override {
//     if (mom.Handle(from, m)) return;
//     ... other messages ...
//   }
//   // Client:
//   transport.Register(this, my_addr, SenderEndpointOptions(g));
//   auto sender = MomSender::Create(&transport, this, g, /*sender_id=*/client_id, incarnation);
//   (*sender)->Multicast(request);
#ifndef DCTK_MOM_GROUP_H_
#define DCTK_MOM_GROUP_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/transport/address.h"
#include "common/transport/transport.h"
#include "mom/design.h"
#include "mom/sequence_tracker.h"

namespace dctk::mom {

enum class Delivery : uint8_t {
  kIpMulticast = 0,
  kReplicatedUnicast = 1,
};

struct GroupConfig {
  uint32_t group_id = 0;
  // A 224.0.0.0/4 address; required for kIpMulticast.
  transport::Address group_address;
  // kIpMulticast over the MOM switch: a group has one multicast channel per
  // sender (naive) or per root switch (topology-aware), so each sender sends
  // to its own channel address (the controller's SenderChannelIp) and members
  // join them all (ChannelIps). Sender ids listed here send to their address;
  // others to group_address. Members join group_address and every address here.
  absl::flat_hash_map<uint32_t, transport::Address> sender_addresses;
  // Members' endpoint addresses; required (non-empty) for kReplicatedUnicast.
  std::vector<transport::Address> members;
  Delivery delivery = Delivery::kIpMulticast;
  Design design = Design::kNaive;
};

// Checks the fields the delivery mechanism needs; the error names the field.
absl::Status ValidateGroupConfig(const GroupConfig& config);

// Options a sender's endpoint must be registered with: DSCP 46 when the design
// asks for high priority.
transport::EndpointOptions SenderEndpointOptions(const GroupConfig& config);

class MomSender {
 public:
  struct Stats {
    uint64_t multicasts = 0;   // Multicast calls that sent at least one copy
    uint64_t copies_sent = 0;  // datagrams handed to the transport
    uint64_t send_errors = 0;  // copies the transport refused
  };

  // `endpoint` must be registered on `transport`. `incarnation` must grow each
  // time a sender with this id restarts (e.g. its start time in microseconds).
  static absl::StatusOr<std::unique_ptr<MomSender>> Create(
      transport::Transport* transport, transport::TransportReceiver* endpoint,
      GroupConfig config, uint32_t sender_id, uint64_t incarnation);

  template <typename M>
  absl::Status Multicast(const M& msg) {
    return MulticastRaw(transport::TypeId<M>(), msg.SerializeAsString());
  }
  // Sends one message to every member; returns the first send error (the
  // sequence number is used even then, so receivers that missed it see a gap).
  absl::Status MulticastRaw(uint32_t type_id, absl::string_view payload);

  uint32_t sender_id() const { return sender_id_; }
  // Sequence number the next Multicast will carry.
  uint64_t next_seq() const { return next_seq_; }
  const Stats& stats() const { return stats_; }

 private:
  MomSender(transport::Transport* transport, transport::TransportReceiver* endpoint,
            GroupConfig config, uint32_t sender_id, uint64_t incarnation)
      : transport_(transport), endpoint_(endpoint), config_(std::move(config)),
        sender_id_(sender_id), incarnation_(incarnation) {}

  transport::Transport* transport_;
  transport::TransportReceiver* endpoint_;
  GroupConfig config_;
  uint32_t sender_id_;
  uint64_t incarnation_;
  uint64_t next_seq_ = 1;
  Stats stats_;
};

// One delivered message. `message` is valid only during the callback.
struct MomDelivery {
  transport::Address from;
  uint32_t sender_id;
  uint64_t sender_seq;
  Arrival arrival;        // per-sender classification
  uint64_t skipped = 0;   // for kAfterGap: per-sender numbers jumped over
  uint64_t group_seq = 0; // stamped by a serialization switch; 0 = none
  transport::Envelope message;
};

struct MomReceiverOptions {
  // Duplicates (and stale arrivals, which may be duplicates) are counted and,
  // unless this is set, not delivered.
  bool deliver_duplicates = false;
};

class MomReceiver {
 public:
  using Options = MomReceiverOptions;
  using DeliverFn = std::function<void(const MomDelivery&)>;

  struct Stats {
    uint64_t delivered = 0;
    std::array<uint64_t, kNumArrivals> arrivals{};  // by Arrival
    uint64_t missing = 0;            // per-sender gaps not (yet) filled, all senders
    uint64_t group_seq_missing = 0;  // group sequence numbers never seen (serialized)
    uint64_t group_seq_out_of_order = 0;  // stamped copies that arrived late
    uint64_t sender_restarts = 0;    // a sender's incarnation grew
    uint64_t old_incarnation = 0;    // dropped: from a sender's earlier incarnation
    uint64_t malformed = 0;          // dropped: MomPacket did not parse
    uint64_t other_group = 0;        // dropped: MomPacket of another group id
    uint64_t count(Arrival a) const { return arrivals[static_cast<int>(a)]; }
  };

  MomReceiver(transport::Transport* transport, transport::TransportReceiver* endpoint,
              GroupConfig config, DeliverFn deliver, Options options = {});
  MomReceiver(const MomReceiver&) = delete;
  MomReceiver& operator=(const MomReceiver&) = delete;

  // Joins the group address and every sender address (kIpMulticast); nothing
  // to do for replicated unicast.
  absl::Status Join();
  absl::Status Leave();

  // Call from the endpoint's ReceiveMessage. Returns false (and does nothing)
  // for messages that are not MomPackets, so the caller handles them itself.
  bool Handle(const transport::Address& from, const transport::Envelope& msg);

  const Stats& stats() const { return stats_; }
  // Prometheus text exposition of stats(), labelled with the group id.
  std::string StatsText() const;

 private:
  struct SenderState {
    uint64_t incarnation = 0;
    SequenceTracker tracker;
  };
  // group_address, then the distinct sender addresses.
  std::vector<transport::Address> ChannelAddresses() const;

  transport::Transport* transport_;
  transport::TransportReceiver* endpoint_;
  GroupConfig config_;
  DeliverFn deliver_;
  Options options_;
  absl::flat_hash_map<uint32_t, SenderState> senders_;
  SequenceTracker group_seq_;
  Stats stats_;
};

}  // namespace dctk::mom

#endif  // DCTK_MOM_GROUP_H_
