// FastPaxosReplica: the Fast Paxos baseline (Lamport, "Fast Paxos", 2006) for
// 3 replicas (f = 1), on the same transport, client library and app as
// Speculative Paxos and VR, for comparisons.
//
// Clients send each request to every replica (ClientConfig::Mode::
// kSpeculative, as for Speculative Paxos). Every replica is an acceptor: it
// accepts a request in its next free slot, in arrival order, without
// executing it, and sends the vote to the coordinator (replica 0). The
// coordinator, the only learner that decides, chooses a slot's request when
// all three votes (the fast quorum ceil(3f/2)+1 = 3) name it, executes it and
// replies to the client: three message delays (Speculative Paxos: two, VR:
// four). When votes for a slot differ (requests reordered between replicas),
// or a slot sees no decision for two heartbeats (a lost vote or request), the
// coordinator runs a classic round: it proposes its own votes from the first
// undecided slot on, then requests it knows only from others' votes, in one
// FpAccept; one acceptor's FpAccepted (f+1 with the coordinator) chooses
// them. Acceptors take the classic entries in place of their votes, vote
// again, after them, for their other requests, and continue from there.
// Followers execute a chosen prefix when the coordinator's commit point and
// hash (FpCommit, every heartbeat) match their accepted entries, and
// otherwise copy the chosen entries from it (FpFetch / FpEntries). Only
// chosen entries are executed, so nothing is rolled back.
//
// Scope: the normal case and collision recovery with a fixed coordinator.
// There is no coordinator change (if replica 0 fails the group stops), no
// recovery of a restarted replica and no log compaction; with one decider,
// acceptors' votes need no round numbers.
//
// Example:
//   FastPaxosReplica r(&transport, {.replicas = {a0, a1, a2}}, /*index=*/0, &app);
//   CHECK(r.Start().ok());
#ifndef DCTK_SPECULATIVE_PAXOS_FAST_PAXOS_REPLICA_H_
#define DCTK_SPECULATIVE_PAXOS_FAST_PAXOS_REPLICA_H_

#include <array>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/transport/timeout.h"
#include "common/transport/transport.h"
#include "speculative_paxos/app.h"
#include "speculative_paxos/log.h"
#include "speculative_paxos/pieces.h"
#include "speculative_paxos/reply_batcher.h"
#include "speculative_paxos/spaxos.pb.h"

namespace dctk::spaxos {

struct FastPaxosConfig {
  std::vector<transport::Address> replicas;  // exactly 3; replica 0 coordinates
  // Coordinator's commit heartbeat; two without progress start a classic round.
  absl::Duration heartbeat = absl::Milliseconds(1);
  // Entries per fetch (FpEntries datagrams, a window of them at most).
  int fetch_chunk = 256;
  // Largest datagram a replica sends (frame header included), 256 .. 64 KiB:
  // a classic round proposes what fits in one FpAccept (the rest in the
  // next round), fetched entries go in pieces (pieces.h).
  int max_datagram = 1400;
};

struct FastPaxosStats {
  uint64_t votes = 0;           // requests this replica accepted in a fast slot
  uint64_t fast_decisions = 0;  // coordinator: slots chosen by three equal votes
  uint64_t classic_rounds = 0;  // coordinator: classic rounds run
  uint64_t classic_entries = 0; // coordinator: entries chosen in classic rounds
  uint64_t executed = 0;
  uint64_t fetched = 0;         // follower: chosen entries copied from the coordinator
};

class FastPaxosReplica : public transport::TransportReceiver {
 public:
  FastPaxosReplica(transport::Transport* transport, FastPaxosConfig config, uint32_t index,
                   App* app);
  ~FastPaxosReplica() override;
  FastPaxosReplica(const FastPaxosReplica&) = delete;
  FastPaxosReplica& operator=(const FastPaxosReplica&) = delete;

  absl::Status Start();
  void ReceiveMessage(const transport::Address& from, const transport::Envelope& msg) override;

  bool IsCoordinator() const { return index_ == 0; }
  // Chosen entries, all executed.
  const Log& log() const { return log_; }
  const FastPaxosStats& stats() const { return stats_; }

 private:
  using RequestId = std::pair<uint64_t, uint64_t>;  // (client id, request id)
  static RequestId IdOf(const Entry& e) { return {e.client_id(), e.request_id()}; }
  uint32_t n() const { return static_cast<uint32_t>(config_.replicas.size()); }
  template <typename M>
  void SendTo(uint32_t replica, const M& msg) {
    if (replica != index_) (void)transport_->Send(this, config_.replicas[replica], msg);
  }

  void Dispatch(const transport::Address& from, const transport::Envelope& msg);
  void HandleRequest(const transport::Address& from, const Request& req);
  // Accepts `e` in our next fast slot and tells the coordinator (queued in
  // votes_out_, sent at the end of the received datagram's handling).
  void Vote(Entry e);
  void FlushVotes();
  // Appends, executes and (coordinator) answers a chosen entry.
  void Choose(const Entry& e);
  void OnHeartbeat();

  // Coordinator.
  void HandleVote(const FpVote& m);
  void HandleOneVote(uint32_t replica, const Entry& e);
  void RecordVote(uint32_t replica, uint64_t slot, const Entry& e);
  void TryDecide();
  void StartClassic();
  void SendAccept();
  void HandleAccepted(const FpAccepted& m);
  void HandleFetch(const FpFetch& m);

  // Followers.
  void HandleAccept(const FpAccept& m);
  void HandleCommit(const FpCommit& m);
  void HandleEntries(const FpEntries& m);
  // Drops accepted entries at chosen slots, votes again for requests that
  // lost their slot, and moves the next fast slot past `end`.
  void Realign(uint64_t end);

  transport::Transport* transport_;
  const FastPaxosConfig config_;
  const uint32_t index_;
  App* app_;
  ReplyBatcher replies_;
  Log log_;
  uint64_t next_slot_ = 1;
  // What this replica accepted at each undecided slot (a vote or a classic entry).
  std::map<uint64_t, Entry> accepted_;
  absl::flat_hash_map<RequestId, uint64_t> accepted_at_;  // request -> slot
  FpVote votes_out_;  // follower: votes not sent yet
  uint64_t last_accept_end_ = 0;  // follower: end of the newest classic round taken

  // Coordinator: votes per undecided slot (by replica), the requests they
  // name, the end of the classic round's slots and whether it awaits an ack.
  std::map<uint64_t, std::array<absl::optional<RequestId>, 3>> votes_;
  std::map<RequestId, Entry> known_;
  // Highest slot each acceptor voted in: one that voted past a slot without
  // voting in it never will (votes go out in slot order).
  std::array<uint64_t, 3> max_vote_{};
  uint64_t classic_end_ = 0;
  bool classic_pending_ = false;
  int stalled_ticks_ = 0;
  uint64_t chosen_at_last_tick_ = 0;

  FastPaxosStats stats_;
  transport::Timeout heartbeat_;
};

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_FAST_PAXOS_REPLICA_H_
