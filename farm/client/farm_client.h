// FarmClient: the client library of a FaRM cluster run by farmd processes.
// A client is a fabric machine without regions: it reads the configuration
// from the CM service, connects its fabric to every machine, sets up message
// rings with each machine's participant (over the control plane), and then
// runs transactions itself as their coordinator (tx()). One FarmClient per
// thread.
//
// The client joins the CM as a client (leased, never given regions) and
// renews its lease from a thread: if it dies mid-commit, the CM sees the lease
// expire and recovery resolves its transactions (releasing their locks).
// A client whose lease expired while it lived (it missed renewals under
// load) is removed for good: the CM refuses its renewals (and a Join under
// its id), recovery decided its transactions, and the participants refuse
// its LOCKs and ALLOCs. From the refused renewal on, removed() is true and
// every transaction's Read, Alloc and Commit, Ship and Refresh fail with
// FailedPrecondition saying so: make a new FarmClient under a new id.
//
// Its coordinator's incarnation (farm/tx/wire.h Watermark: what tells it
// from an earlier process under its id) is the one the CM issued at its
// Join, higher than every earlier client's under that id whatever the
// hosts' clocks say (FarmClientOptions::tx.incarnation, if set, instead).
//
// Each lease renewal's reply carries the CM's configuration: a newer one
// takes effect for the coordinator at once (region table and configuration
// id), so between refreshes the client stops reading a removed machine's
// copy and stops waiting for a removed machine's answers (the coordinator
// gives up on a call once the configuration changes:
// TxClientOptions::give_up_on_new_config, on by default here). Its rings
// follow at the next Refresh().
//
// Precise membership (FaRM's NEW-CONFIG-ACK): every renewal tells the CM the
// configuration this client follows, and a configuration learned (from a
// renewal's reply or a Refresh) is acknowledged at once by another renewal;
// the CM resumes a region whose primary changed only once every client
// acknowledged or its lease ran out (cm_service.h). And the client fences
// itself (lease_fence.h): with no renewal acknowledged within its lease
// (from when it was sent, less an eighth), every transaction's Read, Alloc
// and Commit fail with Unavailable until a renewal succeeds, so a client
// paused past its lease never reads a removed primary's copy after a write
// committed at the new one. LeaseStatus() is that check, for lock-free
// readers outside transactions (TxHashTableReader over regions()): ask it
// before using what a read returned. A coordinator that resent a commit message to
// a silent machine for suspect_after reports it to the CM (Suspect) through
// this client's CM channel, unless FarmClientOptions::tx.suspect is set.
//
// Leave(): a client that is done leaves the membership instead of waiting
// for its lease to run out (which costs the cluster a reconfiguration and a
// recovery, and retires its id: shm ids are < 256). It stops coordinating,
// settles its transactions (TRUNCATEs resent, Unknown outcomes asked:
// TxClient::Settle, up to FarmClientOptions::leave_settle), waits for every
// machine to have handled what it sent (Drain), stops renewing
// and tells the CM (cm.proto Leave). With nothing unfinished the CM takes it
// out at once without a configuration change, and its id may serve a later
// client; otherwise the CM removes it as failed and recovery decides what it
// left; after a clean one the machines have dropped its rings (UNWIRE) and
// reuse their memory's fabric keys. The destructor leaves if Leave was not
// called (and the client is still a member), unless
// FarmClientOptions::leave_when_destroyed is false.
//
// When a transaction fails with Unavailable (a machine failed, or the
// configuration changed), call Refresh() to learn the new configuration from
// the CM, then retry; Aborted means a conflict (retry at once). Refresh keeps
// the rings in step with the configuration: it wires rings to machines that
// joined since, re-wires a machine whose process changed under the same id
// (a whole-cluster restart brings machines back under their ids at new
// fabric and control addresses), and drops the rings of removed machines
// (their ring memory here is deregistered, so a late write from them fails).
// Re-wiring needs a fabric that can re-point a machine id: net and verbs
// can; shm can once the old process is gone (a restarted machine), and
// refuses while it is still reachable; Refresh then says so
// (FailedPrecondition).
//
// Ship(where, procedure, args) ships a whole transaction to the primary of
// `where`'s region instead (farm/client/ship.h, shipper.h: the machine runs
// it as coordinator with its objects local; farmd --ship_workers); a
// machine without ship workers refuses (FailedPrecondition).
//
// Example:
//   auto client = FarmClient<ShmFabric>::Connect({.machine = 200, .cm_address = cm},
//                                               *ShmFabric::Create({.machine_id = 200}));
//   auto t = (*client)->tx().Begin();
//   absl::StatusOr<GlobalAddress> a = t.Alloc(8);
//   t.Write(*a, "12345678");
//   absl::Status s = t.Commit();
//   auto table = kv::TxHashTable::Create((*client)->tx(),
//                                        kv::TxHashTable::SpreadShards((*client)->regions(), 3),
//                                        {.buckets = 64});
#ifndef DCTK_FARM_CLIENT_FARM_CLIENT_H_
#define DCTK_FARM_CLIENT_FARM_CLIENT_H_

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/optimization.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "farm/client/lease_fence.h"
#include "farm/client/ship.h"
#include "farm/client/ship.pb.h"
#include "farm/client/shipper.h"
#include "farm/cm/cm.pb.h"
#include "farm/cm/config_state.h"
#include "farm/core/region_table.h"
#include "farm/fabric/fabric.h"
#include "farm/server/cm_channel.h"
#include "farm/server/control.h"
#include "farm/server/control.pb.h"
#include "farm/server/install_config.h"
#include "farm/tx/transaction.h"
#include "farm/tx/wire.h"
#include "glog/logging.h"

namespace dctk::farm::client {

struct FarmClientOptions {
  fabric::MachineId machine = 0;  // this client's fabric id: unique, not a storage machine's
  std::string cm_address;
  uint64_t ring_size = 1 << 18;
  absl::Duration wait_ready = absl::Seconds(30);  // for the cluster to finish starting
  // Coordinators stop waiting for an answer once the configuration changes
  // (recovery ran): see farm/README.md, "Coordinators that stop waiting".
  tx::TxClientOptions tx = {.give_up_on_new_config = true};
  ShipperOptions ship;
  // Test hook: called before each lease renewal; false skips it (the lease
  // runs out as if the client stalled).
  std::function<bool()> renew_lease;
  // How long Leave (and the destructor's) settles unfinished transactions.
  absl::Duration leave_settle = absl::Seconds(5);
  // Test hook: false makes the destructor go away as a crashed client does
  // (no Leave: the CM removes it when its lease runs out).
  bool leave_when_destroyed = true;
};

template <typename F>
  requires fabric::Fabric<F>
class FarmClient {
 public:
  static absl::StatusOr<std::unique_ptr<FarmClient>> Connect(FarmClientOptions o, std::unique_ptr<F> fabric) {
    std::unique_ptr<FarmClient> c(new FarmClient(std::move(o), std::move(fabric)));
    absl::Status s = c->Init();
    if (!s.ok()) return s;
    return c;
  }
  ~FarmClient() {
    if (joined_ && !removed() && o_.leave_when_destroyed) {
      absl::Status s = Leave();
      LOG_IF(WARNING, !s.ok()) << s;
    }
    StopRenewing();
    shipper_.reset();
    tx_.reset();
    fabric_.reset();
  }

  tx::TxClient<F>& tx() { return *tx_; }
  // A transaction shipped to the primary of `where` (Shipper::Ship).
  absl::StatusOr<std::string> Ship(GlobalAddress where, ProcedureId procedure, absl::string_view args) {
    if (absl::Status s = RemovedStatus(); !s.ok()) return s;
    return shipper_->Ship(where, procedure, args);
  }
  // Leaves the cluster (above): OK once the CM took this client out with
  // nothing unfinished (its id is free again); FailedPrecondition if it left
  // with transactions unfinished (the CM removed it as failed: recovery
  // decides them), if it left already or the CM had removed it; the CM's
  // error if it could not be told (then the lease runs out: removed as
  // failed). Either way it coordinates nothing more. The client's thread.
  absl::Status Leave() {
    if (absl::Status s = RemovedStatus(); !s.ok()) return s;
    const fabric::MachineId id = fabric_->machine_id();
    Gone(absl::FailedPreconditionError(
        absl::StrCat("client ", id, " left the cluster; make a new FarmClient")));
    const absl::Time deadline = absl::Now() + o_.leave_settle;
    const size_t unfinished = tx_ ? tx_->Settle(deadline) + Drain(deadline) : 0;
    // Drained: the machines may forget this client's rings (with some left
    // unfinished the CM removes it, and the machines drop them then).
    if (unfinished == 0) Unwire(deadline);
    StopRenewing();  // a renewal after the Leave would be refused
    absl::StatusOr<cm::Result> r =
        cm_.Call(cm::LeaveCommand(id, static_cast<uint32_t>(unfinished)));
    if (!r.ok()) {
      return absl::Status(
          r.status().code(),
          absl::StrCat("client ", id, ": Leave: ", r.status().message(),
                       " (it stopped renewing: the CM removes it when its lease runs out)"));
    }
    if (unfinished > 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "client ", id, " left with ", unfinished,
          " transactions unfinished or machines not answering after ",
          absl::FormatDuration(o_.leave_settle), ": the CM removed it as failed at configuration ",
          r->config().id(), " and recovery decides them (id ", id, " is retired)"));
    }
    return absl::OkStatus();
  }
  // The CM removed this client (its lease expired), or it left: it
  // coordinates nothing more (thread-safe).
  bool removed() const { return removed_.load(std::memory_order_acquire); }
  // OK, or why this client may not coordinate (FailedPrecondition).
  absl::Status RemovedStatus() const {
    if (!removed()) return absl::OkStatus();
    absl::MutexLock l(&removed_mu_);
    return removed_status_;
  }
  // OK while a lease renewal acknowledged within the lease keeps this
  // client's configuration current (one clock read, one atomic load);
  // Unavailable when none was (retry: the next renewal reopens it), or
  // RemovedStatus() (thread-safe). Transactions ask it at each Read, Alloc
  // and Commit.
  absl::Status LeaseStatus() const {
    if (ABSL_PREDICT_TRUE(fence_.Open(LeaseFence::Now()))) return absl::OkStatus();
    return FencedStatus();
  }
  // Renewals the CM acknowledged (the Join included), and those sent at
  // once to acknowledge a configuration just learned.
  uint64_t renewals() const { return renewals_.load(); }
  uint64_t acks() const { return acks_.load(); }
  const ShipperStats& ship_stats() const { return shipper_->stats(); }
  // The configuration the coordinator follows: the newest of the last
  // Refresh's and the last lease renewal's (thread-safe).
  uint64_t config_id() const { return config_.load(); }
  // The configuration of the last Refresh (the rings follow it); config_id()
  // may be newer. Not thread-safe: the client's thread only.
  const cm::Configuration& configuration() const { return current_; }
  // Configurations learned from lease renewals between refreshes.
  uint64_t learned_from_lease() const { return learned_from_lease_.load(); }
  // Region placement of the configuration in use (primary and backups of
  // each region), updated by Refresh(): what TxHashTable::SpreadShards and
  // TxHashTableReader take (thread-safe; hot paths read it through a
  // RegionTable::Cache).
  const RegionTable& regions() const { return table_; }

  // Reads the configuration from the CM, starts following it, and brings the
  // rings in line with it: wires machines that joined after this client did,
  // re-wires machines whose fabric endpoint or control address changed (a
  // new process under the same id), drops machines no longer listed. A
  // machine that could not be wired is tried again at the next Refresh; the
  // first error is returned.
  absl::Status Refresh() {
    if (absl::Status s = RemovedStatus(); !s.ok()) return s;
    absl::StatusOr<cm::Configuration> c = FetchConfig();
    if (!c.ok()) return c.status();
    Install(*c);
    return Rewire(*c);
  }

  // What Refresh did to the rings so far.
  struct WiringStats {
    uint64_t wired = 0;    // machines wired (first time)
    uint64_t rewired = 0;  // machines wired again at a new address
    uint64_t dropped = 0;  // removed machines whose rings were dropped
    uint64_t unwired = 0;  // machines that dropped their rings to this client at its Leave
  };
  const WiringStats& wiring_stats() const { return wiring_stats_; }
  // Storage machines with rings each way now, by id.
  std::vector<fabric::MachineId> wired_machines() const {
    std::vector<fabric::MachineId> out;
    for (const auto& [id, w] : wired_) out.push_back(id);
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  FarmClient(FarmClientOptions o, std::unique_ptr<F> fabric)
      : o_(std::move(o)),
        fabric_(std::move(fabric)),
        cm_(o_.cm_address),
        lease_cm_(o_.cm_address) {}

  absl::StatusOr<cm::Configuration> FetchConfig() {
    absl::StatusOr<cm::Result> r = cm_.Call(cm::GetCommand());
    if (!r.ok()) return r.status();
    return r->config();
  }

  // A Refresh's configuration (client thread). One older than what the lease
  // thread installed meanwhile only becomes current_ (the rings follow it).
  void Install(const cm::Configuration& c) {
    bool newer;
    {
      absl::MutexLock l(&install_mu_);
      current_ = c;
      if (c.id() < config_.load()) return;
      newer = c.id() > config_.load();
      server::InstallConfiguration(c, &table_);
      config_.store(c.id());
    }
    if (newer) AckSoon();
  }

  // The lease thread renews at once, acknowledging the configuration.
  void AckSoon() {
    absl::MutexLock l(&lease_mu_);
    ack_due_ = true;
  }

  absl::Status FencedStatus() const {
    if (absl::Status s = RemovedStatus(); !s.ok()) return s;
    const int64_t until = fence_.valid_until();
    return absl::UnavailableError(absl::StrCat(
        "client ", fabric_->machine_id(), ": no lease renewal acknowledged within the lease",
        until == LeaseFence::kNever
            ? std::string()
            : absl::StrCat(" (it ran out ", (LeaseFence::Now() - until) / 1000000, " ms ago)"),
        ": the configuration it follows (", config_.load(),
        ") may be stale, so it reads nothing until the next renewal"));
  }

  // A lease renewal's configuration (lease thread): takes effect for the
  // coordinator if newer. The Get a Refresh would make then returns the same.
  void LearnFromLease(const cm::Configuration& c) {
    {
      absl::MutexLock l(&install_mu_);
      if (c.id() <= config_.load()) return;
      server::InstallConfiguration(c, &table_);
      config_.store(c.id());
      learned_from_lease_.fetch_add(1);
    }
    AckSoon();
  }

  // The lease thread joins, so the Join's reply wakes a thread at the lease's
  // priority, which renews from then on.
  absl::Status JoinAsClient() {
    cm::Command join;
    join.mutable_join()->set_machine(fabric_->machine_id());
    join.mutable_join()->set_endpoint(fabric_->endpoint());
    join.mutable_join()->set_client(true);
    absl::Status joined_status;
    absl::Notification joined;
    lease_thread_ = std::thread([this, &join, &joined_status, &joined] {
      server::PrioritizeLeaseThread(absl::StrCat("client ", fabric_->machine_id()));
      const int64_t sent = LeaseFence::Now();
      absl::StatusOr<cm::Result> r = lease_cm_.Call(join);
      joined_status = r.status();
      const absl::Duration lease =
          absl::Milliseconds(r.ok() ? std::max<int64_t>(3, r->config().lease_ms()) : 0);
      if (r.ok()) {
        fence_.Renewed(sent, lease);
        renewals_.fetch_add(1);
        joined_ = true;
        for (const cm::Machine& m : r->config().machines()) {
          if (m.id() == fabric_->machine_id()) join_incarnation_ = m.incarnation();
        }
      }
      joined.Notify();
      if (r.ok()) RenewLeases(lease);
    });
    joined.WaitForNotification();
    return joined_status;
  }

  // Renews every lease/3, and at once after a configuration was learned (to
  // acknowledge it), until the destructor or the CM's refusal.
  void RenewLeases(absl::Duration lease) {
    const absl::Duration every = lease / 3;
    absl::Time next = absl::Now() + every;
    while (true) {
      bool ack;
      {
        absl::MutexLock l(&lease_mu_);
        lease_mu_.AwaitWithDeadline(absl::Condition(
                                        +[](FarmClient* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(
                                             c->lease_mu_) { return c->stopping_ || c->ack_due_; },
                                        this),
                                    next);
        if (stopping_) return;
        if (!ack_due_ && absl::Now() < next) continue;
        ack = ack_due_;
        ack_due_ = false;
      }
      next = absl::Now() + every;
      if (o_.renew_lease && !o_.renew_lease()) continue;
      cm::Command renew;
      renew.mutable_renew()->set_machine(fabric_->machine_id());
      // Installed before this renewal is sent: what the CM records as acknowledged.
      renew.mutable_renew()->set_applied_config(config_.load());
      const int64_t sent = LeaseFence::Now();
      absl::StatusOr<cm::Result> r = lease_cm_.Call(renew);
      if (absl::IsNotFound(r.status())) return MarkRemoved(r.status());
      if (!r.ok()) {
        // Again soon (lease_cm_ connects again after a transport error): the
        // fence closes at the end of the lease.
        next = absl::Now() + every / 4;
        continue;
      }
      // The configuration the reply carries first: the validity this renewal
      // grants must be used through it (lease_fence.h).
      if (r->has_config()) LearnFromLease(r->config());
      fence_.Renewed(sent, lease);
      renewals_.fetch_add(1);
      if (ack) acks_.fetch_add(1);
    }
  }

  // The CM refused a renewal: it removed this client and recovered its
  // transactions. It never rejoins under this id (the CM refuses that).
  void MarkRemoved(const absl::Status& refused) {
    absl::StatusOr<cm::Result> now = lease_cm_.Call(cm::GetCommand());
    const uint64_t config = now.ok() ? now->config().id() : config_.load();
    absl::Status s = absl::FailedPreconditionError(absl::StrCat(
        "client ", fabric_->machine_id(), " was removed by the CM at configuration ", config,
        ": its lease expired (", refused.message(), "); make a new FarmClient under a new id"));
    LOG(ERROR) << s.message();
    Gone(std::move(s));
  }

  // Machines of the configuration followed whose rings to this client are
  // not known to be drained: an OUTCOME sent after everything else on a ring
  // is answered only once the machine handled all before it (one server
  // thread, rings in order), e.g. an ABORT whose reply timed out, which
  // would otherwise wait in a ring a later client under this id replaces.
  size_t Drain(absl::Time deadline) {
    absl::flat_hash_set<fabric::MachineId> members;
    for (const RegionInfo& r : table_.All()) {
      for (const Replica& rep : r.replicas) members.insert(rep.machine);
    }
    // It carries the final watermark: the participants forget the outcomes below it.
    const tx::Watermark last = tx_->watermark();
    const std::string ask = tx::Encode(tx::TxRequest{config_.load(), last.tx, last});
    const absl::Span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(ask.data()), ask.size());
    size_t silent = 0;
    for (const auto& [m, w] : wired_) {
      if (!members.contains(m)) continue;  // removed: recovery released what it held
      const absl::Duration left = std::max(deadline - absl::Now(), absl::Milliseconds(1));
      if (!tx_->endpoint().Call(m, tx::kOutcome, bytes, left).ok()) ++silent;
    }
    return silent;
  }

  // Before a clean Leave (while this client still holds its id at the CM,
  // so no later process under it has rings to lose): every wired machine
  // drops this client's rings and deregisters their memory (UNWIRE), so
  // its key slots serve later clients. A machine that does not answer
  // keeps them until a later client under the id replaces them.
  void Unwire(absl::Time deadline) {
    server::Unwire u;
    u.set_machine(fabric_->machine_id());
    for (const auto& [m, w] : wired_) {
      const absl::Duration left = std::max(deadline - absl::Now(), absl::Seconds(1));
      absl::StatusOr<std::unique_ptr<server::ControlChannel>> ch =
          server::ControlChannel::Connect(w.control);
      absl::StatusOr<std::string> r =
          ch.ok() ? (*ch)->Call(server::UNWIRE, u.SerializeAsString(), left) : ch.status();
      if (r.ok()) {
        ++wiring_stats_.unwired;
      } else {
        LOG(WARNING) << "client " << fabric_->machine_id() << ": machine " << m
                     << " keeps its rings (UNWIRE: " << r.status() << ")";
      }
    }
  }

  // From now on this client coordinates nothing: RemovedStatus() is `why`.
  void Gone(absl::Status why) {
    fence_.Remove();
    absl::MutexLock l(&removed_mu_);
    removed_status_ = std::move(why);
    removed_.store(true, std::memory_order_release);
  }

  void StopRenewing() {
    {
      absl::MutexLock l(&lease_mu_);
      stopping_ = true;
    }
    if (lease_thread_.joinable()) lease_thread_.join();
  }

  absl::Status Init() {
    absl::Status joined = JoinAsClient();
    if (!joined.ok()) return joined;
    const absl::Time deadline = absl::Now() + o_.wait_ready;
    absl::StatusOr<cm::Configuration> c = FetchConfig();
    while (!c.ok() && absl::IsUnavailable(c.status()) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));  // the cluster is starting: poll the CM
      c = FetchConfig();
    }
    if (!c.ok()) return c.status();
    Install(*c);
    tx::TxClientOptions txo = o_.tx;
    if (txo.incarnation == 0) txo.incarnation = IssuedIncarnation(*c);
    if (!txo.suspect)
      txo.suspect = [this](fabric::MachineId m) { cm_.Suspect(m, fabric_->machine_id()); };
    txo.admit = [this] { return LeaseStatus(); };
    auto t = tx::TxClient<F>::Create(*fabric_, 0, &table_, &config_, nullptr, std::move(txo));
    if (!t.ok()) return t.status();
    tx_ = std::move(*t);
    ShipperHooks hooks;
    hooks.refresh = [this] { return Refresh(); };
    hooks.machines = [this] {
      std::vector<fabric::MachineId> out;
      for (const cm::Machine& m : current_.machines()) {
        if (!m.client()) out.push_back(m.id());
      }
      return out;
    };
    hooks.workers = [this](fabric::MachineId m) {
      auto it = ship_workers_.find(m);
      return it == ship_workers_.end() ? 0 : it->second;
    };
    shipper_ = std::make_unique<Shipper<F>>(*tx_, &table_, &config_, std::move(hooks), o_.ship);
    for (const cm::Machine& m : c->machines()) {
      if (m.client()) continue;
      absl::Status s = WireTo(m);
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // What the CM issued this client (cm/config_state.h): as a configuration
  // of the ready cluster lists it (a CM that restored the cluster from files
  // issued it again, above the restored id), else as its Join's reply did
  // (a Get during a recovery may answer a configuration from before it).
  uint64_t IssuedIncarnation(const cm::Configuration& c) const {
    for (const cm::Machine& m : c.machines()) {
      if (m.id() == fabric_->machine_id() && m.client()) return m.incarnation();
    }
    return join_incarnation_;
  }

  absl::Status Rewire(const cm::Configuration& c) {
    absl::Status first;
    absl::flat_hash_set<fabric::MachineId> listed;
    for (const cm::Machine& m : c.machines()) {
      if (m.client()) continue;
      listed.insert(m.id());
      auto it = wired_.find(m.id());
      if (it != wired_.end() && it->second.endpoint == m.endpoint() && it->second.control == m.control()) continue;
      if (absl::Status s = WireTo(m); !s.ok() && first.ok()) first = s;
    }
    std::vector<fabric::MachineId> gone;
    for (const auto& [id, w] : wired_) {
      if (!listed.contains(id)) gone.push_back(id);
    }
    for (fabric::MachineId id : gone) {
      Drop(id);
      ++wiring_stats_.dropped;
    }
    return first;
  }

  // Forgets machine `id`'s rings: the endpoint stops polling them (its ship
  // workers' too) and their memory here is deregistered (a late write from
  // it fails at the fabric).
  void Drop(fabric::MachineId id) {
    auto it = wired_.find(id);
    if (it == wired_.end()) return;
    (void)tx_->endpoint().RemovePeer(id);
    auto workers = ship_workers_.find(id);
    for (int w = 0; workers != ship_workers_.end() && w < workers->second; ++w) {
      (void)tx_->endpoint().RemovePeer(ShipEndpointId(id, static_cast<uint32_t>(w)));
    }
    for (fabric::RegionKey key : it->second.ring_keys) {
      absl::Status s = fabric_->Deregister(key);
      if (!s.ok()) LOG(WARNING) << "client " << fabric_->machine_id() << ": dropping rings of machine " << id << ": " << s;
    }
    wired_.erase(it);
    ship_workers_.erase(id);
  }

  // Rings each way with machine m's participant (again, if m's process changed).
  absl::Status WireTo(const cm::Machine& m) {
    auto connected = connected_.find(m.id());
    const bool again = connected != connected_.end();
    Drop(m.id());
    absl::Status s;
    if (!again || connected->second != m.endpoint()) {  // else: the same process, wired again after a failure
      s = fabric_->Connect(m.id(), m.endpoint());
      if (again && absl::IsAlreadyExists(s)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "client ", fabric_->machine_id(), ": machine ", m.id(), " came back at fabric endpoint ", m.endpoint(),
            " but this fabric cannot re-point a connected machine id (", s.message(), "); make a new FarmClient"));
      }
      if (!s.ok()) return s;
      connected_[m.id()] = m.endpoint();
    }
    Wired wired{m.endpoint(), m.control(), {}};
    auto inbox = fabric_->Register(o_.ring_size);
    if (!inbox.ok()) return inbox.status();
    wired.ring_keys.push_back(inbox->key);
    auto heads = fabric_->Register(4096);
    if (!heads.ok()) return heads.status();
    wired.ring_keys.push_back(heads->key);
    server::WireRing w;
    w.set_endpoint_id(tx_->endpoint().machine());
    w.set_machine(fabric_->machine_id());
    w.set_fabric_endpoint(fabric_->endpoint());
    w.set_inbox_key(inbox->key);
    w.set_head_key(heads->key);
    w.set_ring_size(o_.ring_size);
    auto ch = server::ControlChannel::Connect(m.control());
    if (!ch.ok()) return ch.status();
    absl::StatusOr<std::string> reply = (*ch)->Call(server::WIRE_RING, w.SerializeAsString(), absl::Seconds(10));
    if (!reply.ok()) return reply.status();
    server::WireRingReply r;
    if (!r.ParseFromString(*reply)) return absl::DataLossError("WIRE_RING: malformed reply");
    s = tx_->endpoint().AddPeer(m.id(), static_cast<uint8_t*>(inbox->base), o_.ring_size,
                                {m.id(), r.head_key(), 0}, {m.id(), r.inbox_key(), 0}, o_.ring_size,
                                static_cast<const uint64_t*>(heads->base));
    if (s.ok()) s = WireShipWorkers(m, **ch, &wired.ring_keys);
    if (!s.ok()) return s;
    wired_[m.id()] = std::move(wired);
    ++(again ? wiring_stats_.rewired : wiring_stats_.wired);
    return absl::OkStatus();
  }

  // Rings with each of machine m's ship workers (none if it runs none).
  absl::Status WireShipWorkers(const cm::Machine& m, server::ControlChannel& ch,
                               std::vector<fabric::RegionKey>* ring_keys) {
    int workers = 1;
    for (int w = 0; w < workers; ++w) {
      auto inbox = fabric_->Register(o_.ring_size);
      if (!inbox.ok()) return inbox.status();
      ring_keys->push_back(inbox->key);
      auto heads = fabric_->Register(4096);
      if (!heads.ok()) return heads.status();
      ring_keys->push_back(heads->key);
      WireShip req;
      req.set_worker(static_cast<uint32_t>(w));
      req.set_endpoint_id(tx_->endpoint().machine());
      req.set_machine(fabric_->machine_id());
      req.set_fabric_endpoint(fabric_->endpoint());
      req.set_inbox_key(inbox->key);
      req.set_head_key(heads->key);
      req.set_ring_size(o_.ring_size);
      absl::StatusOr<std::string> bytes = ch.Call(kWireShipMethod, req.SerializeAsString(), absl::Seconds(10));
      if (absl::IsFailedPrecondition(bytes.status()) || absl::IsInvalidArgument(bytes.status())) {
        ship_workers_[m.id()] = 0;  // runs no ship workers (or predates them)
        return absl::OkStatus();
      }
      if (!bytes.ok()) return bytes.status();
      WireShipReply r;
      if (!r.ParseFromString(*bytes)) return absl::DataLossError("WIRE_SHIP: malformed reply");
      workers = static_cast<int>(r.workers());
      absl::Status s = tx_->endpoint().AddPeer(ShipEndpointId(m.id(), w), static_cast<uint8_t*>(inbox->base),
                                               o_.ring_size, {m.id(), r.head_key(), 0}, {m.id(), r.inbox_key(), 0},
                                               o_.ring_size, static_cast<const uint64_t*>(heads->base));
      if (!s.ok()) return s;
    }
    ship_workers_[m.id()] = workers;
    return absl::OkStatus();
  }

  const FarmClientOptions o_;
  std::unique_ptr<F> fabric_;
  RegionTable table_;
  absl::Mutex install_mu_;  // orders Install and LearnFromLease
  std::atomic<uint64_t> config_{0};
  std::atomic<uint64_t> learned_from_lease_{0};
  cm::Configuration current_;
  server::CmChannel cm_;  // the client thread's (Get, Suspect)
  std::unique_ptr<tx::TxClient<F>> tx_;
  std::unique_ptr<Shipper<F>> shipper_;
  absl::flat_hash_map<fabric::MachineId, int> ship_workers_;  // ship workers per machine
  // A machine with rings each way: the process they reach, and this
  // client's ring memory for them.
  struct Wired {
    std::string endpoint, control;
    std::vector<fabric::RegionKey> ring_keys;
  };
  absl::flat_hash_map<fabric::MachineId, Wired> wired_;
  absl::flat_hash_map<fabric::MachineId, std::string> connected_;  // fabric endpoint each id was last connected to
  WiringStats wiring_stats_;
  server::CmChannel lease_cm_;  // Join, then the lease thread's renewals
  std::atomic<bool> removed_{false};
  mutable absl::Mutex removed_mu_;
  absl::Status removed_status_ ABSL_GUARDED_BY(removed_mu_);
  LeaseFence fence_;  // renewed by the lease thread
  absl::Mutex lease_mu_;
  bool stopping_ ABSL_GUARDED_BY(lease_mu_) = false;
  bool ack_due_ ABSL_GUARDED_BY(lease_mu_) = false;  // a configuration was learned: renew now
  std::atomic<uint64_t> renewals_{0}, acks_{0};
  bool joined_ = false;  // the CM took the Join (set before Connect returns)
  uint64_t join_incarnation_ = 0;  // what its reply issued (set before Connect returns)
  std::thread lease_thread_;
};

}  // namespace dctk::farm::client

#endif  // DCTK_FARM_CLIENT_FARM_CLIENT_H_
