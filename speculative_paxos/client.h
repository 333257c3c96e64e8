// Client: the client library of Speculative Paxos (and of its baselines).
//
// A client has one request outstanding at a time. In kSpeculative mode it sends
// the request to every replica (one multicast, or one copy each) and completes
// when a superquorum of ceil(3f/2)+1 replicas reply with the same stamp, slot
// and log hash (one round trip). Otherwise it falls back: when the replies it
// has can no longer reach a superquorum, or at the resend timeout, it asks the
// leader to reconcile and resends; it completes on f+1 matching replies marked
// durable (the entry is in a prefix those replicas confirmed with their
// leader). When f+1 replicas answered but a superquorum does not come within
// `commit_wait` (a slow or busy replica), it asks the leader early, so one
// straggler costs a round trip instead of the resend timeout. Replicas answer a reconciled request by themselves, so the client
// is not stalled by a timeout after a log change. In kLeader mode (leader-based
// baselines, an unreplicated server) it sends to the replica that answered
// last, tries the next one after each timeout, and completes on one reply.
//
// Clients of one process may share a ClientEndpoint (client_endpoint.h), which
// sends the requests they issue together as one datagram per replica.
//
// Callbacks run on the transport's event loop. InvokeAndWait() is a blocking
// wrapper for tools whose transport runs on another thread.
//
// Example:
//   Client client(&transport, {.replicas = addrs}, /*client_id=*/42, bind_addr);
//   CHECK(client.Start().ok());
//   client.Invoke(KvApp::Put("k", "v"), [](const std::string& result) { ... });
#ifndef DCTK_SPECULATIVE_PAXOS_CLIENT_H_
#define DCTK_SPECULATIVE_PAXOS_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "common/metrics/histogram.h"
#include "common/transport/timeout.h"
#include "common/transport/transport.h"
#include "mom/group.h"
#include "speculative_paxos/client_endpoint.h"
#include "speculative_paxos/spaxos.pb.h"
#include "speculative_paxos/stamp.h"

namespace dctk::spaxos {

struct ClientConfig {
  enum class Mode { kSpeculative, kLeader };

  std::vector<transport::Address> replicas;
  // Send each request once to this multicast group instead of to each replica.
  absl::optional<transport::Address> group;
  // Or send requests through this MOM group (mom/group.h: MomPacket header,
  // the design's DSCP); the replicas must have the same ReplicaConfig.mom.
  absl::optional<mom::GroupConfig> mom;
  // Socket options (DSCP, multicast interface) for the client's endpoint.
  transport::EndpointOptions endpoint;
  Mode mode = Mode::kSpeculative;
  // Resend (and, with replies in hand, ask for reconciliation) after this.
  absl::Duration resend_timeout = absl::Milliseconds(10);
  // kSpeculative: when f+1 replicas have answered but no superquorum has
  // after this long, ask the leader to commit the request (one slow or busy
  // replica then costs a round trip, not the resend timeout). 0: adaptive,
  // 3x the moving average of fast-path latencies (at least 50 us).
  absl::Duration commit_wait = absl::ZeroDuration();
  // kSpeculative, Speculative Paxos: the client's endpoint takes each
  // replica's replies on a socket of its own (EndpointOptions.peers =
  // replicas) and the client tells the transport how many replies its
  // request still needs before anything can change (Transport::AwaitPeers),
  // so UdpTransport wakes it once per round instead of once per reply. Not
  // for Fast Paxos, where only the coordinator answers. A shared
  // ClientEndpoint does this if its EndpointOptions name the replicas.
  bool await_replies = false;

  int f() const { return (static_cast<int>(replicas.size()) - 1) / 2; }
};

struct ClientStats {
  uint64_t completed = 0;
  // Speculative successes: completed on a superquorum of matching
  // speculative replies, in one round trip.
  uint64_t fast_path = 0;
  // Fallbacks: completed otherwise (a committed reply from the leader, f+1
  // durable replies after a reconciliation; every completion in kLeader mode).
  uint64_t slow_path = 0;
  uint64_t resends = 0;  // retries: a request sent again after resend_timeout
  uint64_t reconcile_requests = 0;     // messages asking the leader to sync / reconcile
  uint64_t early_commit_requests = 0;  // of which: asked after commit_wait
  // Every completion's latency in nanoseconds, from Invoke to callback.
  metrics::Histogram latency;

  // fast_path / completed (0 before the first completion).
  double SpeculativeSuccessRate() const {
    return completed == 0 ? 0.0 : static_cast<double>(fast_path) / completed;
  }
  void Add(const ClientStats& other);
};

// The MOM sender id a client sends its requests with (ClientConfig.mom): its
// 64-bit id folded to 32 bits. A collision only confuses MOM's per-sender
// counters; replicas take duplicates and detect them themselves.
inline uint32_t MomSenderId(uint64_t client_id) {
  return static_cast<uint32_t>(client_id ^ (client_id >> 32));
}

class Client : public transport::TransportReceiver {
 public:
  using Callback = std::function<void(const std::string& result)>;

  // A client on its own endpoint, bound at `bind` by Start().
  Client(transport::Transport* transport, ClientConfig config, uint64_t client_id,
         transport::Address bind);
  // A client on a shared endpoint (started before this client's Start());
  // client ids must be unique on it. Not with ClientConfig.mom.
  Client(ClientEndpoint* endpoint, ClientConfig config, uint64_t client_id);
  ~Client() override;

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  absl::Status Start();
  const transport::Address& address() const { return address_; }
  uint64_t client_id() const { return client_id_; }

  // Sends `op`; `done` runs once with the result. CHECK-fails if busy().
  void Invoke(std::string op, Callback done);
  bool busy() const { return pending_.has_value(); }
  // Gives up the outstanding request (its callback never runs). The replicas
  // may still execute it: its outcome is unknown to the caller.
  void Cancel();
  const ClientStats& stats() const { return stats_; }

  void ReceiveMessage(const transport::Address& from, const transport::Envelope& msg) override;

 private:
  struct Pending {
    uint64_t request_id;
    std::string op;
    Callback done;
    // Replicas whose newest reply is in Client::replies_ (bit per index).
    uint64_t answered = 0;
    int num_answered = 0;
    int best_match = 0;  // most replies that match one another
    bool reconcile_sent = false;
    absl::Time sent;
  };

  friend class ClientEndpoint;

  void SendRequest();
  void SendRequestTo(const transport::Address& to, const Request& req);
  void OnTimeout();
  // Takes the reply's contents.
  void HandleReply(Reply* reply);
  void AskReconcile();
  void OnCommitWait();
  absl::Duration CommitWait() const;
  void Complete(const std::string& result, bool fast);
  // Replies the pending request needs before it can complete or the client
  // acts (ClientConfig.await_replies); 0 when idle.
  int RepliesAwaited() const;
  // Tells the transport (or the shared endpoint) after any change of that.
  void AwaitReplies();

  transport::Transport* transport_;
  ClientEndpoint* endpoint_ = nullptr;  // shared endpoint, or null
  bool started_ = false;
  const ClientConfig config_;
  const uint64_t client_id_;
  transport::Address address_;
  uint64_t next_request_id_ = 1;
  Stamp newest_stamp_;  // newest stamp seen in any reply
  uint32_t leader_ = 0;  // kLeader mode: the replica that answered last
  absl::optional<Pending> pending_;
  // The pending request's newest reply per replica (valid where
  // Pending::answered says); reused across requests, so taking a reply
  // allocates nothing. Also the message a lone Reply is parsed into.
  std::vector<Reply> replies_;
  Reply incoming_;
  ReplyBatch incoming_batch_;
  std::unique_ptr<mom::MomSender> mom_sender_;
  ClientStats stats_;
  double fast_latency_us_ = 0;  // moving average of fast-path latencies
  transport::Timeout resend_;
  transport::Timeout commit_wait_;
};

// Runs `client.Invoke(op)` on the transport's loop (which another thread runs)
// and waits up to `timeout` for the result.
absl::StatusOr<std::string> InvokeAndWait(transport::Transport* transport, Client* client,
                                          std::string op, absl::Duration timeout);

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_CLIENT_H_
