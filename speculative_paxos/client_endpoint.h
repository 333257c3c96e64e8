// ClientEndpoint: one UDP endpoint shared by the Clients of a process, which
// batches their requests.
//
// Each Client normally owns an endpoint, so a process with k closed-loop
// clients sends k datagrams per replica per round and receives up to k per
// replica back. Clients built on a shared ClientEndpoint instead hand their
// requests to it, and the requests issued in one turn of the event loop (the
// closed-loop case: several completions delivered together each issue the
// next request) leave as one RequestBatch per destination, flushed by a Post
// at the end of the turn. The servers answer a batch under a ReplyBatcher, so
// the replies come back as one ReplyBatch per replica, which keeps the
// clients in step; the endpoint hands each reply to its client by client id.
// With a single client attached, requests leave at once (nothing to batch).
//
// Example:
//   ClientEndpoint endpoint(&transport, Address::Loopback(0));
//   CHECK(endpoint.Start().ok());
//   Client a(&endpoint, config, /*client_id=*/1), b(&endpoint, config, 2);
//   CHECK(a.Start().ok() && b.Start().ok());
#ifndef DCTK_SPECULATIVE_PAXOS_CLIENT_ENDPOINT_H_
#define DCTK_SPECULATIVE_PAXOS_CLIENT_ENDPOINT_H_

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "common/transport/transport.h"
#include "speculative_paxos/spaxos.pb.h"

namespace dctk::spaxos {

class Client;

struct ClientEndpointStats {
  uint64_t requests = 0;          // requests handed over by clients
  uint64_t request_datagrams = 0;  // datagrams they left in (a batch counts once)
  uint64_t reply_datagrams = 0;    // Reply or ReplyBatch datagrams received
};

class ClientEndpoint : public transport::TransportReceiver {
 public:
  // A request batch stays within one datagram of `max_datagram` bytes (the
  // replicas' ReplicaConfig.max_datagram); a larger request goes alone.
  static constexpr int kDefaultMaxDatagram = 1400;
  static constexpr int kMinMaxDatagram = 256;  // as ReplicaConfig's bound

  // InvalidArgument naming the value and the bounds unless kMinMaxDatagram <=
  // max_datagram <= the largest UDP payload; Start() checks it too.
  static absl::Status CheckMaxDatagram(int max_datagram);

  ClientEndpoint(transport::Transport* transport, transport::Address bind,
                 transport::EndpointOptions options = {},
                 int max_datagram = kDefaultMaxDatagram);
  ~ClientEndpoint() override;
  ClientEndpoint(const ClientEndpoint&) = delete;
  ClientEndpoint& operator=(const ClientEndpoint&) = delete;

  absl::Status Start();
  const transport::Address& address() const { return address_; }
  transport::Transport* transport() const { return transport_; }
  const ClientEndpointStats& stats() const { return stats_; }

  void ReceiveMessage(const transport::Address& from, const transport::Envelope& msg) override;

 private:
  friend class Client;
  // Client ids must be unique on one endpoint (CHECK).
  void Attach(Client* client);
  void Detach(Client* client);
  // Held until the end of the loop turn (with two or more clients).
  void SendRequest(const transport::Address& to, const Request& req);
  template <typename M>
  void Send(const transport::Address& to, const M& msg) {
    (void)transport_->Send(this, to, msg);
  }
  void Deliver(Reply* reply);
  // A client's RepliesAwaited changed: tell the transport the fewest any
  // waiting client needs (with EndpointOptions.peers; after a received
  // datagram's replies are all delivered, not per reply).
  void AwaitChanged();
  void UpdateAwait();
  void Flush();
  void SendOut(const transport::Address& to, RequestBatch* batch);

  transport::Transport* transport_;
  transport::Address address_;
  const transport::EndpointOptions options_;
  const int max_datagram_;
  const size_t max_batch_bytes_;  // payload bytes of one batch datagram
  bool started_ = false;
  bool delivering_ = false;  // in ReceiveMessage: UpdateAwait at its end
  absl::flat_hash_map<uint64_t, Client*> clients_;
  // A flush is posted; the token dies with the endpoint (posts may outlive it).
  bool flush_posted_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  // Held requests by destination, in first-request order (few
  // destinations): the first used_ entries; the rest are flushed batches
  // kept for reuse.
  std::vector<std::pair<transport::Address, RequestBatch>> held_;
  std::vector<size_t> held_bytes_;
  size_t used_ = 0;
  Reply incoming_;  // reused for every received reply
  ReplyBatch incoming_batch_;
  ClientEndpointStats stats_;
};

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_CLIENT_ENDPOINT_H_
