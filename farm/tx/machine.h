// TxMachine: a FaRM machine's participant served over message rings. One
// server thread polls the machine's RPC endpoint (rings from every
// coordinator) and runs the commit-protocol handlers of its Participant
// (participant.h). Template on the fabric (no virtual call per message).
//
// Endpoints are identified apart from fabric machines (several coordinator
// threads live on one machine): WireEndpoints joins any two endpoints with a
// ring each way, registered on the receiving fabric.
//
// Example:
//   TxMachine<ShmFabric> m(*fabric, &table, std::move(log));
//   m.participant().HostRegion(7, base, size);
//   m.WithEndpoint([&](auto& ep) { return WireEndpoints(client_ep, *cf, ep, *fabric, 1 << 18); });
//   m.Start();   // serves until Stop() or destruction
// With CheckpointOptions, the server thread also checkpoints the participant
// every so many log bytes (the log before each checkpoint is deleted).
//
// Group commit (kEveryRecord): the server thread runs the handlers of every
// request one poll of its rings found (all coordinators'), each appending its
// record, then syncs the log once and only then sends their replies.
// Requests arriving during that fdatasync wait in the rings and form the
// next batch; a lone request is synced and answered at once.
#ifndef DCTK_FARM_TX_MACHINE_H_
#define DCTK_FARM_TX_MACHINE_H_

#include <sched.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "farm/core/region_table.h"
#include "farm/fabric/fabric.h"
#include "farm/msg/rpc.h"
#include "farm/tx/participant.h"
#include "farm/tx/tx_log.h"
#include "farm/tx/wire.h"
#include "glog/logging.h"

namespace dctk::farm::tx {

// Joins endpoints `a` (on fabric fa) and `b` (on fb) with a ring each way of
// `ring_size` bytes. Endpoint ids (RpcEndpoint::machine()) name the peers;
// the fabrics' machine ids address the memory.
template <typename F>
absl::Status WireEndpoints(msg::RpcEndpoint<F>& a, F& fa, msg::RpcEndpoint<F>& b, F& fb,
                           uint64_t ring_size) {
  auto a_inbox = fa.Register(ring_size);
  auto b_inbox = fb.Register(ring_size);
  auto a_heads = fa.Register(4096);
  auto b_heads = fb.Register(4096);
  for (const auto* r : {&a_inbox, &b_inbox, &a_heads, &b_heads}) {
    if (!r->ok()) return r->status();
  }
  const fabric::MachineId ma = fa.machine_id(), mb = fb.machine_id();
  absl::Status s = a.AddPeer(b.machine(), static_cast<uint8_t*>(a_inbox->base), ring_size,
                             {mb, b_heads->key, 0}, {mb, b_inbox->key, 0}, ring_size,
                             static_cast<const uint64_t*>(a_heads->base));
  if (!s.ok()) return s;
  return b.AddPeer(a.machine(), static_cast<uint8_t*>(b_inbox->base), ring_size, {ma, a_heads->key, 0},
                   {ma, a_inbox->key, 0}, ring_size, static_cast<const uint64_t*>(b_heads->base));
}

// Periodic checkpoints (checkpoint.h): once `every_log_bytes` of log records
// were appended since the last one, the server thread writes a checkpoint to
// `path` between requests, and the log before it is deleted.
struct CheckpointOptions {
  std::string path;              // empty: no checkpoints
  uint64_t every_log_bytes = 0;  // 0: no checkpoints
  bool sync = false;             // fdatasync the checkpoint before the rename
};

template <typename F>
  requires fabric::Fabric<F>
class TxMachine {
 public:
  // The machine's server endpoint id is its fabric machine id.
  static absl::StatusOr<std::unique_ptr<TxMachine>> Create(F& fabric, const RegionTable* table,
                                                           std::unique_ptr<TxLog> log,
                                                           CheckpointOptions checkpoints = {}) {
    auto queue = fabric.CreateQueue();
    if (!queue.ok()) return queue.status();
    return std::unique_ptr<TxMachine>(
        new TxMachine(fabric, table, std::move(log), std::move(*queue), std::move(checkpoints)));
  }
  ~TxMachine() { Stop(); }

  Participant& participant() { return participant_; }
  TxLog& log() { return *log_; }
  fabric::MachineId id() const { return fabric_.machine_id(); }

  // Runs `fn(endpoint)` while the server thread is not polling (wiring).
  template <typename Fn>
  absl::Status WithEndpoint(Fn fn) {
    absl::MutexLock l(&mu_);
    return fn(endpoint_);
  }

  void Start() {
    if (thread_.joinable()) return;
    stop_.store(false);
    thread_ = std::thread([this] { Serve(); });
  }
  // Stops serving (a stopped machine looks dead to coordinators: their calls time out).
  void Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  // Fault injection: a stalled machine's server thread handles nothing (its
  // messages wait in the rings) but the machine is otherwise alive, as one
  // whose CPU something else took: a slow machine, not a dead one.
  void SetStalled(bool stalled) { stalled_.store(stalled); }
  // Fault injection (farmd --crash_after): called on the server thread with
  // each request's handler id once it was handled (its record logged, its
  // locks taken or writes applied), before its reply is sent. Set before Start.
  void SetAfterHandling(std::function<void(Handler)> fn) { after_handling_ = std::move(fn); }
  uint64_t served() const { return served_.load(std::memory_order_relaxed); }
  uint64_t checkpoints() const { return checkpoints_.load(std::memory_order_relaxed); }

 private:
  TxMachine(F& fabric, const RegionTable* table, std::unique_ptr<TxLog> log,
            std::unique_ptr<typename F::Queue> queue, CheckpointOptions checkpoints)
      : fabric_(fabric),
        checkpoint_options_(std::move(checkpoints)),
        log_(std::move(log)),
        participant_(fabric.machine_id(), table, log_.get()),
        queue_(std::move(queue)),
        endpoint_(fabric, queue_.get(), fabric.machine_id()) {
    Handle<LockRequest>(kLock, DecodeLockRequest, [this](const LockRequest& r) { return participant_.Lock(r); });
    Handle<LockRequest>(kCommitBackup, DecodeLockRequest,
                        [this](const LockRequest& r) { return participant_.CommitBackup(r); });
    Handle<TxRequest>(kCommitPrimary, DecodeTxRequest,
                      [this](const TxRequest& r) { return participant_.CommitPrimary(r); });
    Handle<TxRequest>(kAbort, DecodeTxRequest, [this](const TxRequest& r) { return participant_.Abort(r); });
    Handle<TxRequest>(kTruncate, DecodeTxRequest, [this](const TxRequest& r) { return participant_.Truncate(r); });
    Handle<TxRequest>(kOutcome, DecodeTxRequest,
                      [this](const TxRequest& r) { return participant_.QueryOutcome(r); });
    Handle<AllocRequest>(kAlloc, DecodeAllocRequest,
                         [this](const AllocRequest& r) { return participant_.Alloc(r); });
    // (kNever: nothing to wait for, each reply leaves after its handler.)
    if (log_->policy() == FsyncPolicy::kEveryRecord) {
      endpoint_.set_before_responses([this] { participant_.SyncLog(); });
    }
  }

  template <typename Req, typename Decode, typename Fn>
  void Handle(uint16_t id, Decode decode, Fn fn) {
    endpoint_.Register(id, [this, id, decode, fn](fabric::MachineId,
                                                  absl::Span<const uint8_t> bytes) {
      absl::StatusOr<Req> req =
          decode(absl::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
      std::string reply = Encode(req.ok() ? fn(*req) : ReplyFrom(req.status()));
      if (after_handling_) after_handling_(static_cast<Handler>(id));
      return reply;
    });
  }

  void Serve() {
    const Participant::BatchedReplies batch(participant_);  // synced in before_responses
    int idle = 0;
    while (!stop_.load(std::memory_order_relaxed)) {
      if (stalled_.load(std::memory_order_relaxed)) {
        absl::SleepFor(absl::Milliseconds(1));
        continue;
      }
      absl::StatusOr<int> n;
      {
        absl::MutexLock l(&mu_);
        n = endpoint_.Poll();
      }
      if (n.ok() && *n > 0) {
        served_.fetch_add(*n, std::memory_order_relaxed);
        idle = 0;
      } else if (++idle > 16) {
        sched_yield();  // 2-core machines: let coordinators run
      }
      MaybeCheckpoint();
    }
  }

  void MaybeCheckpoint() {
    const CheckpointOptions& o = checkpoint_options_;
    if (o.path.empty() || o.every_log_bytes == 0) return;
    const uint64_t logged = participant_.logged_bytes();
    if (logged - logged_at_checkpoint_ < o.every_log_bytes) return;
    logged_at_checkpoint_ = logged;
    absl::StatusOr<CheckpointReport> r = participant_.TakeCheckpoint(o.path, o.sync);
    // A failed checkpoint only keeps more log (nothing is trimmed); retried
    // after as many bytes again.
    LOG_IF(ERROR, !r.ok()) << "machine " << id() << ": checkpoint: " << r.status();
    if (r.ok()) checkpoints_.fetch_add(1, std::memory_order_relaxed);
  }

  F& fabric_;
  const CheckpointOptions checkpoint_options_;
  uint64_t logged_at_checkpoint_ = 0;  // server thread only
  std::atomic<uint64_t> checkpoints_{0};
  std::unique_ptr<TxLog> log_;
  Participant participant_;
  std::unique_ptr<typename F::Queue> queue_;
  absl::Mutex mu_;
  msg::RpcEndpoint<F> endpoint_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> stalled_{false};
  std::function<void(Handler)> after_handling_;
  std::atomic<uint64_t> served_{0};
  std::thread thread_;
};

}  // namespace dctk::farm::tx

#endif  // DCTK_FARM_TX_MACHINE_H_
