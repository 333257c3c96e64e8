// ReplyBatcher: coalesces the replies a server sends to one address while it
// handles one received datagram into one datagram (a ReplyBatch).
//
// Clients that share an endpoint (client_endpoint.h) send the requests they
// issue together as one RequestBatch; a server that answers it under a
// ReplyBatcher::Hold sends one ReplyBatch per client address instead of one
// datagram per request. Outside a Hold, Send goes out at once. A lone reply
// goes out as a plain Reply, so clients on their own endpoint see no change.
// Every server of this package (Replica, VrReplica, UnreplicatedServer) uses
// one, so the baselines get the same batching.
//
// Example:
//   void Server::ReceiveMessage(const Address& from, const Envelope& msg) {
//     ReplyBatcher::Hold hold(&replies_);
//     ... replies_.Send(client, &reply); ...
//   }  // one datagram per client address here
#ifndef DCTK_SPECULATIVE_PAXOS_REPLY_BATCHER_H_
#define DCTK_SPECULATIVE_PAXOS_REPLY_BATCHER_H_

#include <utility>
#include <vector>

#include "common/transport/transport.h"
#include "speculative_paxos/spaxos.pb.h"

namespace dctk::spaxos {

class ReplyBatcher {
 public:
  // Holds replies for its lifetime; nests (the outermost one flushes).
  class Hold {
   public:
    explicit Hold(ReplyBatcher* b) : b_(b) { ++b_->holds_; }
    ~Hold() {
      if (--b_->holds_ == 0) b_->Flush();
    }
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;

   private:
    ReplyBatcher* b_;
  };

  // A batch stops growing at this many payload bytes by default.
  static constexpr size_t kDefaultMaxBatchBytes = 16 * 1024;

  // `sender` is the endpoint replies are sent from (registered on `transport`);
  // a batch's message stays within `max_bytes` (one reply may be larger).
  ReplyBatcher(transport::Transport* transport, transport::TransportReceiver* sender,
               size_t max_bytes = kDefaultMaxBatchBytes)
      : transport_(transport), sender_(sender), max_bytes_(max_bytes) {}

  // Takes the reply's contents (it is left empty).
  void Send(const transport::Address& to, Reply* reply);

 private:
  void Flush();
  void SendOut(const transport::Address& to, ReplyBatch* batch);

  transport::Transport* transport_;
  transport::TransportReceiver* sender_;
  size_t max_bytes_;
  int holds_ = 0;
  // Held replies by destination, in first-reply order (few addresses): the
  // first used_ entries; the rest are flushed batches kept for reuse.
  std::vector<std::pair<transport::Address, ReplyBatch>> held_;
  std::vector<size_t> held_bytes_;
  size_t used_ = 0;
};

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_REPLY_BATCHER_H_
