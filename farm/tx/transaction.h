// Transactions over FaRM's shared address space: strictly serializable,
// optimistic (FaRM, SOSP'15).
//
// A TxClient is one coordinator thread on one machine: its fabric queue, its
// RPC endpoint (rings to every machine's TxMachine) and its region-table
// cache. Begin() starts a Transaction:
//   Read(addr, len)    one-sided read of the object at its primary; the
//                      version seen is recorded (a locked or torn copy is
//                      read again; one still locked aborts the transaction)
//   Write(addr, data)  buffered (the object is read first if it was not)
//   Alloc(bytes, near) a slot reserved at the primary of near's region
//                      (locality hint); without a hint in a region on this
//                      machine, the next region (then other machines')
//                      tried while one is full
//   Free(addr)         buffered
//   Commit()           LOCK the write set at the primaries (log records on
//                      the rings), VALIDATE the other reads with one-sided
//                      reads, COMMIT-BACKUP to every backup, COMMIT-PRIMARY,
//                      TRUNCATE; each step's messages go to all its machines
//                      at once, and the next step starts once all replied.
//                      Reported committed once every backup has logged the
//                      writes and a primary has applied them.
// A transaction with no writes is read-only: it validates its reads (one
// object needs no validation) and never locks, so it never aborts writers.
// When this machine is the primary of an object, LOCK / COMMIT-PRIMARY go to
// the local Participant directly (the single-machine fast path).
//
// Errors of Commit (and of Read/Write/Alloc, which end the transaction):
//   Aborted           a conflict (locked, version changed); retry
//   Unavailable       the configuration changed or a machine is unreachable
//                     before anything was logged at a backup: not committed
//   DeadlineExceeded  a machine did not answer before anything was logged at
//                     a backup (or, with give_up_on_new_config, the
//                     configuration changed while waiting): not committed
//   Unknown           the outcome could not be learned before the deadline
//   FailedPrecondition / NotFound / OutOfRange / ResourceExhausted:
//                     a freed or invalid address, full region(s)
//   InvalidArgument   a caller's mistake caught before any message (a size
//                     out of range, a misaligned address): the transaction
//                     goes on
// A transaction destroyed before Commit or Abort is aborted.
//
// Truncation (wire.h): every message carries the coordinator's watermark,
// its lowest transaction not finished yet, so participants forget the
// outcomes below it. A transaction is finished once it aborted (its ABORTs
// follow its LOCKs on the same rings), or committed and every participant
// acknowledged its TRUNCATE (so none holds a record recovery would decide
// from outcomes) or left the configuration. A TRUNCATE that failed is sent
// again (current configuration) at a later commit; a transaction whose
// outcome stayed Unknown is asked about at later commits once the
// configuration changed (a recovery decided it). One whose coordinator
// stopped dead (crash_before) holds the watermark.
//
// Example:
//   auto tx = client->Begin();
//   absl::StatusOr<std::string> a = tx.Read(from, 8);
//   tx.Write(from, new_a);
//   tx.Write(to, new_b);
//   absl::Status s = tx.Commit();   // Aborted: retry
#ifndef DCTK_FARM_TX_TRANSACTION_H_
#define DCTK_FARM_TX_TRANSACTION_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"
#include "farm/core/address.h"
#include "farm/core/region_table.h"
#include "farm/fabric/fabric.h"
#include "farm/msg/rpc.h"
#include "farm/tx/participant.h"
#include "farm/tx/wire.h"

namespace dctk::farm::tx {

// Where a commit is in the protocol; fault-injection hooks are called with it.
enum class CommitStep : uint8_t { kLock, kValidate, kCommitBackup, kCommitPrimary, kTruncate };
const char* CommitStepName(CommitStep s);

// Per-phase time of the last commit, and counters.
struct CommitTimes {
  absl::Duration lock, validate, commit_backup, commit_primary, truncate;
};
struct TxClientStats {
  uint64_t committed = 0, read_only = 0, aborted = 0, unavailable = 0, unknown = 0;
  uint64_t fast_path_calls = 0, rpc_calls = 0, reads = 0, read_retries = 0;
  uint64_t suspected = 0;  // machines reported through TxClientOptions::suspect
  uint64_t gave_up = 0;    // calls ended by give_up_on_new_config
};

struct TxClientOptions {
  absl::Duration rpc_timeout = absl::Seconds(2);
  // A call stops waiting for its answer as soon as the configuration this
  // coordinator follows is no longer the one its request carries (recovery
  // installed a new one, e.g. without the machine that was to answer),
  // instead of waiting out rpc_timeout: the commit goes on as after a
  // timeout (not committed if no backup logged it, else the outcome is asked
  // for), and no ABORT goes to a machine that holds no replica in the current
  // configuration (it was removed: recovery released what it held).
  bool give_up_on_new_config = false;
  // How long a coordinator whose COMMIT-BACKUP or COMMIT-PRIMARY was refused
  // or not answered keeps resending it (idempotent) while asking the
  // machines whether recovery decided the transaction.
  absl::Duration outcome_timeout = absl::Seconds(10);
  // A machine that has not answered a resent COMMIT-BACKUP or COMMIT-PRIMARY
  // for `suspect_after` is reported through `suspect` (once per commit):
  // farmd clients tell the CM (Suspect), which stops renewing that machine's
  // lease, so recovery decides the commit about a lease later instead of it
  // ending Unknown while a slow machine keeps renewing its lease. Null: not
  // reported.
  std::function<void(fabric::MachineId machine)> suspect;
  absl::Duration suspect_after = absl::Seconds(1);
  // Reads of a locked object before the transaction aborts.
  int max_locked_reads = 256;
  // Torn copies of one object before the read gives up (a read longer than
  // its object never sees matching line versions).
  int max_torn_reads = 1000;
  // Yield the CPU while waiting for an RPC response: right when polling
  // threads outnumber cores (this 2-core VM); spin (false) with a core each.
  bool yield_while_waiting = true;
  // Fault injection: called before each step's message to `target`. A step's
  // messages go out at once, in machine order, each right after its call
  // (VALIDATE: one call with target 0, before its reads); then the replies
  // are awaited. Returning true makes the coordinator stop dead there (as if
  // its machine crashed): `target` and the machines after it never get the
  // step's message, those before it have it handled (their replies are
  // awaited, not acted on), and Commit returns Cancelled.
  std::function<bool(CommitStep step, fabric::MachineId target)> crash_before;
  // Whether this coordinator may still coordinate, asked at each Read, Alloc
  // and Commit before any message: a non-OK status ends the transaction with
  // it (FarmClient: FailedPrecondition once the CM removed the client). Null:
  // always.
  std::function<absl::Status()> admit;
  // What tells this coordinator from an earlier process under the same
  // machine id and slot (wire.h Watermark): it must be higher than every
  // earlier one's. Participants start the stream afresh for a higher one
  // and refuse a lower one's LOCK and COMMIT-BACKUP. FarmClient sets the
  // one the CM issued at its Join (cm/config_state.h: strictly increasing,
  // above every start time). 0: the coordinator's start time in
  // microseconds (farmd ship workers, LocalCluster; 64 bits: unlike the
  // sequences' 40-bit circle, it does not wrap, but a process restarted on
  // a host whose clock reads earlier than its predecessor's start is
  // refused as the replaced one).
  uint64_t incarnation = 0;
};

template <typename F>
  requires fabric::Fabric<F>
class TxClient;

// A coordinator's first sequence: its start time in microseconds, so one
// restarted under the same machine and slot comes after what it sent before
// (participants keep its watermark; wire.h TxBefore).
uint64_t FirstTxSequence();
// The default incarnation: now, in microseconds since the epoch.
uint64_t StartIncarnation();

template <typename F>
  requires fabric::Fabric<F>
class Transaction {
 public:
  // One owner: a copy committing under the same TxId would merge with this
  // one at the backups. Moving leaves the source finished.
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  // Aborts a transaction that neither committed nor aborted, releasing the
  // slots its Allocs reserved at the primaries.
  ~Transaction() { Abort(); }

  absl::StatusOr<std::string> Read(GlobalAddress addr, size_t len);
  absl::Status Write(GlobalAddress addr, absl::string_view data);
  absl::StatusOr<GlobalAddress> Alloc(size_t bytes, GlobalAddress near = GlobalAddress());
  absl::Status Free(GlobalAddress addr);
  absl::Status Commit();
  void Abort();

  TxId id() const { return id_; }
  // The watermark this transaction's messages carry (wire.h).
  Watermark watermark() const;
  // The version this transaction read `addr` at (0 if it did not read it):
  // for history checkers.
  uint64_t VersionRead(GlobalAddress addr) const {
    auto it = reads_.find(addr.raw());
    return it == reads_.end() ? 0 : it->second;
  }

 private:
  friend class TxClient<F>;
  Transaction(TxClient<F>* client, TxId id, uint64_t seq, Watermark watermark)
      : client_(client), id_(id), seq_(seq), watermark_(watermark) {}
  // Finished (above): its coordinator's watermark may pass it.
  void Finish();
  // TRUNCATE to `machines` (a committed transaction); those that did not
  // acknowledge it are tried again later, or, for an id chosen elsewhere
  // (whose watermark this coordinator does not hold), now until
  // outcome_timeout. False if the coordinator stopped dead (crash_before).
  // The outcome stayed unknown: the coordinator asks later (SettleUndecided).
  void KeepUndecided(absl::btree_set<fabric::MachineId> participants, uint64_t config);
  // A commit Persist decided (or left Unknown) ends with `decided`: kept for
  // SettleUndecided if Unknown, finished otherwise.
  absl::Status EndPersisted(absl::Status decided,
                            const absl::btree_set<fabric::MachineId>& participants, uint64_t config);
  bool Truncate(const absl::btree_set<fabric::MachineId>& machines, uint64_t config);

  // Ends the transaction: ABORT where it locked or reserved.
  absl::Status Fail(absl::Status s, const std::vector<fabric::MachineId>& locked = {});
  absl::Status LockAll(absl::btree_map<fabric::MachineId, LockRequest>& by_primary,
                       std::vector<fabric::MachineId>* locked);
  absl::Status Validate();
  void AbortAt(const std::vector<fabric::MachineId>& machines);
  // After COMMIT-BACKUP or COMMIT-PRIMARY to `m` failed with `why`: resends
  // it until `m` accepts (nullopt: the commit goes on), or asks every machine
  // meanwhile and returns what recovery decided (OK / Aborted), or Unknown
  // after outcome_timeout.
  template <typename Req>
  absl::optional<absl::Status> Persist(fabric::MachineId m, Handler h, const Req& req, absl::Status why,
                                       uint64_t config);

  TxClient<F>* client_;
  TxId id_;
  uint64_t seq_;    // this coordinator's sequence of id_ (0: an id chosen elsewhere)
  Watermark watermark_;  // an id chosen elsewhere: the watermark its chooser gave
  bool done_ = false;
  absl::flat_hash_map<uint64_t, uint64_t> reads_;      // raw address -> version read
  absl::btree_map<uint64_t, WriteEntry> writes_;       // by raw address (lock order)
  std::vector<fabric::MachineId> reserved_at_;         // primaries holding our ALLOCs
};

template <typename F>
  requires fabric::Fabric<F>
class TxClient {
 public:
  // `slot` distinguishes coordinators on one machine (0..255). `config` is
  // the current configuration id (the CM's); `local` is this machine's
  // participant for the fast path (null for a client-only machine).
  static absl::StatusOr<std::unique_ptr<TxClient>> Create(F& fabric, uint32_t slot, const RegionTable* table,
                                                          const std::atomic<uint64_t>* config,
                                                          Participant* local, TxClientOptions options = {});

  Transaction<F> Begin() {
    open_.insert(++seq_);
    return Transaction<F>(this, MakeTxId(fabric_.machine_id(), slot_, seq_), seq_, 0);
  }
  // A transaction under an id chosen elsewhere, unique cluster-wide: a
  // shipped transaction runs under its request's id (farm/client/ship.h), so
  // the client that shipped it can ask the participants for its outcome.
  // `watermark` is the chooser's truncation point for id's stream, with the
  // chooser's incarnation (wire.h; 0: none): every id of that stream before
  // it is finished.
  Transaction<F> Begin(TxId id, Watermark watermark = {}) {
    return Transaction<F>(this, id, 0, watermark);
  }

  msg::RpcEndpoint<F>& endpoint() { return *endpoint_; }
  fabric::MachineId machine() const { return fabric_.machine_id(); }
  const TxClientStats& stats() const { return stats_; }
  const CommitTimes& last_commit_times() const { return times_; }
  // This coordinator's truncation watermark: its lowest transaction not
  // finished (above).
  Watermark watermark() const {
    return {MakeTxId(fabric_.machine_id(), slot_, open_.empty() ? seq_ + 1 : *open_.begin()),
            incarnation_};
  }
  // This coordinator's incarnation (TxClientOptions::incarnation).
  uint64_t incarnation() const { return incarnation_; }
  TxClientOptions& options() { return options_; }
  // Transactions of this coordinator not finished (above): open ones, and
  // committed or Unknown ones participants may still hold records of.
  size_t unfinished() const { return open_.size(); }
  // Before the coordinator stops for good (FarmClient::Leave): resends the
  // TRUNCATEs not acknowledged and asks the outcomes that stayed Unknown
  // (each at most every rpc_timeout, an Unknown one only once the
  // configuration moved past its own) until none is left or `deadline`;
  // returns unfinished(). Open transactions are not waited for. Between
  // rounds it sleeps until the next retry is due (NextRetry), waking within
  // kConfigCheck when the configuration moves.
  size_t Settle(absl::Time deadline);

  // Endpoint id of coordinator `slot` on `machine` (servers use the machine id).
  static uint32_t EndpointId(fabric::MachineId machine, uint32_t slot) {
    return (1u << 24) | (machine << 8) | (slot & 0xff);
  }

 private:
  friend class Transaction<F>;
  TxClient(F& fabric, uint32_t slot, const RegionTable* table, const std::atomic<uint64_t>* config,
           Participant* local, TxClientOptions options)
      : fabric_(fabric),
        slot_(slot),
        table_(table),
        cache_(table),
        config_(config),
        local_(local),
        options_(std::move(options)),
        incarnation_(options_.incarnation != 0 ? options_.incarnation : StartIncarnation()) {}

  uint64_t config() const { return config_->load(std::memory_order_acquire); }
  absl::Status Admitted() const { return options_.admit ? options_.admit() : absl::OkStatus(); }
  // Sends one request to `machine`'s participant (directly if it is this
  // machine) and waits for its reply: CallAll of one call, no CommitStep (so
  // crash_before is not asked), giving up as GiveUp(req.config) says.
  template <typename Req>
  Reply Call(fabric::MachineId machine, Handler h, const Req& req);
  // One message of a phase: `req` to `machine`.
  template <typename Req>
  struct PhaseCall {
    fabric::MachineId machine;
    const Req* req;
  };
  // A commit phase (FaRM: a step's messages to all its machines at once):
  // `h` with each request to its machine, in order, each right after
  // crash_before(*step, machine) (when `step` is set) said go on; this
  // machine's participant is called directly once the others' messages are
  // out; then every reply is awaited. replies[i] answers to[i]; fewer
  // replies than calls: crash_before stopped the coordinator at
  // to[replies.size()] (what was sent before is answered).
  template <typename Req>
  std::vector<Reply> CallAll(Handler h, absl::Span<const PhaseCall<Req>> to,
                             absl::optional<CommitStep> step = absl::nullopt);
  // `req` to each of `machines`, in their order.
  template <typename Machines, typename Req>
  static std::vector<PhaseCall<Req>> To(const Machines& machines, const Req& req) {
    std::vector<PhaseCall<Req>> to;
    for (fabric::MachineId m : machines) to.push_back({m, &req});
    return to;
  }
  bool IsLocal(fabric::MachineId machine) const {
    return local_ != nullptr && machine == fabric_.machine_id();
  }
  template <typename Req>
  Reply LocalCall(Handler h, const Req& req);
  // A remote call's reply, or its failure as the commit protocol sees it
  // (DeadlineExceeded: no answer; Unavailable: not sent).
  Reply ReplyOf(fabric::MachineId machine, const absl::StatusOr<std::string>& r);
  // With give_up_on_new_config: stop waiting once the configuration is no
  // longer `config`.
  std::function<bool()> GiveUp(uint64_t config) {
    if (!options_.give_up_on_new_config) return nullptr;
    return [this, config] { return this->config() != config; };
  }
  // The regions an Alloc without a hint tries, in order: this machine's,
  // then the others, each list starting at a different one per transaction.
  std::vector<RegionId> RegionsForAlloc();
  // TRUNCATEs not acknowledged yet, sent again once retry_at passed or the
  // configuration changed; a machine that left it is dropped. Then asks the
  // outcome of the undecided transactions.
  void RetryTruncates();
  // When RetryTruncates next has something to do, unless the configuration
  // moves first: the earliest retry_at of the TRUNCATEs (now for those of an
  // older configuration) and of the Unknown outcomes the configuration has
  // moved past; InfiniteFuture when only a new configuration can help.
  absl::Time NextRetry() const;
  // How often Settle looks for a new configuration while it sleeps (nothing
  // signals one: another thread, e.g. FarmClient's lease renewals, stores
  // config_).
  static constexpr absl::Duration kConfigCheck = absl::Milliseconds(1);
  // A transaction whose outcome stayed Unknown: once the configuration moved
  // past its own, a recovery decided it; OUTCOME tells which (committed: its
  // TRUNCATEs go out; aborted or no record survived: finished).
  void SettleUndecided();
  // Unavailable if this coordinator has no ring to a machine holding a copy
  // of `region` (one that joined after the rings were wired: Refresh wires it).
  absl::Status CheckRings(const RegionInfo& region) const;
  // Machines holding a replica of some region in the current table.
  absl::btree_set<fabric::MachineId> ReplicaMachines() const {
    absl::btree_set<fabric::MachineId> machines;
    for (const RegionInfo& r : table_->All()) {
      for (const Replica& rep : r.replicas) machines.insert(rep.machine);
    }
    return machines;
  }

  F& fabric_;
  const uint32_t slot_;
  const RegionTable* table_;
  RegionTable::Cache cache_;
  const std::atomic<uint64_t>* config_;
  Participant* local_;
  TxClientOptions options_;
  const uint64_t incarnation_;
  std::unique_ptr<typename F::Queue> read_queue_;
  std::unique_ptr<typename F::Queue> rpc_queue_;
  std::unique_ptr<msg::RpcEndpoint<F>> endpoint_;
  std::vector<uint64_t> scratch_;
  uint64_t seq_ = FirstTxSequence();
  // Sequences of this coordinator's transactions not finished yet.
  absl::btree_set<uint64_t> open_;
  struct Untruncated {
    absl::btree_set<fabric::MachineId> machines;
    uint64_t config = 0;  // of the last try
    absl::Time retry_at;
  };
  absl::btree_map<uint64_t, Untruncated> untruncated_;  // by sequence
  // Transactions whose outcome stayed Unknown: their participants, config
  // the configuration they ran in, retry_at when to ask again.
  absl::btree_map<uint64_t, Untruncated> undecided_;  // by sequence
  TxClientStats stats_;
  CommitTimes times_;
};

}  // namespace dctk::farm::tx

#include "farm/tx/internal/transaction_impl.h"

#endif  // DCTK_FARM_TX_TRANSACTION_H_
