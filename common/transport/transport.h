// Transport: the message transport every dctk protocol uses.
//
// A protocol object implements `TransportReceiver`, registers it on a `Transport`
// at an `Address`, and from then on sends protobuf messages, joins multicast
// groups and sets timers only through the transport. Timers live on the transport
// (as in specpaxos), so a `SimTransport` simulates both the network and time and
// a protocol runs unchanged on `UdpTransport` in real processes.
//
// Threading: every callback (ReceiveMessage, timers, Post) runs on the transport's
// single event-loop thread. `Post` and `Stop` may be called from any thread.
//
// Example:
//   class Echo : public TransportReceiver {
//    public:
//     void ReceiveMessage(const Address& from, const Envelope& msg) override {
//       PingMsg ping;
//       if (msg.Parse(&ping)) transport_->Send(this, from, ping);
//     }
//   };
//   ...
//   absl::StatusOr<Address> me = transport.Register(&echo, Address::Loopback(0));
#ifndef DCTK_COMMON_TRANSPORT_TRANSPORT_H_
#define DCTK_COMMON_TRANSPORT_TRANSPORT_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/transport/address.h"
#include "google/protobuf/message_lite.h"

namespace dctk::transport {

// Stable 32-bit id of a protobuf message type (FNV-1a of its full name), carried
// in every datagram's header so receivers dispatch without parsing.
uint32_t TypeIdOf(absl::string_view full_type_name);

template <typename M>
uint32_t TypeId() {
  static const uint32_t id = TypeIdOf(M::descriptor()->full_name());
  return id;
}

// A received message: its type id and undecoded payload. Valid only during the
// ReceiveMessage call that delivers it.
class Envelope {
 public:
  // `parse_failures`, if set, is the delivering transport's counter of payloads
  // that did not parse (MalformedReason::kBadPayload).
  Envelope(uint32_t type_id, absl::string_view payload,
           uint64_t* parse_failures = nullptr)
      : type_id_(type_id), payload_(payload), parse_failures_(parse_failures) {}

  uint32_t type_id() const { return type_id_; }
  absl::string_view payload() const { return payload_; }

  template <typename M>
  bool Is() const {
    return type_id_ == TypeId<M>();
  }
  // Decodes the payload into `msg` if the type matches; false (and the transport
  // counts a malformed message) if it does not parse.
  template <typename M>
  bool Parse(M* msg) const {
    if (!Is<M>()) return false;
    if (msg->ParseFromArray(payload_.data(), static_cast<int>(payload_.size()))) {
      return true;
    }
    if (parse_failures_ != nullptr) ++*parse_failures_;
    return false;
  }

 private:
  uint32_t type_id_;
  absl::string_view payload_;
  uint64_t* parse_failures_;
};

class TransportReceiver {
 public:
  virtual ~TransportReceiver() = default;
  virtual void ReceiveMessage(const Address& from, const Envelope& msg) = 0;
};

// Per-endpoint options, fixed at Register time.
struct EndpointOptions {
  // DSCP code point (0-63) for everything this endpoint sends; 46 (EF) marks
  // high-priority traffic such as MOM multicasts.
  uint8_t dscp = 0;
  // IP multicast settings for groups this endpoint sends to.
  uint8_t multicast_ttl = 1;
  bool multicast_loopback = true;
  // Interface address for outgoing multicast and for group joins; 0 = the
  // kernel's choice. On one host (tests), 127.0.0.1 keeps multicast on lo.
  uint32_t multicast_interface_ip = 0;
  // Peers whose datagrams the receiver waits for in rounds (a Speculative
  // Paxos client: its replicas). A transport may receive each peer's
  // datagrams apart, so that AwaitPeers can sleep until enough of them came.
  std::vector<Address> peers;
};

using TimerId = uint64_t;

class Transport {
 public:
  virtual ~Transport() = default;

  // Binds `receiver` at `addr` (port 0: the transport picks one) and returns the
  // address actually bound. One receiver per address.
  virtual absl::StatusOr<Address> Register(TransportReceiver* receiver,
                                           const Address& addr,
                                           const EndpointOptions& options = {}) = 0;
  // Stops delivery to `receiver` and releases its address and timers' targets.
  virtual void Unregister(TransportReceiver* receiver) = 0;

  // Joins / leaves the multicast group `group` (a 224.0.0.0/4 address and port).
  virtual absl::Status JoinGroup(TransportReceiver* receiver, const Address& group) = 0;
  virtual absl::Status LeaveGroup(TransportReceiver* receiver, const Address& group) = 0;

  // Sends an already-encoded payload. Datagram semantics: may be lost, never
  // partially delivered. Fails only on local errors (unknown sender, oversize).
  virtual absl::Status SendRaw(TransportReceiver* sender, const Address& to,
                               uint32_t type_id, absl::string_view payload) = 0;

  // Serializes into a reused per-thread buffer, so steady-state sends do not
  // allocate.
  template <typename M>
  absl::Status Send(TransportReceiver* sender, const Address& to, const M& msg) {
    thread_local std::string buffer;
    msg.SerializeToString(&buffer);
    return SendRaw(sender, to, TypeId<M>(), buffer);
  }

  // Runs `cb` on the event loop after `delay` (virtual time on SimTransport).
  virtual TimerId Timer(absl::Duration delay, std::function<void()> cb) = 0;
  // Cancels a pending timer; false if it already fired or was cancelled.
  virtual bool CancelTimer(TimerId id) = 0;
  // The transport's clock: wall time on real transports, virtual on SimTransport.
  virtual absl::Time Now() const = 0;

  // A hint from `receiver` (registered with EndpointOptions.peers): it can
  // make no progress before datagrams from `n` of its peers arrived (or a
  // timer fires), so the loop may sleep until then instead of waking for
  // each one. n = 0: it needs nothing from its peers for now (their
  // datagrams may wait for the next wake-up); 1, the default: wake for each.
  // Holds until the next call. Datagrams from others, posts from other
  // threads and timers still wake the loop at once. Default: ignored.
  virtual void AwaitPeers(TransportReceiver* receiver, int n) {
    (void)receiver;
    (void)n;
  }

  // Runs `cb` on the event loop as soon as possible. Thread-safe.
  virtual void Post(std::function<void()> cb) = 0;
  // Runs the event loop on the calling thread until Stop().
  virtual void Run() = 0;
  // Makes Run() return. Thread-safe.
  virtual void Stop() = 0;
};

}  // namespace dctk::transport

#endif  // DCTK_COMMON_TRANSPORT_TRANSPORT_H_
