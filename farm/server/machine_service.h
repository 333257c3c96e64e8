// MachineService: what a farmd machine process runs. It owns the machine's
// fabric, TxMachine (participant + ring server thread) and its copy of the
// region table; joins the CM service and renews its lease; and answers the
// control plane: host a region (register memory, report its key), wire a
// coordinator's rings (and drop them: a client leaving asks, UNWIRE, and a
// removed member's go when its removal's configuration is installed, their
// memory deregistered so its fabric keys serve later rings), install a
// configuration, the recovery steps
// (block + report in-flight records, known outcomes, lock recovery of the
// decided commits, resolve, resume; a
// per-region recovery's BLOCK names the regions that stop, the others keep
// serving the new configuration),
// re-replication (copy a chunk of a region it is primary of; apply a chunk to
// a region it is a new backup of, logging it) and a
// whole-cluster restart (report the configuration kept on file; restore the
// regions the CM places here from the checkpoint and log suffix).
//
// Files (MachineServiceOptions::files, machine_files.h): the transaction log,
// a checkpoint every `checkpoint_every_log_bytes` of log (the log before it
// is deleted), and a state file (this incarnation's id, the last installed
// configuration). Restart rules, decided before joining: a machine the
// running cluster removed (or is about to remove: it waits for that) deletes
// its files and joins as a fresh machine under a new id, so it never serves
// a stale copy; a machine of a cluster whose CM is bootstrapping keeps and
// checks its files and restores what the CM's restart plan places on it.
//
// Transaction shipping (MachineServiceOptions::ship_workers and a procedure
// registry, farm/client/ship.h): the machine runs ship workers, each a
// coordinator of the transactions clients ship to it (its LOCK /
// COMMIT-PRIMARY on objects it is primary of are function calls to its own
// participant); clients wire rings to them (kWireShipMethod), and each
// worker wires its coordinator to every other machine of the configuration
// before it runs a request. The machine holds a lease like any member, so if
// it dies mid-commit the CM's recovery decides its transactions; a worker
// whose commit message a machine leaves unanswered reports that machine to
// the CM (Suspect), as a client's coordinator does, so recovery decides that
// commit too.
//
// Fencing: a machine whose lease renewal is refused (the CM removed it), or
// that got no renewal acknowledged within its lease (minus a guard), stops
// serving for good before the CM can remove it: participant blocked, server
// thread stopped, regions deregistered (one-sided reads of them fail). So a
// machine that is slow, partitioned or paused past its lease never serves
// stale data or takes part in a commit after its backups were promoted;
// requests carrying an old configuration id are refused anyway.
//
// Example:
//   auto svc = MachineService<ShmFabric>::Start(
//       {.id = 1, .cm_address = "127.0.0.1:4000",
//        .files = {.log = "/var/farm/m1.txlog", .checkpoint = "/var/farm/m1.ckpt", .state =
//        "/var/farm/m1.state"}},
//       [](fabric::MachineId id) { return ShmFabric::Create({.machine_id = id}); });
//   // serves until destroyed; (*svc)->id() is this incarnation's machine id
#ifndef DCTK_FARM_SERVER_MACHINE_SERVICE_H_
#define DCTK_FARM_SERVER_MACHINE_SERVICE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "farm/client/lease_fence.h"
#include "farm/client/ship.h"
#include "farm/client/ship.pb.h"
#include "farm/client/ship_server.h"
#include "farm/cm/cm.pb.h"
#include "farm/core/region_table.h"
#include "farm/fabric/fabric.h"
#include "farm/server/cm_channel.h"
#include "farm/server/control.h"
#include "farm/server/control.pb.h"
#include "farm/server/install_config.h"
#include "farm/server/machine_files.h"
#include "farm/tx/machine.h"
#include "farm/tx/tx_log.h"
#include "glog/logging.h"

namespace dctk::farm::server {

struct MachineServiceOptions {
  fabric::MachineId id = 0;  // the group slot (1-based): its first incarnation's id
  uint32_t slots = 0;        // machines in the group (0: just `id`): later incarnations are id + slots k
  std::string cm_address;
  std::string control_host = "127.0.0.1";
  MachinePaths files;  // files.log empty: no files (nothing survives a restart)
  tx::FsyncPolicy fsync = tx::FsyncPolicy::kNever;
  uint64_t log_segment_bytes = 4 << 20;
  // A checkpoint every so many bytes of log (0: none; the log is never
  // trimmed).
  uint64_t checkpoint_every_log_bytes = 64 << 20;
  // Called after a whole-cluster restart restored this machine's regions.
  std::function<void(fabric::MachineId, const RestoreReply&)> on_restored;
  // Called when this machine, whose files may hold the only copy of a
  // region, starts waiting for the CM to begin a whole-cluster restart
  // (every storage machine is gone; tests).
  std::function<void()> on_waiting_for_restart;
  // Ship workers (0: this machine runs no shipped transactions).
  int ship_workers = 0;
  tx::TxClientOptions ship_tx;  // their coordinators (suspect unset: reported to the CM)
  // Fault injection (farmd --crash_after): TxMachine::SetAfterHandling.
  std::function<void(tx::Handler)> after_handling;
};

template <typename F>
  requires fabric::Fabric<F>
class MachineService {
 public:
  using FabricFactory = std::function<absl::StatusOr<std::unique_ptr<F>>(fabric::MachineId)>;

  // `procedures`: what clients may ship here (with o.ship_workers > 0).
  static absl::StatusOr<std::unique_ptr<MachineService>> Start(
      MachineServiceOptions o, FabricFactory make_fabric,
      std::shared_ptr<const client::ProcedureRegistry<F>> procedures = nullptr) {
    if (o.ship_workers > 0 && procedures == nullptr) {
      return absl::InvalidArgumentError("MachineService: ship_workers > 0 needs a procedure registry");
    }
    std::unique_ptr<MachineService> s(new MachineService(std::move(o)));
    s->procedures_ = std::move(procedures);
    absl::Status st = s->Init(make_fabric);
    if (!st.ok()) return st;
    return s;
  }
  ~MachineService() {
    stop_.Notify();
    if (lease_thread_.joinable()) lease_thread_.join();
    control_.reset();
    ship_.reset();
    machine_.reset();
  }

  // This incarnation's machine id (the slot, or a new id after a removal).
  fabric::MachineId id() const { return id_; }
  const std::string& control_address() const { return control_->address(); }
  // Fenced: removed by the CM, or its lease could not be renewed in time.
  bool evicted() const { return evicted_.load(); }
  // Fault injection: stall the participant's server thread (a slow machine:
  // its lease is still renewed), or let it serve again.
  void SetStalled(bool stalled) { machine_->SetStalled(stalled); }
  // Shipped transactions run here (null without ship workers).
  client::ShipServer<F>* ship_server() { return ship_.get(); }

 private:
  explicit MachineService(MachineServiceOptions o) : o_(std::move(o)), lease_cm_(o_.cm_address) {}

  bool has_files() const { return !o_.files.log.empty(); }

  // What the CM says before this machine joins: bootstrapping (not ready),
  // or its configuration.
  absl::StatusOr<CmState> AskCm() {
    absl::StatusOr<std::string> bytes = cm_->Call(CM_STATE, "", absl::Seconds(5));
    if (!bytes.ok()) return bytes.status();
    CmState state;
    if (!state.ParseFromString(*bytes)) return absl::DataLossError("CM: malformed CmState");
    return state;
  }

  // Chooses this incarnation's id and whether its files are kept for a
  // restore (machine_files.h has the rules).
  absl::Status DecideIncarnation() {
    absl::StatusOr<absl::optional<MachineState>> saved =
        has_files() ? ReadMachineState(o_.files.state) : absl::optional<MachineState>();
    if (!saved.ok()) return saved.status();
    id_ = *saved ? (*saved)->id() : o_.id;
    absl::StatusOr<std::unique_ptr<ControlChannel>> cm = ControlChannel::Connect(o_.cm_address);
    if (!cm.ok()) return cm.status();
    cm_ = std::move(*cm);
    bool waited = false;
    absl::Time down_since = absl::InfiniteFuture();  // waiting for the CM's BeginRestart
    while (true) {
      absl::StatusOr<CmState> state = AskCm();
      if (!state.ok()) return state.status();
      if (!state->ready()) {
        restore_ = *saved && (*saved)->has_config();
        break;
      }
      const absl::Duration poll = absl::Milliseconds(std::max<int64_t>(10, state->config().lease_ms() / 4));
      if (!IsStorageMember(id_, state->config())) {
        if (*saved) {
          absl::Status only_copy = CheckNotOnlyCopy((*saved)->config(), state->config());
          if (!only_copy.ok() && HasStorageMachines(state->config())) return only_copy;
          if (!only_copy.ok()) {
            // Every storage machine is gone: a CM that restores a cluster
            // that went down (restore_when_down) begins a restart at its
            // next Tick, and this machine then restores from its files.
            const absl::Duration wait = absl::Milliseconds(2 * state->config().lease_ms());
            if (down_since == absl::InfiniteFuture()) {
              down_since = absl::Now();
              LOG(WARNING) << "machine " << id_ << ": every storage machine is gone and this machine's files hold "
                           << "lost regions; waiting up to " << wait << " for the CM to begin a restart from files";
              if (o_.on_waiting_for_restart) o_.on_waiting_for_restart();
            }
            if (absl::Now() - down_since >= wait) {
              return absl::FailedPreconditionError(absl::StrCat(
                  only_copy.message(), " (every storage machine is gone, but the CM did not begin a restart from the "
                  "machines' files within ", absl::FormatDuration(wait), ": a CM without restore_when_down, such as "
                  "farmd --role=cm, restores only once it is restarted itself)"));
            }
            if (stop_.WaitForNotificationWithTimeout(poll)) return absl::CancelledError("stopped");
            continue;
          }
        }
        absl::StatusOr<fabric::MachineId> id = NextIncarnation(o_.id, std::max(o_.slots, o_.id), state->config());
        if (!id.ok()) return id.status();
        LOG_IF(WARNING, *id != id_) << "machine " << id_ << ": the cluster removed it while it was down; joining as "
                                    << "a fresh machine " << *id;
        id_ = *id;
        break;
      }
      // The previous incarnation is still a member (its lease has not run
      // out): joining now would let the CM believe it still holds its copies.
      LOG_IF(WARNING, !waited) << "machine " << id_ << ": its previous incarnation is still a member; waiting for the "
                               << "CM to remove it (at most one lease, " << state->config().lease_ms() << " ms)";
      waited = true;
      if (stop_.WaitForNotificationWithTimeout(poll)) return absl::CancelledError("stopped");
    }
    if (!has_files()) return absl::OkStatus();
    if (!restore_) {
      absl::StatusOr<int> deleted = DiscardMachineFiles(o_.files);
      if (!deleted.ok()) return deleted.status();
      LOG_IF(WARNING, *deleted > 0) << "machine " << id_ << ": deleted " << *deleted << " files of a previous "
                                    << "incarnation (" << o_.files.log << ".*, " << o_.files.checkpoint << ")";
      MachineState fresh;
      fresh.set_id(id_);
      return WriteMachineState(o_.files.state, fresh, o_.fsync == tx::FsyncPolicy::kEveryRecord);
    }
    return absl::OkStatus();
  }

  static bool HasStorageMachines(const cm::Configuration& c) {
    for (const cm::Machine& m : c.machines()) {
      if (!m.client()) return true;
    }
    return false;
  }

  // Starting fresh deletes this machine's files; refused while they may hold
  // the only copy of a region the running cluster lost (every copy's machine
  // failed): a whole-cluster restart (the CM restarted too) restores it.
  absl::Status CheckNotOnlyCopy(const cm::Configuration& saved, const cm::Configuration& now) const {
    for (const cm::Region& mine : saved.regions()) {
      bool held = false;
      for (const cm::Replica& rep : mine.replicas()) held |= rep.machine() == id_ && !rep.copying();
      if (!held) continue;
      for (const cm::Region& r : now.regions()) {
        if (r.id() != mine.id() || !r.lost()) continue;
        return absl::FailedPreconditionError(absl::StrCat(
            "machine ", id_, ": region ", r.id(), " is lost in the running cluster and this machine's files (",
            o_.files.log, ".*, ", o_.files.checkpoint, ") hold a copy of it; restart the CM and every machine to "
            "restore the cluster from the files, or delete them to start this machine fresh"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status Init(const FabricFactory& make_fabric) {
    absl::Status st = DecideIncarnation();
    if (!st.ok()) return st;
    absl::StatusOr<std::unique_ptr<F>> fabric = make_fabric(id_);
    if (!fabric.ok()) return fabric.status();
    fabric_ = std::move(*fabric);
    absl::StatusOr<std::unique_ptr<tx::TxLog>> log =
        tx::TxLog::Open(has_files() ? o_.files.log : "", o_.fsync, o_.log_segment_bytes);
    if (!log.ok()) return log.status();
    if (restore_) {
      // Checked before joining: a damaged file stops this process here,
      // with the file's name, instead of failing the CM's bootstrap.
      absl::StatusOr<RestoreInputs> in = ReadRestoreInputs(o_.files);
      if (!in.ok()) return in.status();
      inputs_ = std::move(*in);
      LOG(INFO) << "machine " << id_ << ": kept its files for a whole-cluster restart: checkpoint at record "
                << (inputs_.checkpoint ? inputs_.checkpoint->lsn : 0) << ", " << inputs_.records.size()
                << " log records after it (read in " << inputs_.read_time << ")";
    }
    tx::CheckpointOptions checkpoints;
    if (has_files()) {
      checkpoints = {o_.files.checkpoint, o_.checkpoint_every_log_bytes, o_.fsync == tx::FsyncPolicy::kEveryRecord};
    }
    auto m = tx::TxMachine<F>::Create(*fabric_, &table_, std::move(*log), checkpoints);
    if (!m.ok()) return m.status();
    machine_ = std::move(*m);
    if (o_.after_handling) machine_->SetAfterHandling(o_.after_handling);
    if (o_.ship_workers > 0) {
      client::ShipServerOptions so;
      so.workers = o_.ship_workers;
      so.tx = o_.ship_tx;
      // A worker's coordinator that finds a machine silent tells the CM, as
      // a client's does (a channel of their own: the lease's renewals never
      // wait behind a report).
      if (!so.tx.suspect) {
        suspect_cm_ = std::make_unique<CmChannel>(o_.cm_address);
        so.tx.suspect = [this](fabric::MachineId m) { suspect_cm_->Suspect(m, id_); };
      }
      // A process paused past its lease resumes with its workers running
      // before the lease thread fences it: they ask the fence first.
      so.tx.admit = [this, also = std::move(so.tx.admit)] {
        if (ABSL_PREDICT_FALSE(!fence_.Open(client::LeaseFence::Now()))) {
          return absl::UnavailableError(
              absl::StrCat("machine ", id_,
                           ": no lease renewal acknowledged within its lease; its "
                           "ship workers read nothing (it is being fenced)"));
        }
        return also ? also() : absl::OkStatus();
      };
      auto ship = client::ShipServer<F>::Create(*fabric_, &table_, &machine_->participant(), procedures_, so,
                                                [this](int w, tx::TxClient<F>& c) { return WireShipWorker(w, c); });
      if (!ship.ok()) return ship.status();
      ship_ = std::move(*ship);
      {
        absl::MutexLock l(&wire_mu_);
        ship_wired_.resize(o_.ship_workers);
      }
      ship_->Start();  // before the control server: WIRE_SHIP finds it
    }
    control_ = std::make_unique<ControlServer>(
        [this](uint16_t method, absl::string_view req) { return Handle(method, req); });
    absl::Status s = control_->Start(o_.control_host);
    if (!s.ok()) return s;
    machine_->Start();
    cm::Command join;
    join.mutable_join()->set_machine(id_);
    join.mutable_join()->set_endpoint(fabric_->endpoint());
    join.mutable_join()->set_control(control_->address());
    // The lease thread joins: the Join's reply wakes a thread at the lease's
    // priority, which renews from then on (this thread, at normal priority,
    // may run again only after a short lease ran out under CPU load).
    absl::StatusOr<cm::Result> r;
    absl::Notification joined;
    lease_thread_ = std::thread([this, &join, &r, &joined] {
      PrioritizeLeaseThread(absl::StrCat("machine ", id_));
      const int64_t sent = client::LeaseFence::Now();
      r = lease_cm_.Call(join);
      const bool ok = r.ok();
      if (ok) {
        lease_ = absl::Milliseconds(r->config().lease_ms());
        fence_.Renewed(sent, lease_);
      }
      joined.Notify();
      if (ok) RenewLeases();
    });
    joined.WaitForNotification();
    if (!r.ok()) {
      lease_thread_.join();
      return r.status();
    }
    return absl::OkStatus();
  }

  // The CM stamps a renewal when it receives it, so a renewal acknowledged
  // here keeps this machine a member until at least `sent + lease` on the
  // CM's clock. The machine fences itself a guard before that moment unless
  // a later renewal was acknowledged (fence_, client/lease_fence.h): by the
  // time the CM can remove it and promote its backups, it serves nothing
  // (see Fence), and its ship workers' transactions read nothing once the
  // lease ran out, even before this thread notices (a paused process).
  absl::Duration LeftOnLease() const {
    return absl::Nanoseconds(fence_.valid_until() - client::LeaseFence::Now());
  }

  void RenewLeases() {
    const absl::Duration every = std::max(absl::Milliseconds(1), lease_ / 3);
    absl::Time next = absl::Now() + every;
    while (!stop_.WaitForNotificationWithTimeout(std::min(next - absl::Now(), LeftOnLease()))) {
      if (!fence_.Open(client::LeaseFence::Now())) {
        Fence("no lease renewal acknowledged in time");
        return;
      }
      if (absl::Now() < next) continue;
      cm::Command renew;
      renew.mutable_renew()->set_machine(id_);
      const int64_t sent = client::LeaseFence::Now();
      absl::StatusOr<cm::Result> r =
          lease_cm_.Call(renew, std::max(absl::Milliseconds(1), LeftOnLease()));
      next = absl::Now() + every;
      if (absl::IsNotFound(r.status())) {
        Fence("the CM removed this machine (lease expired)");
        return;
      }
      if (absl::IsFailedPrecondition(r.status())) {  // suspected: removed once the lease it holds runs out
        Fence(absl::StrCat("the CM no longer renews its lease: ", r.status().message()));
        return;
      }
      if (r.ok()) {
        fence_.Renewed(sent, lease_);
        continue;
      }
      LOG(WARNING) << "machine " << id_ << ": lease renewal: " << r.status();
      // Again soon, on a new connection (lease_cm_ connects again after a
      // transport error): a CM process restarting on its address must not
      // cost this machine its lease.
      next = absl::Now() + every / 4;
    }
  }

  // A machine whose lease may have expired stops for good: its participant
  // refuses every protocol message (no write through it), its server thread
  // stops, and its regions are deregistered so that one-sided reads of them
  // by anyone still following an old configuration fail instead of
  // returning data the new primaries may have overwritten.
  void Fence(absl::string_view why) {
    LOG(ERROR) << "machine " << id_ << ": " << why << "; fencing: no more transactions or reads served here";
    fence_.Remove();
    machine_->participant().Block();
    if (ship_) ship_->Stop();
    {
      absl::MutexLock l(&files_mu_);
      fenced_ = true;
      machine_->Stop();
    }
    absl::MutexLock l(&wire_mu_);
    for (fabric::RegionKey key : keys_) {
      absl::Status s = fabric_->Deregister(key);
      LOG_IF(WARNING, !s.ok()) << "machine " << id_ << ": deregistering region key " << key << ": " << s;
    }
    keys_.clear();
    evicted_.store(true);
  }

  // The decisions a RESOLVE or RECOVER_LOCKS (`step`) carries; malformed
  // ones are refused whole, naming the step, this machine and the entry.
  absl::StatusOr<std::vector<tx::Resolution>> Decisions(absl::string_view req,
                                                        const char* step) const {
    auto rs = ParseAs<Resolutions>(req);
    if (!rs.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(step, " at machine ", id_, ": ", rs.status().message()));
    }
    std::vector<tx::Resolution> out;
    for (int i = 0; i < rs->resolutions_size(); ++i) {
      const Resolution& r = rs->resolutions(i);
      absl::StatusOr<tx::LockRequest> entries = tx::DecodeLockRequest(r.entries());
      if (!entries.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(step, " at machine ", id_, ": resolution ",
                                                       i, " (transaction ", r.tx(),
                                                       "): entries: ", entries.status().message()));
      }
      out.push_back({r.tx(), r.commit(), std::move(entries->entries)});
    }
    return out;
  }

  template <typename M>
  static absl::StatusOr<M> ParseAs(absl::string_view req) {
    M m;
    if (!m.ParseFromArray(req.data(), static_cast<int>(req.size()))) {
      return absl::InvalidArgumentError(absl::StrCat("malformed ", m.GetTypeName()));
    }
    return m;
  }

  absl::StatusOr<std::string> Handle(uint16_t method, absl::string_view req) {
    tx::Participant& p = machine_->participant();
    switch (method) {
      case HOST_REGION: {
        auto r = ParseAs<HostRegion>(req);
        if (!r.ok()) return r.status();
        if (absl::Status s = DiscardKeptFiles(); !s.ok()) return s;
        absl::StatusOr<fabric::MemoryRegion> mr = fabric_->Register(r->size());
        if (!mr.ok()) return mr.status();
        {
          absl::MutexLock l(&wire_mu_);
          keys_.push_back(mr->key);
        }
        p.HostRegion(r->region(), static_cast<uint8_t*>(mr->base), r->size());
        HostRegionReply reply;
        reply.set_key(mr->key);
        return reply.SerializeAsString();
      }
      case WIRE_RING: return Wire(req);
      case UNWIRE: {
        auto u = ParseAs<Unwire>(req);
        if (!u.ok()) return u.status();
        UnwireReply reply;
        reply.set_rings(DropRingsOf(u->machine()));
        return reply.SerializeAsString();
      }
      case client::kWireShipMethod: return WireShip(req);
      case INSTALL_CONFIG: {
        auto c = ParseAs<cm::Configuration>(req);
        if (!c.ok()) return c.status();
        if (absl::Status s = DiscardKeptFiles(); !s.ok()) return s;
        InstallConfiguration(*c, &table_);
        // Removed members coordinate nothing more: their rings go (first,
        // so nothing of theirs reaches the participant in this configuration).
        for (uint32_t removed : c->failed()) DropRingsOf(removed);
        p.InstallConfig(c->id(), {c->failed().begin(), c->failed().end()});
        KeepMembers(*c);
        if (absl::Status s = RecordConfiguration(*c); !s.ok()) return s;
        return std::string();
      }
      case RECORD_CONFIG: {
        auto c = ParseAs<cm::Configuration>(req);
        if (!c.ok()) return c.status();
        if (absl::Status s = RecordConfiguration(*c); !s.ok()) return s;
        return std::string();
      }
      case RESTORABLE: {
        Restorable out;
        absl::MutexLock l(&files_mu_);
        if (restore_) {
          absl::StatusOr<absl::optional<MachineState>> saved = ReadMachineState(o_.files.state);
          if (!saved.ok()) return saved.status();
          if (*saved) *out.mutable_config() = (*saved)->config();
        }
        return out.SerializeAsString();
      }
      case RESTORE: return Restore(req);
      case BLOCK: {
        uint64_t before = 0;  // every record (a blocking recovery)
        if (req.empty()) {
          p.Block();
        } else {
          auto scope = ParseAs<RecoveryScope>(req);
          if (!scope.ok()) return scope.status();
          p.BeginRecovery(scope->config(), {scope->recovering().begin(), scope->recovering().end()});
          p.InstallConfig(scope->config(), {scope->failed().begin(), scope->failed().end()});
          before = scope->config();
        }
        InFlight out;
        for (const tx::InFlightRecord& r : p.InFlight(before)) {
          InFlightRecord* rec = out.add_records();
          rec->set_tx(r.tx);
          rec->set_machine(r.machine);
          rec->set_type(static_cast<uint32_t>(r.type));
          rec->set_primary_committed(r.primary_committed);
          rec->set_request(tx::Encode(r.request));
        }
        return out.SerializeAsString();
      }
      case KNOWN: {
        auto l = ParseAs<TxList>(req);
        if (!l.ok()) return l.status();
        TxList out;
        for (uint64_t id : l->tx()) {
          if (p.Known(id) == tx::Outcome::kCommitted) out.add_tx(id);
        }
        return out.SerializeAsString();
      }
      case RECOVER_LOCKS: {
        absl::StatusOr<std::vector<tx::Resolution>> commits = Decisions(req, "RECOVER_LOCKS");
        if (!commits.ok()) return commits.status();
        if (absl::Status s = p.RecoverLocks(*commits); !s.ok()) return s;
        return std::string();
      }
      case RESOLVE: {
        absl::StatusOr<std::vector<tx::Resolution>> decisions = Decisions(req, "RESOLVE");
        if (!decisions.ok()) return decisions.status();
        for (const tx::Resolution& r : *decisions) p.Resolve(r);
        return std::string();
      }
      case RESUME: {
        auto r = ParseAs<server::Resume>(req);
        if (!r.ok()) return r.status();
        if (r->scoped()) {
          p.ReleaseReservationsBefore(r->config());
        } else {
          p.ReleaseAllReservations();
        }
        p.Resume(r->config());
        return std::string();
      }
      case COPY_CHUNK: {
        auto r = ParseAs<CopyChunk>(req);
        if (!r.ok()) return r.status();
        absl::StatusOr<tx::RegionChunk> chunk = p.CopyChunk(r->region(), r->from(), r->max_bytes());
        if (!chunk.ok()) return chunk.status();
        RegionChunk out;
        out.set_region(r->region());
        out.set_objects(tx::Encode(tx::LockRequest{0, 0, {}, chunk->Entries()}));
        out.set_next(chunk->next);
        return out.SerializeAsString();
      }
      case APPLY_CHUNK: {
        auto r = ParseAs<RegionChunk>(req);
        if (!r.ok()) return r.status();
        absl::StatusOr<tx::LockRequest> objects = tx::DecodeLockRequest(r->objects());
        if (!objects.ok()) return objects.status();
        absl::StatusOr<int> installed = p.ApplyChunk(r->region(), objects->entries);
        if (!installed.ok()) return installed.status();
        ApplyChunkReply out;
        out.set_installed(static_cast<uint32_t>(*installed));
        return out.SerializeAsString();
      }
      case PING: return std::string();
      default: return absl::InvalidArgumentError(absl::StrCat("machine ", id_, ": unknown control method ", method));
    }
  }

  bool SyncFiles() const { return o_.fsync == tx::FsyncPolicy::kEveryRecord; }

  // What a whole-cluster restart restores this machine into.
  absl::Status RecordConfiguration(const cm::Configuration& c) {
    if (!has_files()) return absl::OkStatus();
    MachineState state;
    state.set_id(id_);
    *state.mutable_config() = c;
    return WriteMachineState(o_.files.state, state, SyncFiles());
  }

  // Runs `fn` with the server thread stopped, so that it never races a
  // periodic checkpoint (TxMachine takes those from its server thread).
  template <typename Fn>
  absl::Status PausedLocked(Fn fn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(files_mu_) {
    if (fenced_) return absl::FailedPreconditionError(absl::StrCat("machine ", id_, " is fenced"));
    machine_->Stop();
    absl::Status s = fn();
    machine_->Start();
    return s;
  }

  // Files kept for a restore that the CM did not ask for (it placed the
  // regions afresh, or placed none of them here): an empty checkpoint at the
  // log's end makes them history, so a later restart never replays them.
  absl::Status DiscardKeptFiles() {
    absl::MutexLock l(&files_mu_);
    if (!restore_) return absl::OkStatus();
    restore_ = false;
    inputs_ = RestoreInputs();
    LOG(WARNING) << "machine " << id_ << ": the CM restores nothing here; the kept files are discarded";
    return PausedLocked([&] { return machine_->participant().TakeCheckpoint(o_.files.checkpoint, SyncFiles()).status(); });
  }

  // Whole-cluster restart: host the regions `plan` places here and load
  // them from the files read at start (checkpoint + log suffix). The
  // participant stays out of service (configuration 0) until the CM's
  // recovery installs the plan and resumes it.
  absl::StatusOr<std::string> Restore(absl::string_view req) {
    auto plan = ParseAs<cm::Configuration>(req);
    if (!plan.ok()) return plan.status();
    const absl::Time start = absl::Now();
    tx::Participant& p = machine_->participant();
    absl::MutexLock l(&files_mu_);
    if (restored_) return restore_reply_.SerializeAsString();  // the CM retried its bootstrap
    RestoreReply reply;
    for (const cm::Region& region : plan->regions()) {
      if (region.lost()) continue;
      for (const cm::Replica& rep : region.replicas()) {
        if (rep.machine() != id_) continue;
        absl::StatusOr<fabric::MemoryRegion> mr = fabric_->Register(region.size());
        if (!mr.ok()) return mr.status();
        {
          absl::MutexLock w(&wire_mu_);
          keys_.push_back(mr->key);
        }
        p.HostRegion(region.id(), static_cast<uint8_t*>(mr->base), region.size());
        RegionKey* k = reply.add_keys();
        k->set_region(region.id());
        k->set_key(mr->key);
      }
    }
    InstallConfiguration(*plan, &table_);
    KeepMembers(*plan);
    if (restore_ && reply.keys_size() == 0) {
      restore_ = false;
      absl::Status s = PausedLocked([&] { return p.TakeCheckpoint(o_.files.checkpoint, SyncFiles()).status(); });
      if (!s.ok()) return s;
    } else if (restore_) {
      absl::StatusOr<tx::RestoreReport> r;
      absl::Status s = PausedLocked([&] {
        r = p.Restore(inputs_.checkpoint ? &*inputs_.checkpoint : nullptr, inputs_.records);
        return r.status();
      });
      if (!s.ok()) {
        return absl::Status(s.code(), absl::StrCat("machine ", id_, ": restoring from ", o_.files.checkpoint, " and ",
                                                   o_.files.log, ".*: ", s.message()));
      }
      reply.set_checkpoint_lsn(r->checkpoint_lsn);
      reply.set_pages(r->pages);
      reply.set_replayed(r->replayed);
      reply.set_pending(r->pending);
      restore_ = false;
    }
    reply.set_read_ms(absl::ToDoubleMilliseconds(inputs_.read_time));
    reply.set_restore_ms(absl::ToDoubleMilliseconds(absl::Now() - start));
    inputs_ = RestoreInputs();
    restored_ = true;
    restore_reply_ = reply;
    LOG(INFO) << "machine " << id_ << ": restored " << reply.keys_size() << " regions: " << reply.ShortDebugString();
    if (o_.on_restored) o_.on_restored(id_, reply);
    return reply.SerializeAsString();
  }

  absl::StatusOr<std::string> Wire(absl::string_view req) {
    auto w = ParseAs<WireRing>(req);
    if (!w.ok()) return w.status();
    absl::MutexLock l(&wire_mu_);
    if (absl::Status s = ConnectLocked(w->machine(), w->fabric_endpoint()); !s.ok()) return s;
    auto inbox = fabric_->Register(w->ring_size());
    if (!inbox.ok()) return inbox.status();
    auto heads = fabric_->Register(4096);
    if (!heads.ok()) return heads.status();
    const fabric::MachineId c = w->machine();
    absl::Status s = machine_->WithEndpoint([&](msg::RpcEndpoint<F>& ep) {
      return ep.AddPeer(w->endpoint_id(), static_cast<uint8_t*>(inbox->base), w->ring_size(), {c, w->head_key(), 0},
                        {c, w->inbox_key(), 0}, w->ring_size(), static_cast<const uint64_t*>(heads->base));
    });
    if (!s.ok()) return s;
    ReplaceRingsLocked({kParticipantRings, w->endpoint_id()}, c, {inbox->key, heads->key});
    WireRingReply reply;
    reply.set_inbox_key(inbox->key);
    reply.set_head_key(heads->key);
    return reply.SerializeAsString();
  }

  // The machines of the last configuration installed here (ship workers wire to them).
  void KeepMembers(const cm::Configuration& c) {
    absl::MutexLock l(&wire_mu_);
    members_.clear();
    for (const cm::Machine& m : c.machines()) {
      if (!m.client() && m.id() != id_) members_.push_back(m);
    }
  }

  // Connects the fabric to machine `m` at `endpoint` once (WIRE_RING,
  // WIRE_SHIP and ship workers share the connection), and again when `m` is
  // a new process under the same id: a client that left and a later one
  // under its id (FarmClient::Leave), a machine back after a whole-cluster
  // restart. Refused while the old process is still reachable on shm.
  absl::Status ConnectLocked(fabric::MachineId m, const std::string& endpoint) ABSL_EXCLUSIVE_LOCKS_REQUIRED(wire_mu_) {
    auto it = connected_.find(m);
    if (it != connected_.end() && it->second == endpoint) return absl::OkStatus();
    absl::Status s = fabric_->Connect(m, endpoint);
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("machine ", id_, ": connecting to machine ", m,
                                                 " at ", endpoint, ": ", s.message()));
    }
    connected_[m] = endpoint;
    return absl::OkStatus();
  }

  // Ring memory registered here for one coordinator endpoint (at the
  // participant, or at ship worker `worker`).
  static constexpr int kParticipantRings = -1;
  using RingOwner = std::pair<int, uint32_t>;  // (worker or kParticipantRings, endpoint id)
  struct HeldRings {
    fabric::MachineId machine = 0;  // the coordinator's fabric machine
    std::vector<fabric::RegionKey> keys;
  };
  // `keys` now hold `owner`'s rings, of coordinator machine `machine`
  // (AddPeer replaced the old ones): the memory of the rings they replaced
  // is deregistered, so a process that reconnects under an id (a later
  // client under a departed one's) does not leave one set of rings
  // registered for each.
  void ReplaceRingsLocked(RingOwner owner, fabric::MachineId machine,
                          std::vector<fabric::RegionKey> keys)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(wire_mu_) {
    HeldRings& held = rings_[owner];
    DeregisterLocked(held.keys, "replaced");
    held = {machine, std::move(keys)};
  }

  void DeregisterLocked(const std::vector<fabric::RegionKey>& keys, const char* why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(wire_mu_) {
    for (fabric::RegionKey key : keys) {
      absl::Status s = fabric_->Deregister(key);
      LOG_IF(WARNING, !s.ok()) << "machine " << id_ << ": deregistering " << why
                               << " ring memory (key " << key << "): " << s;
    }
  }

  // Forgets every ring coordinator machine `machine` has here (a client
  // that left, a removed member): its endpoints stop polling them (requests
  // not handled yet are dropped: recovery decided a removed one's, a
  // client drained its rings before leaving) and their memory is
  // deregistered, so their key slots serve later rings (a ship worker's
  // once the worker got to it). Returns the ring pairs dropped. Not while a process under `machine`
  // wires (it left or was removed: none does until its id is free again, at the CM).
  uint32_t DropRingsOf(fabric::MachineId machine) {
    std::vector<std::pair<RingOwner, HeldRings>> gone;
    {
      absl::MutexLock l(&wire_mu_);
      for (auto it = rings_.begin(); it != rings_.end();) {
        if (it->second.machine != machine) {
          ++it;
          continue;
        }
        gone.emplace_back(it->first, std::move(it->second));
        rings_.erase(it++);
      }
    }
    for (auto& [owner, held] : gone) {
      const uint32_t endpoint = owner.second;
      if (owner.first == kParticipantRings) {
        absl::Status s = machine_->WithEndpoint(
            [endpoint](msg::RpcEndpoint<F>& ep) { return ep.RemovePeer(endpoint); });
        LOG_IF(WARNING, !s.ok()) << "machine " << id_ << ": dropping machine " << machine
                                 << "'s rings: " << s;
        absl::MutexLock l(&wire_mu_);
        DeregisterLocked(held.keys, "a departed coordinator's");
        continue;
      }
      // A ship worker may be running a request that waits for a recovery
      // (this INSTALL_CONFIG's): it drops the rings itself, before its next
      // poll (its mutex comes before wire_mu_, as when it wires).
      ship_->OnWorkerThread(owner.first,
                            [this, endpoint, keys = std::move(held.keys)](msg::RpcEndpoint<F>& ep) {
                              (void)ep.RemovePeer(endpoint);
                              absl::MutexLock l(&wire_mu_);
                              DeregisterLocked(keys, "a departed coordinator's");
                            });
    }
    return static_cast<uint32_t>(gone.size());
  }

  // A client's rings with ship worker `worker`.
  absl::StatusOr<std::string> WireShip(absl::string_view req) {
    auto w = ParseAs<client::WireShip>(req);
    if (!w.ok()) return w.status();
    if (!ship_) {
      return absl::FailedPreconditionError(absl::StrCat("machine ", id_, " runs no ship workers"));
    }
    if (w->worker() >= static_cast<uint32_t>(ship_->workers())) {
      return absl::InvalidArgumentError(
          absl::StrCat("machine ", id_, " has ", ship_->workers(), " ship workers, not ", w->worker() + 1));
    }
    absl::StatusOr<fabric::MemoryRegion> inbox, heads;
    {
      absl::MutexLock l(&wire_mu_);
      if (absl::Status s = ConnectLocked(w->machine(), w->fabric_endpoint()); !s.ok()) return s;
      inbox = fabric_->Register(w->ring_size());
      if (!inbox.ok()) return inbox.status();
      heads = fabric_->Register(4096);
      if (!heads.ok()) return heads.status();
    }
    const fabric::MachineId c = w->machine();
    absl::Status s = ship_->WithWorker(static_cast<int>(w->worker()), [&](msg::RpcEndpoint<F>& ep, tx::TxClient<F>&) {
      return ep.AddPeer(w->endpoint_id(), static_cast<uint8_t*>(inbox->base), w->ring_size(), {c, w->head_key(), 0},
                        {c, w->inbox_key(), 0}, w->ring_size(), static_cast<const uint64_t*>(heads->base));
    });
    if (!s.ok()) return s;
    {
      absl::MutexLock l(&wire_mu_);
      ReplaceRingsLocked({static_cast<int>(w->worker()), w->endpoint_id()}, c,
                         {inbox->key, heads->key});
    }
    client::WireShipReply reply;
    reply.set_workers(static_cast<uint32_t>(ship_->workers()));
    reply.set_inbox_key(inbox->key);
    reply.set_head_key(heads->key);
    return reply.SerializeAsString();
  }

  // On ship worker `w`'s thread, before it runs a request: rings from its
  // coordinator to every other machine of the configuration not wired yet
  // (a machine that cannot be wired now is tried again at the next request;
  // only transactions that need it fail meanwhile).
  absl::Status WireShipWorker(int w, tx::TxClient<F>& coordinator) {
    std::vector<cm::Machine> todo;
    {
      absl::MutexLock l(&wire_mu_);
      for (const cm::Machine& m : members_) {
        if (!ship_wired_[w].contains(m.id())) todo.push_back(m);
      }
    }
    for (const cm::Machine& m : todo) {
      absl::Status s = WireCoordinatorTo(m, coordinator);
      LOG_IF(WARNING, !s.ok()) << "machine " << id_ << ": ship worker " << w << ": no rings to machine " << m.id()
                               << " yet: " << s;
      if (!s.ok()) continue;
      absl::MutexLock l(&wire_mu_);
      ship_wired_[w].insert(m.id());
    }
    return absl::OkStatus();
  }

  absl::Status WireCoordinatorTo(const cm::Machine& m, tx::TxClient<F>& coordinator) {
    absl::StatusOr<fabric::MemoryRegion> inbox, heads;
    {
      absl::MutexLock l(&wire_mu_);
      if (absl::Status s = ConnectLocked(m.id(), m.endpoint()); !s.ok()) return s;
      inbox = fabric_->Register(kShipRingBytes);
      if (!inbox.ok()) return inbox.status();
      heads = fabric_->Register(4096);
      if (!heads.ok()) return heads.status();
    }
    WireRing ring;
    ring.set_endpoint_id(coordinator.endpoint().machine());
    ring.set_machine(id_);
    ring.set_fabric_endpoint(fabric_->endpoint());
    ring.set_inbox_key(inbox->key);
    ring.set_head_key(heads->key);
    ring.set_ring_size(kShipRingBytes);
    auto ch = ControlChannel::Connect(m.control());
    if (!ch.ok()) return ch.status();
    absl::StatusOr<std::string> bytes = (*ch)->Call(WIRE_RING, ring.SerializeAsString(), absl::Seconds(5));
    if (!bytes.ok()) return bytes.status();
    WireRingReply r;
    if (!r.ParseFromString(*bytes)) return absl::DataLossError(absl::StrCat("WIRE_RING to ", m.id(), ": malformed reply"));
    return coordinator.endpoint().AddPeer(m.id(), static_cast<uint8_t*>(inbox->base), kShipRingBytes,
                                          {m.id(), r.head_key(), 0}, {m.id(), r.inbox_key(), 0}, kShipRingBytes,
                                          static_cast<const uint64_t*>(heads->base));
  }

  static constexpr uint64_t kShipRingBytes = 1 << 18;

  const MachineServiceOptions o_;
  std::shared_ptr<const client::ProcedureRegistry<F>> procedures_;
  std::unique_ptr<client::ShipServer<F>> ship_;
  fabric::MachineId id_ = 0;
  std::unique_ptr<F> fabric_;
  RegionTable table_;
  std::unique_ptr<tx::TxMachine<F>> machine_;
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<ControlChannel> cm_;     // CM_STATE, before joining
  CmChannel lease_cm_;                     // Join, then the lease thread's renewals
  std::unique_ptr<CmChannel> suspect_cm_;  // ship workers' Suspect reports
  absl::Duration lease_;                   // lease thread only (after Init)
  client::LeaseFence fence_;               // renewed by the lease thread; ship workers ask it
  absl::Notification stop_;
  std::atomic<bool> evicted_{false};
  std::thread lease_thread_;
  absl::Mutex wire_mu_;
  // Fabric endpoint each machine id was last connected at.
  absl::flat_hash_map<fabric::MachineId, std::string> connected_ ABSL_GUARDED_BY(wire_mu_);
  absl::flat_hash_map<RingOwner, HeldRings> rings_ ABSL_GUARDED_BY(wire_mu_);
  std::vector<fabric::RegionKey> keys_ ABSL_GUARDED_BY(wire_mu_);  // hosted regions
  std::vector<cm::Machine> members_ ABSL_GUARDED_BY(wire_mu_);      // other storage machines
  std::vector<absl::flat_hash_set<fabric::MachineId>> ship_wired_ ABSL_GUARDED_BY(wire_mu_);  // per ship worker
  // Restart (files kept at start, applied at RESTORE) and pausing the server
  // thread for the checkpoints a restart takes.
  absl::Mutex files_mu_;
  bool restore_ ABSL_GUARDED_BY(files_mu_) = false;
  RestoreInputs inputs_ ABSL_GUARDED_BY(files_mu_);
  bool restored_ ABSL_GUARDED_BY(files_mu_) = false;
  RestoreReply restore_reply_ ABSL_GUARDED_BY(files_mu_);
  bool fenced_ ABSL_GUARDED_BY(files_mu_) = false;
};

}  // namespace dctk::farm::server

#endif  // DCTK_FARM_SERVER_MACHINE_SERVICE_H_
