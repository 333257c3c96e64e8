// ShipServer: the machine side of transaction shipping (ship.h). Each of its
// workers is a thread with two endpoints: a ship endpoint, on whose rings
// clients send ShipRequests, and a coordinator (tx::TxClient) whose local
// participant is this machine's, so a procedure's LOCK / COMMIT-PRIMARY /
// TRUNCATE on objects this machine is primary of are function calls and only
// the backups get messages. A worker runs one shipped transaction at a time,
// inside its ship endpoint's handler: the coordinator's endpoint is another
// one, so a transaction waiting for a backup never re-enters the ship handler,
// and the machine's participant server thread (tx::TxMachine) keeps serving
// other coordinators meanwhile.
//
// Exactly once: the reply to every request that ran is remembered by its
// request id (the TxId it ran under). A retry (the client lost the reply)
// gets the remembered reply; requests of one client to one worker share a
// ring, served in order, so a retry is never served before the first copy.
// A request for another configuration than the machine's is refused
// (Unavailable) before it runs, so a shipped transaction runs in exactly the
// configuration the client named: a client whose executing machine failed
// can then tell from the participants' answers (OUTCOME) that it never
// committed (shipper.h).
//
// Example:
//   auto procs = std::make_shared<ProcedureRegistry<ShmFabric>>();
//   procs->Register(kTransfer, "transfer", Transfer);
//   auto ship = ShipServer<ShmFabric>::Create(fabric, &table, &machine.participant(), procs, {.workers = 2});
//   (*ship)->WithWorker(0, [&](auto& ship_ep, auto& coordinator) { ...wire rings... });
//   (*ship)->Start();
#ifndef DCTK_FARM_CLIENT_SHIP_SERVER_H_
#define DCTK_FARM_CLIENT_SHIP_SERVER_H_

#include <sched.h>

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "farm/client/ship.h"
#include "farm/core/region_table.h"
#include "farm/fabric/fabric.h"
#include "farm/msg/rpc.h"
#include "farm/tx/participant.h"
#include "farm/tx/transaction.h"

namespace dctk::farm::client {

struct ShipServerOptions {
  int workers = 1;
  // Coordinator slots first_slot.. (tx::TxClient::EndpointId): apart from
  // other coordinators on the machine.
  uint32_t first_slot = 128;
  size_t remembered = 1 << 16;  // replies kept for retries
  tx::TxClientOptions tx;
  // Fault injection: the request runs and its reply is remembered, but none
  // is sent (lost), so the client retries.
  std::function<bool(const ShipRequest&)> lose_reply;
  // Fault injection: the request runs, but its reply is neither sent nor
  // remembered, as when the machine's process restarts right after the
  // commit (remembered replies live in its memory). Called outside the
  // server's lock, on the worker's thread (a test may hold it there).
  std::function<bool(const ShipRequest&)> forget_reply;
};

struct ShipServerStats {
  uint64_t ran = 0, committed = 0, aborted = 0, failed = 0;
  uint64_t retries_answered = 0;  // answered from the remembered replies
  uint64_t refused_config = 0;    // another configuration than the machine's: not run
  uint64_t lost_replies = 0;      // lose_reply / forget_reply, or the coordinator crashed (fault injection)
  uint64_t coordinator_rpcs = 0, coordinator_local_calls = 0;  // the workers' protocol messages / fast-path calls
};

template <typename F>
  requires fabric::Fabric<F>
class ShipServer {
 public:
  // Prepares worker `w`'s coordinator before each request it runs (on the
  // worker's thread), e.g. wires it to machines that joined since.
  using Prepare = std::function<absl::Status(int w, tx::TxClient<F>& coordinator)>;

  static absl::StatusOr<std::unique_ptr<ShipServer>> Create(F& fabric, const RegionTable* table,
                                                            tx::Participant* local,
                                                            std::shared_ptr<const ProcedureRegistry<F>> procedures,
                                                            ShipServerOptions o, Prepare prepare = nullptr) {
    if (o.workers < 1 || o.workers > 64) {
      return absl::InvalidArgumentError(absl::StrCat("ShipServer: workers must be 1..64, not ", o.workers));
    }
    std::unique_ptr<ShipServer> s(new ShipServer(fabric, local, std::move(procedures), std::move(o),
                                                 std::move(prepare)));
    for (int w = 0; w < s->o_.workers; ++w) {
      auto worker = std::make_unique<Worker>();
      auto q = fabric.CreateQueue();
      if (!q.ok()) return q.status();
      worker->queue = std::move(*q);
      worker->endpoint = std::make_unique<msg::RpcEndpoint<F>>(fabric, worker->queue.get(),
                                                               ShipEndpointId(fabric.machine_id(), w));
      auto c = tx::TxClient<F>::Create(fabric, s->o_.first_slot + w, table, &worker->config, local, s->o_.tx);
      if (!c.ok()) return c.status();
      worker->coordinator = std::move(*c);
      Worker* raw = worker.get();
      ShipServer* self = s.get();
      worker->endpoint->Register(kShipHandler, [self, raw, w](fabric::MachineId, absl::Span<const uint8_t> bytes) {
        return self->Run(w, *raw, absl::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
      });
      s->workers_.push_back(std::move(worker));
    }
    return s;
  }
  ~ShipServer() { Stop(); }

  int workers() const { return o_.workers; }

  // Runs fn(ship_endpoint, coordinator) while worker `w` is not polling
  // (wiring rings to clients and to machines).
  template <typename Fn>
  absl::Status WithWorker(int w, Fn fn) {
    Worker& worker = *workers_.at(w);
    absl::MutexLock l(&worker.mu);
    return fn(*worker.endpoint, *worker.coordinator);
  }

  // Runs fn(ship_endpoint) on worker `w`'s thread before its next poll,
  // without waiting for the request it runs now (which may wait for a
  // recovery that waits for the caller): dropping a departed client's rings.
  void OnWorkerThread(int w, std::function<void(msg::RpcEndpoint<F>&)> fn) {
    Worker& worker = *workers_.at(w);
    absl::MutexLock l(&worker.pending_mu);
    worker.pending.push_back(std::move(fn));
    worker.has_pending.store(true, std::memory_order_release);
  }

  void Start() {
    for (auto& w : workers_) {
      if (w->thread.joinable()) continue;
      w->stop.store(false);
      Worker* raw = w.get();
      w->thread = std::thread([raw] { Serve(*raw); });
    }
  }
  // Stops serving (a stopped server looks dead: shipped calls time out).
  void Stop() {
    for (auto& w : workers_) w->stop.store(true);
    for (auto& w : workers_) {
      if (w->thread.joinable()) w->thread.join();
    }
  }

  ShipServerStats stats() {
    ShipServerStats out;
    {
      absl::MutexLock l(&mu_);
      out = stats_;
    }
    for (auto& w : workers_) {
      absl::MutexLock l(&w->mu);
      out.coordinator_rpcs += w->coordinator->stats().rpc_calls;
      out.coordinator_local_calls += w->coordinator->stats().fast_path_calls;
    }
    return out;
  }

 private:
  struct Worker {
    std::unique_ptr<typename F::Queue> queue;
    std::unique_ptr<msg::RpcEndpoint<F>> endpoint;
    // The configuration of the request being run: the coordinator's only one.
    std::atomic<uint64_t> config{0};
    std::unique_ptr<tx::TxClient<F>> coordinator;
    absl::Mutex mu;
    std::atomic<bool> stop{false};
    std::thread thread;
    // OnWorkerThread's, run before the next poll.
    absl::Mutex pending_mu;
    std::vector<std::function<void(msg::RpcEndpoint<F>&)>> pending ABSL_GUARDED_BY(pending_mu);
    std::atomic<bool> has_pending{false};
  };

  ShipServer(F& fabric, tx::Participant* local, std::shared_ptr<const ProcedureRegistry<F>> procedures,
             ShipServerOptions o, Prepare prepare)
      : fabric_(fabric), local_(local), procedures_(std::move(procedures)), o_(std::move(o)),
        prepare_(std::move(prepare)) {}

  static void Serve(Worker& w) {
    int idle = 0;
    while (!w.stop.load(std::memory_order_relaxed)) {
      absl::StatusOr<int> n;
      {
        absl::MutexLock l(&w.mu);
        if (w.has_pending.load(std::memory_order_acquire)) RunPending(w);
        n = w.endpoint->Poll();
      }
      if (n.ok() && *n > 0) {
        idle = 0;
      } else if (++idle > 16) {
        sched_yield();  // 2-core machines: let the other threads run
      }
    }
  }

  static void RunPending(Worker& w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(w.mu) {
    std::vector<std::function<void(msg::RpcEndpoint<F>&)>> todo;
    {
      absl::MutexLock l(&w.pending_mu);
      todo.swap(w.pending);
      w.has_pending.store(false, std::memory_order_relaxed);
    }
    for (auto& fn : todo) fn(*w.endpoint);
  }

  static std::string Answer(absl::Status s, std::string result, uint64_t config) {
    return Encode(ShipReply{static_cast<int>(s.code()), std::string(s.message()), std::move(result), config, false});
  }

  // Handler of one ShipRequest, on worker `w`'s thread (its mutex held).
  std::string Run(int w, Worker& worker, absl::string_view bytes) {
    if (crashed_.load()) {
      worker.endpoint->DropResponse();  // a crashed coordinator's machine answers nothing
      return std::string();
    }
    const uint64_t config = local_->config();
    absl::StatusOr<ShipRequest> req = DecodeShipRequest(bytes);
    if (!req.ok()) return Answer(req.status(), "", config);
    {
      absl::MutexLock l(&mu_);
      if (auto it = replies_.find(req->id); it != replies_.end()) {
        ++stats_.retries_answered;
        ShipReply again = *DecodeShipReply(it->second);
        again.remembered = true;
        return Encode(again);
      }
    }
    if (req->config != config) {
      absl::MutexLock l(&mu_);
      ++stats_.refused_config;
      return Answer(absl::UnavailableError(absl::StrCat("machine ", fabric_.machine_id(), " is in configuration ",
                                                        config, ", the shipped transaction named ", req->config)),
                    "", config);
    }
    const Procedure<F>* proc = procedures_->Find(req->procedure);
    if (proc == nullptr) {
      return Answer(absl::InvalidArgumentError(absl::StrCat("machine ", fabric_.machine_id(),
                                                            " has no procedure ", req->procedure)),
                    "", config);
    }
    if (prepare_) {
      if (absl::Status s = prepare_(w, *worker.coordinator); !s.ok()) {
        return Answer(absl::UnavailableError(absl::StrCat("machine ", fabric_.machine_id(),
                                                          " could not prepare its coordinator: ", s.message())),
                      "", config);
      }
    }
    worker.config.store(req->config, std::memory_order_release);
    // The client's watermark: its requests before it are settled (shipper.h;
    // Commit returns once every TRUNCATE of this one was acknowledged, so a
    // later request's watermark passes no record of it).
    tx::Transaction<F> t = worker.coordinator->Begin(req->id, req->watermark);
    absl::StatusOr<std::string> result = (*proc)(t, req->args);
    absl::Status s;
    if (result.ok()) {
      s = t.Commit();
    } else {
      t.Abort();
      s = result.status();
    }
    if (absl::IsCancelled(s)) {
      // The coordinator "crashed" (fault injection, TxClientOptions::crash_before):
      // from now on this server answers nothing, as its machine would not.
      crashed_.store(true);
      absl::MutexLock l(&mu_);
      ++stats_.lost_replies;
      worker.endpoint->DropResponse();
      return std::string();
    }
    std::string reply = Answer(s, s.ok() ? std::move(*result) : std::string(), config);
    const bool forget = o_.forget_reply && o_.forget_reply(*req);
    absl::MutexLock l(&mu_);
    ++stats_.ran;
    ++(s.ok() ? stats_.committed : absl::IsAborted(s) ? stats_.aborted : stats_.failed);
    if (forget) {
      ++stats_.lost_replies;
      worker.endpoint->DropResponse();
      return reply;
    }
    replies_.emplace(req->id, reply);
    order_.push_back(req->id);
    while (order_.size() > o_.remembered) {
      replies_.erase(order_.front());
      order_.pop_front();
    }
    if (o_.lose_reply && o_.lose_reply(*req)) {
      ++stats_.lost_replies;
      worker.endpoint->DropResponse();
    }
    return reply;
  }

  F& fabric_;
  tx::Participant* local_;
  const std::shared_ptr<const ProcedureRegistry<F>> procedures_;
  const ShipServerOptions o_;
  const Prepare prepare_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> crashed_{false};
  absl::Mutex mu_;
  absl::flat_hash_map<tx::TxId, std::string> replies_ ABSL_GUARDED_BY(mu_);
  std::deque<tx::TxId> order_ ABSL_GUARDED_BY(mu_);
  ShipServerStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dctk::farm::client

#endif  // DCTK_FARM_CLIENT_SHIP_SERVER_H_
