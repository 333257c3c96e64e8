// FastPaxosReplica: the Fast Paxos baseline (Lamport, "Fast Paxos", 2006) for
// 3 replicas (f = 1), on the same transport, client library and app as
// Speculative Paxos and VR, for comparisons.
//
// Clients send each request to every replica (ClientConfig::Mode::
// kSpeculative, as for Speculative Paxos). Every replica is an acceptor: it
// accepts a request in its next free slot, in arrival order, without
// executing it, and sends the vote to the coordinator (replica view mod 3).
// The coordinator, the only replica that decides, chooses a slot's request
// when all three votes of the current fast ballot (the fast quorum
// ceil(3f/2)+1 = 3) name it, executes it and replies to the client: three
// message delays (Speculative Paxos: two, VR: four). When votes for a slot
// differ (requests reordered between replicas), or a slot sees no decision
// for two heartbeats (a lost vote or request), the coordinator runs a
// classic round (a new, odd ballot): it proposes its own votes from the
// first undecided slot on, then requests it knows only from others' votes,
// in FpAccept pieces within the datagram budget, one at a time; one
// acceptor's FpAccepted (f+1 with the coordinator) chooses a piece. Acceptors
// take the classic entries in place of their votes and vote again, in the
// next fast ballot, after the round's last slot, for their other requests.
// The coordinator only counts votes of its current fast ballot, so no slot
// is decided from votes an acceptor has since replaced. Followers execute a
// chosen prefix when the coordinator's commit point and hash (FpCommit,
// every heartbeat) match their accepted entries, and otherwise copy the
// chosen entries (FpFetch / FpEntries). Only chosen entries are executed, so
// nothing is rolled back.
//
// Coordinator change (fast_paxos_view_change.cc): a replica that hears no
// FpCommit for `view_change_timeout` moves to the next view (its coordinator
// is view mod 3) and says so (FpViewChange); from then on it takes nothing
// from older views. The new coordinator collects the report of one other
// replica (its chosen entries and accepted votes with their ballots, past
// the new coordinator's chosen log, pulled a datagram at a time), picks
// values by the Fast Paxos rule (fast_paxos_merge.h: a value that may have
// been chosen is kept at its slot) and proposes the result as the view's
// first classic round (its installation); once one acceptor takes it, the
// coordinator chooses it and answers every client in it at once. Requests
// that arrive during the change are held and voted for after it, so clients
// waiting on the old coordinator are answered without waiting for their
// resend. A replica that was cut off (or the old coordinator, back) joins
// the new view from its FpCommit and copies what it lacks.
//
// Scope: f = 1 only; a replica that restarts without its state must not
// rejoin (no recovery protocol: it could vote twice in a ballot); no log
// compaction.
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
  std::vector<transport::Address> replicas;  // exactly 3; replica view % 3 coordinates
  // Coordinator's commit heartbeat; two without progress start a classic round.
  absl::Duration heartbeat = absl::Milliseconds(1);
  // Silence from the coordinator (or a stuck coordinator change) before the
  // next view.
  absl::Duration view_change_timeout = absl::Milliseconds(40);
  // Entries per fetch (FpEntries datagrams, a window of them at most).
  int fetch_chunk = 256;
  // Largest datagram a replica sends (frame header included), 256 .. 64 KiB:
  // votes, classic rounds, reports and fetched entries go in pieces
  // (pieces.h).
  int max_datagram = 1400;
};

struct FastPaxosStats {
  uint64_t votes = 0;           // requests this replica accepted in a fast slot
  uint64_t fast_decisions = 0;  // coordinator: slots chosen by three equal votes
  uint64_t classic_rounds = 0;  // coordinator: classic rounds run
  uint64_t classic_entries = 0; // coordinator: entries chosen in classic rounds
  uint64_t executed = 0;
  uint64_t fetched = 0;         // follower: chosen entries copied from the coordinator
  uint64_t view_changes = 0;    // views this replica became normal in, after the first
  uint64_t installed = 0;       // new coordinator: entries its installations proposed
  uint64_t kept = 0;            // ... of which values that may have been chosen
  uint64_t noops = 0;           // ... free slots below a kept one
  uint64_t merge_conflicts = 0; // ... kept values that repeated a request (must stay 0)
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

  bool IsCoordinator() const { return CoordinatorOf(view_) == index_; }
  uint64_t view() const { return view_; }
  // False during a coordinator change.
  bool normal() const { return normal_; }
  // Chosen entries, all executed.
  const Log& log() const { return log_; }
  const FastPaxosStats& stats() const { return stats_; }

 private:
  using RequestId = std::pair<uint64_t, uint64_t>;  // (client id, request id)
  static RequestId IdOf(const Entry& e) { return {e.client_id(), e.request_id()}; }
  uint32_t n() const { return static_cast<uint32_t>(config_.replicas.size()); }
  uint32_t CoordinatorOf(uint64_t view) const { return view % n(); }
  uint32_t coordinator() const { return CoordinatorOf(view_); }
  size_t budget() const { return PayloadBudget(config_.max_datagram); }
  // In service and knowing our view's fast ballot (a replica that joined a
  // view learns it from the coordinator's first FpCommit or FpAccept).
  bool voting() const { return normal_ && (fast_ballot_ >> 32) == view_; }
  template <typename M>
  void SendTo(uint32_t replica, const M& msg) {
    if (replica != index_) (void)transport_->Send(this, config_.replicas[replica], msg);
  }

  void Dispatch(const transport::Address& from, const transport::Envelope& msg);
  void HandleRequest(const transport::Address& from, const Request& req);
  // Accepts `e` in our next fast slot and current fast ballot and tells the
  // coordinator (queued in votes_out_, sent after the received datagram).
  void Vote(Entry e);
  void FlushVotes();
  // Appends, executes and (coordinator) answers a chosen entry.
  void Choose(const Entry& e);
  void OnHeartbeat();
  void SendCommit(uint32_t to);
  // Removes the entry accepted at `slot` (and its request's index); returns it.
  Entry TakeAccepted(std::map<uint64_t, Entry>::iterator it);
  // Votes again, in order, for displaced requests not chosen or held.
  void VoteAgain(std::vector<Entry> displaced);

  // Coordinator.
  void HandleVote(const FpVote& m);
  void HandleOneVote(uint32_t replica, const Entry& e);
  void TryDecide();
  void StartClassic();
  // Starts classic ballot `ballot` over accepted_ up to `end`.
  void BeginClassic(uint64_t ballot, uint64_t end);
  // The classic round's next piece (from the first unchosen slot).
  void SendAccept();
  void HandleAccepted(const FpAccepted& m);
  void HandleFetch(const FpFetch& m);

  // Followers.
  void HandleAccept(const FpAccept& m);
  void HandleCommit(const FpCommit& m);
  void HandleEntries(const FpEntries& m);
  // Moves to fast ballot `ballot`, whose votes start at `fast_from`: votes
  // of older ballots from there on are cast again in it.
  void Realign(uint64_t fast_from, uint64_t ballot, std::vector<Entry>* displaced);

  // fast_paxos_view_change.cc
  void OnViewTimeout();
  void BeginViewChange(uint64_t view);
  // A message of view `view` from a coordinator: false if it is to be
  // ignored (older view); joins a newer view or ends our change.
  bool AcceptsView(uint64_t view, uint32_t from);
  void EnterNormal();
  void HandleViewChange(const FpViewChange& m);
  void AskReport(uint32_t replica);
  void SendReport(uint32_t to, uint64_t from_slot);
  void HandleReport(const FpReport& m);
  void FinishViewChange();

  transport::Transport* transport_;
  const FastPaxosConfig config_;
  const uint32_t index_;
  App* app_;
  ReplyBatcher replies_;
  Log log_;
  uint64_t view_ = 0;
  bool normal_ = true;
  uint64_t next_slot_ = 1;
  // Our fast ballot and the first slot it votes in.
  uint64_t fast_ballot_ = 0;
  uint64_t fast_from_ = 1;
  // What this replica accepted at each undecided slot (a vote or a classic
  // entry), with its ballot.
  std::map<uint64_t, Entry> accepted_;
  absl::flat_hash_map<RequestId, uint64_t> accepted_at_;  // request -> slot
  FpVote votes_out_;  // follower: votes not sent yet
  // Follower: the newest classic ballot taken and the last slot taken in it.
  uint64_t accept_ballot_ = 0;
  uint64_t last_accept_end_ = 0;
  // Requests that arrived during a coordinator change, voted for after it.
  std::vector<std::pair<transport::Address, Request>> held_;

  // Coordinator: votes of the current fast ballot per undecided slot (by
  // replica), the requests any votes named, the classic round (ballot, last
  // slot) and whether it awaits an ack.
  std::map<uint64_t, std::array<absl::optional<RequestId>, 3>> votes_;
  std::map<RequestId, Entry> known_;
  // Highest slot each acceptor voted in (current ballot): one that voted
  // past a slot without voting in it never will (votes go out in slot order).
  std::array<uint64_t, 3> max_vote_{};
  uint64_t classic_ballot_ = 0;
  uint64_t classic_end_ = 0;
  bool classic_pending_ = false;
  int stalled_ticks_ = 0;
  uint64_t chosen_at_last_tick_ = 0;

  // New coordinator during a change: its base (chosen log end) and each
  // replica's report so far (entries by slot, next slot to ask, complete).
  struct Report {
    std::map<uint64_t, Entry> entries;
    uint64_t next = 0;
    bool done = false;
  };
  uint64_t change_base_ = 0;
  std::map<uint32_t, Report> reports_;

  FastPaxosStats stats_;
  transport::Timeout heartbeat_;
  transport::Timeout view_timeout_;
};

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_FAST_PAXOS_REPLICA_H_
