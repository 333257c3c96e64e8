#include "farm/server/cm_service.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "farm/server/control.pb.h"
#include "farm/server/restart_plan.h"
#include "farm/tx/recovery.h"
#include "farm/tx/wire.h"
#include "glog/logging.h"

namespace dctk::farm::server {
namespace {

absl::Status StatusOfResult(const cm::Result& r) {
  return absl::Status(static_cast<absl::StatusCode>(r.code()), r.message());
}

// Whether some region is served by another primary in `now` than in
// `before`: a client that follows `before` would read it at the old one.
bool PrimaryChanged(const cm::Configuration& before, const cm::Configuration& now) {
  for (const cm::Region& r : now.regions()) {
    if (r.lost() || r.replicas_size() == 0) continue;
    for (const cm::Region& b : before.regions()) {
      if (b.id() == r.id() && b.replicas_size() > 0 &&
          b.replicas(0).machine() != r.replicas(0).machine()) {
        return true;
      }
    }
  }
  return false;
}

}  // namespace

CmService::CmService(CmServiceOptions o) : o_(std::move(o)) {
  if (!o_.now_ms) {
    const_cast<CmServiceOptions&>(o_).now_ms = [] { return absl::ToUnixMillis(absl::Now()); };
  }
  if (o_.execute) return;
  absl::MutexLock l(&mu_);
  config_ = state_.Execute(cm::InitCommand(o_.replicas, o_.region_size, o_.lease_ms)).config();
}

CmService::~CmService() {
  stop_.Notify();
  if (monitor_.joinable()) monitor_.join();
  server_.reset();
}

absl::Status CmService::Start(const std::string& host) {
  if (o_.execute) {
    cm::Result init = Execute(cm::InitCommand(o_.replicas, o_.region_size, o_.lease_ms));
    if (init.code() == static_cast<int>(absl::StatusCode::kAlreadyExists))
      init = Execute(cm::GetCommand());
    const cm::Configuration& c = init.config();
    if (init.code() == 0 && (c.replicas() != o_.replicas || c.region_size() != o_.region_size ||
                             c.lease_ms() != o_.lease_ms)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "CM: the configuration state is initialised with replicas=", c.replicas(),
          " region_size=", c.region_size(), " lease_ms=", c.lease_ms(), ", not replicas=",
          o_.replicas, " region_size=", o_.region_size, " lease_ms=", o_.lease_ms));
    }
    if (init.code() != 0) {
      absl::Status s = StatusOfResult(init);
      return absl::Status(s.code(),
                          absl::StrCat("CM: Init on the configuration state: ", s.message()));
    }
    // A service restarted over a replicated state finds its regions placed.
    absl::MutexLock l(&mu_);
    ready_ = c.regions_size() >= o_.regions && !c.restarting();
    installed_.store(c.id());
    installed_config_ = c;
    published_ = c;
  }
  server_ = std::make_unique<ControlServer>([this](uint16_t m, absl::string_view req) { return Handle(m, req); });
  absl::Status s = server_->Start(host);
  if (!s.ok()) return s;
  monitor_ = std::thread([this] { Monitor(); });
  return absl::OkStatus();
}

cm::Configuration CmService::config() const {
  absl::MutexLock l(&mu_);
  return config_;
}

CmRecoveryStats CmService::recovery_stats() const {
  absl::MutexLock l(&mu_);
  return stats_;
}

cm::Result CmService::Execute(const cm::Command& c) {
  if (!o_.execute) {
    absl::MutexLock l(&mu_);
    cm::Result r = state_.Execute(c);
    config_ = r.config();
    return r;
  }
  absl::StatusOr<cm::Result> r = o_.execute(c);
  if (!r.ok()) {
    cm::Result failed;
    failed.set_code(static_cast<int32_t>(r.status().code()));
    failed.set_message(std::string(r.status().message()));
    absl::MutexLock l(&mu_);
    *failed.mutable_config() = config_;
    return failed;
  }
  absl::MutexLock l(&mu_);
  if (r->has_config()) config_ = r->config();
  return *std::move(r);
}

absl::StatusOr<std::string> CmService::Handle(uint16_t method, absl::string_view req) {
  if (method == CM_STATE) {
    CmState state;
    absl::MutexLock l(&mu_);
    state.set_ready(ready_);
    *state.mutable_config() = config_;
    return state.SerializeAsString();
  }
  if (method != CM_COMMAND) return absl::InvalidArgumentError(absl::StrCat("CM: unknown control method ", method));
  cm::Command c;
  if (!c.ParseFromArray(req.data(), static_cast<int>(req.size()))) {
    return absl::InvalidArgumentError("CM: malformed command");
  }
  // Time comes from the service, never from the caller.
  if (c.has_join()) c.mutable_join()->set_now_ms(o_.now_ms());
  if (c.has_renew()) c.mutable_renew()->set_now_ms(o_.now_ms());
  if (c.has_get()) {
    absl::MutexLock l(&mu_);
    if (!bootstrap_failed_.ok()) return bootstrap_failed_;
    if (!ready_) return absl::UnavailableError("CM: the cluster is still starting (regions not placed)");
  }
  if (!c.has_join() && !c.has_renew() && !c.has_get() && !c.has_suspect() && !c.has_leave()) {
    return absl::PermissionDeniedError(
        "CM: only Join, Renew, Get, Suspect and Leave are accepted from the network");
  }
  cm::Result r = Execute(c);
  if (c.has_leave() && r.code() == 0) Left(c.leave(), r);
  if ((c.has_get() || c.has_renew()) && r.has_config()) {
    absl::MutexLock l(&mu_);
    // A configuration whose lock recovery has not finished yet: its promoted
    // backups may still serve objects unlocked at their state from before a
    // commit another machine serves. Clients keep the previous one (their
    // reads of a failed machine fail; retried).
    if (published_.id() != 0 && r.config().id() > published_.id()) *r.mutable_config() = published_;
  }
  LOG_IF(WARNING, c.has_suspect() && r.code() == 0)
      << "CM: machine " << c.suspect().machine() << " suspected unresponsive by " << c.suspect().by()
      << "; its lease is no longer renewed";
  return r.SerializeAsString();
}

void CmService::Left(const cm::Command::Leave& c, const cm::Result& r) {
  if (r.removed_size() == 0) {
    LOG(INFO) << "CM: client " << c.machine() << " left (configuration " << r.config().id()
              << " unchanged; its id may join again)";
    return;
  }
  LOG(WARNING) << "CM: client " << c.machine() << " left with " << c.unfinished()
               << " transactions unfinished: removed as failed, configuration " << r.config().id()
               << "; recovery decides them";
  absl::MutexLock l(&mu_);
  left_unfinished_.insert(left_unfinished_.end(), r.removed().begin(), r.removed().end());
}

absl::StatusOr<std::string> CmService::CallMachine(uint32_t machine, uint16_t method, const std::string& req) {
  std::string address;
  const cm::Configuration c = config();
  for (const cm::Machine& m : c.machines()) {
    if (m.id() == machine) address = m.control();
  }
  if (address.empty()) return absl::NotFoundError(absl::StrCat("CM: no control address for machine ", machine));
  auto it = channels_.find(machine);
  if (it == channels_.end()) {
    absl::StatusOr<std::unique_ptr<ControlChannel>> ch = ControlChannel::Connect(address);
    if (!ch.ok()) return ch.status();
    it = channels_.emplace(machine, std::move(*ch)).first;
  }
  absl::StatusOr<std::string> r = it->second->Call(method, req, absl::Seconds(10));
  if (it->second->broken()) channels_.erase(machine);
  return r;
}

void CmService::Monitor() {
  const absl::Duration tick = absl::Milliseconds(std::max<int64_t>(1, o_.lease_ms / 4));
  absl::Time next_tick = absl::Now() + tick;
  // Leases expire on this clock, which a Tick advances by at most two
  // ticks: a CM that was itself descheduled (this thread, and likely those
  // taking renewals) does not expire everyone at once when it runs again,
  // before it took the renewals queued meanwhile; it catches up a tick per
  // Tick.
  int64_t lease_clock_ms = 0;
  bool copying = false;
  // Copy chunks back to back while there are any, but Tick every lease/4.
  // Until the cluster is ready, look for the last expected join every 10 ms
  // (a start or restart waits for nothing else).
  const absl::Duration starting = std::min(tick, absl::Milliseconds(10));
  absl::Time next_bootstrap = absl::InfinitePast();
  absl::Time first_join = absl::InfiniteFuture();  // while not ready
  auto is_ready = [this] {
    absl::MutexLock l(&mu_);
    return ready_;
  };
  while (!stop_.WaitForNotificationWithTimeout(
      copying       ? absl::ZeroDuration()
      : !is_ready() ? starting
                    : std::max(absl::ZeroDuration(), next_tick - absl::Now()))) {
    const bool ready = is_ready();
    if (!ready) {
      next_tick = absl::Now() + tick;
      int storage = 0;
      const cm::Configuration now = config();
      for (const cm::Machine& m : now.machines()) storage += !m.client();
      if (storage > 0) first_join = std::min(first_join, absl::Now());
      const bool all_joined = storage >= static_cast<int>(o_.expected_machines.size());
      if (!all_joined && (storage == 0 || absl::Now() - first_join < o_.restart_wait)) continue;
      if (absl::Now() < next_bootstrap) continue;
      absl::Status s = Bootstrap(all_joined);
      if (absl::IsDataLoss(s)) {
        LOG(ERROR) << "CM: bootstrap failed, not retried: " << s;
        absl::MutexLock l(&mu_);
        bootstrap_failed_ = s;
        next_bootstrap = absl::InfiniteFuture();
        continue;
      }
      if (!s.ok()) {
        LOG(ERROR) << "CM: bootstrap: " << s;
        next_bootstrap = absl::Now() + tick;  // retried every lease/4
        continue;
      }
      first_join = absl::InfiniteFuture();
      absl::MutexLock l(&mu_);
      ready_ = true;
      LOG(INFO) << "CM: cluster ready, configuration " << config_.id();
      continue;
    }
    if (absl::Now() >= next_tick) {
      next_tick = absl::Now() + tick;
      const int64_t now_ms = o_.now_ms();
      lease_clock_ms = lease_clock_ms == 0
                           ? now_ms
                           : std::min(now_ms, lease_clock_ms + 2 * absl::ToInt64Milliseconds(tick));
      cm::Result r = Execute(cm::TickCommand(lease_clock_ms));
      std::vector<uint32_t> removed(r.removed().begin(), r.removed().end());
      for (uint32_t m : removed) {
        LOG(WARNING) << "CM: machine " << m << " missed its lease; configuration "
                     << r.config().id();
      }
      {
        absl::MutexLock l(&mu_);
        removed.insert(removed.end(), left_unfinished_.begin(), left_unfinished_.end());
        left_unfinished_.clear();
      }
      if (!removed.empty()) {
        for (uint32_t m : removed) channels_.erase(m);
        unrecovered_.insert(unrecovered_.end(), removed.begin(), removed.end());
        RecoverRemoved("recovery");
        if (o_.restore_when_down && ClusterDown(config())) BeginRestart();
        continue;
      }
      // Also for a state that went down before this service started.
      if (o_.restore_when_down && ClusterDown(config())) {
        BeginRestart();
        continue;
      }
      if (o_.rereplicate) {
        // Every later commit sends COMMIT-BACKUP to the new backups: the
        // copy's consistency rests on that (see farm/README.md,
        // "Re-replication").
        absl::StatusOr<bool> placed = PlaceNewBackups();
        LOG_IF(ERROR, !placed.ok()) << "CM: placing new backups: " << placed.status();
        if (placed.ok() && *placed) RecoverRemoved("installing new backups");
      }
      // A storage machine that joined the running cluster (a restarted one
      // comes back as a new machine) changed the configuration id; clients
      // that learn it must find the machines in it, so install it.
      if (const uint64_t id = config().id(); id != installed_.load()) {
        LOG(INFO) << "CM: configuration " << id << " (a machine joined) replaces " << installed_.load();
        RecoverRemoved(absl::StrCat("installing configuration ", id));
      } else if (recovery_unfinished_) {
        // It failed after installing the configuration: some machines may
        // still hold regions blocked; every step again (each is idempotent).
        RecoverRemoved(absl::StrCat("finishing the recovery into configuration ", id));
      }
    }
    if (!o_.rereplicate) continue;
    absl::StatusOr<bool> more = CopyStep();
    LOG_IF(WARNING, !more.ok()) << "CM: re-replication: " << more.status();
    copying = more.ok() && *more;  // on an error, retry at the next Tick
  }
}

bool CmService::ClusterDown(const cm::Configuration& c) {
  for (const cm::Machine& m : c.machines()) {
    if (!m.client()) return false;
  }
  return std::any_of(c.regions().begin(), c.regions().end(), [](const cm::Region& r) { return r.lost(); });
}

void CmService::BeginRestart() {
  cm::Result r = Execute(cm::BeginRestartCommand());
  if (r.code() != 0) {
    LOG(ERROR) << "CM: BeginRestart: " << StatusOfResult(r);
    return;
  }
  std::vector<uint32_t> lost;
  for (const cm::Region& region : r.config().regions()) {
    if (region.lost()) lost.push_back(region.id());
  }
  channels_.clear();
  copies_.clear();
  absl::MutexLock l(&mu_);
  ready_ = false;
  LOG(WARNING) << "CM: every storage machine is gone and regions [" << absl::StrJoin(lost, ", ")
               << "] are lost: restarting from the machines' files (configuration " << r.config().id()
               << "); restart the machines with their files";
}

bool CmService::ShortOfCopies(const cm::Configuration& c) const {
  uint32_t storage = 0;
  for (const cm::Machine& m : c.machines()) storage += !m.client();
  const uint32_t want = std::min(c.replicas(), storage);
  for (const cm::Region& r : c.regions()) {
    if (!r.lost() && static_cast<uint32_t>(r.replicas_size()) < want) return true;
  }
  return false;
}

absl::Status CmService::HostReplica(const cm::Region& region, uint32_t machine) {
  HostRegion host;
  host.set_region(region.id());
  host.set_size(region.size());
  absl::StatusOr<std::string> reply = CallMachine(machine, HOST_REGION, host.SerializeAsString());
  if (!reply.ok()) return reply.status();
  HostRegionReply key;
  key.ParseFromString(*reply);
  cm::Result set = Execute(cm::SetReplicaKeyCommand(region.id(), machine, key.key()));
  return set.code() == 0 ? absl::OkStatus() : StatusOfResult(set);
}

absl::StatusOr<bool> CmService::PlaceNewBackups() {
  if (ShortOfCopies(config())) {
    cm::Result added = Execute(cm::AddBackupsCommand());
    if (added.code() != 0) return StatusOfResult(added);
    for (const cm::AddedBackup& a : added.added()) {
      LOG(INFO) << "CM: region " << a.region() << " gets a new backup on machine " << a.machine();
    }
  }
  const cm::Configuration c = config();
  bool hosted = false;
  for (const cm::Region& region : c.regions()) {
    for (const cm::Replica& rep : region.replicas()) {
      if (!rep.copying() || rep.key() != 0) continue;
      if (absl::Status s = HostReplica(region, rep.machine()); !s.ok()) return s;
      hosted = true;
    }
  }
  return hosted;
}

absl::StatusOr<bool> CmService::CopyStep() {
  const cm::Configuration c = config();
  for (const cm::Region& region : c.regions()) {
    for (const cm::Replica& rep : region.replicas()) {
      if (!rep.copying() || rep.key() == 0) continue;
      Copy& copy = copies_[{region.id(), rep.machine(), rep.added_in()}];
      if (copy.next == 0) copy.start = absl::Now();
      CopyChunk ask;
      ask.set_region(region.id());
      ask.set_from(copy.next);
      ask.set_max_bytes(o_.copy_chunk_bytes);
      // The current primary: any primary since the backup was added holds
      // every committed object, so a promotion mid-copy changes nothing.
      absl::StatusOr<std::string> chunk =
          CallMachine(region.replicas(0).machine(), COPY_CHUNK, ask.SerializeAsString());
      if (!chunk.ok()) return chunk.status();
      RegionChunk parsed;
      if (!parsed.ParseFromString(*chunk)) return absl::DataLossError("CM: malformed region chunk");
      absl::StatusOr<std::string> applied = CallMachine(rep.machine(), APPLY_CHUNK, *chunk);
      if (!applied.ok()) return applied.status();
      copy.next = std::max(parsed.next(), copy.next + 1);
      {
        absl::MutexLock l(&mu_);
        stats_.bytes_copied += parsed.objects().size();
      }
      if (copy.next < region.size()) return true;
      // The backup logged every chunk it applied (COPIED records), so a
      // restart from its files has the whole copy without a checkpoint
      // (which would stop its server thread while it writes every region).
      cm::Result up = Execute(cm::CaughtUpCommand(region.id(), rep.machine(), rep.added_in()));
      const absl::Duration took = absl::Now() - copy.start;
      copies_.erase({region.id(), rep.machine(), rep.added_in()});
      if (up.code() != 0) return StatusOfResult(up);
      {
        absl::MutexLock l(&mu_);
        ++stats_.backups_caught_up;
        stats_.last_copy = took;
      }
      LOG(INFO) << "CM: machine " << rep.machine() << " caught up with region " << region.id() << " in " << took;
      // So that a whole-cluster restart counts the copy as complete.
      const cm::Configuration now = config();
      for (const cm::Machine& m : now.machines()) {
        if (m.client()) continue;
        absl::StatusOr<std::string> r = CallMachine(m.id(), RECORD_CONFIG, now.SerializeAsString());
        LOG_IF(WARNING, !r.ok()) << "CM: machine " << m.id() << ": recording configuration " << now.id() << ": "
                                 << r.status();
      }
      return true;
    }
  }
  copies_.clear();
  return false;
}

absl::StatusOr<CmService::SavedFiles> CmService::SavedConfigurations() {
  SavedFiles out;
  const cm::Configuration c = config();
  for (const cm::Machine& m : c.machines()) {
    if (m.client()) continue;
    absl::StatusOr<std::string> r = CallMachine(m.id(), RESTORABLE, "");
    if (!r.ok()) return r.status();
    Restorable kept;
    if (!kept.ParseFromString(*r)) return absl::DataLossError(absl::StrCat("CM: machine ", m.id(), ": malformed Restorable"));
    if (!kept.has_config()) continue;
    out.machines.insert(m.id());
    // Newest first; for one id, the one that saw more copies caught up.
    auto copying = [](const cm::Configuration& c) {
      int n = 0;
      for (const cm::Region& r : c.regions()) {
        for (const cm::Replica& rep : r.replicas()) n += rep.copying();
      }
      return n;
    };
    if (!out.newest || kept.config().id() > out.newest->id() ||
        (kept.config().id() == out.newest->id() && copying(kept.config()) < copying(*out.newest))) {
      out.newest = kept.config();
    }
  }
  return out;
}

absl::Status CmService::BootstrapFromFiles(const SavedFiles& saved, bool all_joined) {
  const absl::Time start = absl::Now();
  std::vector<LostRegion> lost;
  absl::StatusOr<cm::Configuration> plan =
      PlanRestart(*saved.newest, config(), saved.machines, all_joined ? nullptr : &lost);
  if (!plan.ok()) return plan.status();
  for (const LostRegion& l : lost) {
    LOG(ERROR) << "CM restart: gave up waiting for the missing machines after " << o_.restart_wait
               << ": region " << l.region << " stays lost (" << l.why << ")";
  }
  for (const cm::Machine& m : plan->machines()) {
    if (m.client()) continue;
    absl::StatusOr<std::string> r = CallMachine(m.id(), RESTORE, plan->SerializeAsString());
    if (absl::IsDataLoss(r.status())) {
      // The machine answered (transport errors are Unavailable): its files
      // cannot be restored, and a retry would replay the same files.
      return absl::DataLossError(
          absl::StrCat("CM restart: machine ", m.id(),
                       " cannot restore its regions from its files: ", r.status().message(),
                       "; the cluster stays down (repair or delete that machine's files, then "
                       "restart it and the CM)"));
    }
    if (!r.ok()) return absl::Status(r.status().code(), absl::StrCat("machine ", m.id(), ": ", r.status().message()));
    RestoreReply reply;
    if (!reply.ParseFromString(*r)) return absl::DataLossError(absl::StrCat("CM: machine ", m.id(), ": malformed RestoreReply"));
    for (const RegionKey& k : reply.keys()) {
      for (cm::Region& region : *plan->mutable_regions()) {
        if (region.id() != k.region()) continue;
        for (cm::Replica& rep : *region.mutable_replicas()) {
          if (rep.machine() == m.id()) rep.set_key(k.key());
        }
      }
    }
    LOG(INFO) << "CM: machine " << m.id() << " restored from its files: checkpoint at record " << reply.checkpoint_lsn()
              << ", " << reply.pages() << " pages, " << reply.replayed() << " log records replayed, "
              << reply.pending() << " transactions in flight (read " << reply.read_ms() << " ms, restore "
              << reply.restore_ms() << " ms)";
  }
  // A command, so a replicated state restores like a local one; the
  // members (and the leases renewed while the machines restored) stay.
  cm::Result installed = Execute(cm::InstallRestartPlanCommand(*plan));
  if (installed.code() != 0) return StatusOfResult(installed);
  // Transactions in flight at the crash are decided exactly as after a
  // failure: block (every region), collect, decide, install, resolve, resume.
  absl::Status s = Recover({}, /*blocking=*/true);
  if (!s.ok()) return s;
  LOG(INFO) << "CM: restarted from the machines' files (saved configuration " << saved.newest->id() << ") as configuration "
            << config().id() << " in " << absl::Now() - start;
  return absl::OkStatus();
}

absl::Status CmService::Bootstrap(bool all_joined) {
  const bool restarting = config().restarting();
  if (!o_.execute || restarting) {
    absl::StatusOr<SavedFiles> saved = SavedConfigurations();
    if (!saved.ok()) return saved.status();
    if (saved->newest) return BootstrapFromFiles(*saved, all_joined);
    if (restarting) {
      return absl::FailedPreconditionError(
          "CM restart: no machine that joined kept a configuration on file (the lost regions' data is in the "
          "files of the machines that held them: restart those with their files)");
    }
  }
  if (!all_joined) return absl::UnavailableError("CM: waiting for every expected machine to join");
  for (int i = 0; i < o_.regions; ++i) {
    cm::Result r = Execute(cm::CreateRegionCommand());
    if (r.code() != 0) return StatusOfResult(r);
    for (const cm::Region& region : r.config().regions()) {
      if (region.id() != r.region()) continue;
      for (const cm::Replica& rep : region.replicas()) {
        if (absl::Status s = HostReplica(region, rep.machine()); !s.ok()) return s;
      }
    }
  }
  const cm::Configuration c = config();
  for (const cm::Machine& m : c.machines()) {
    if (m.client()) continue;
    absl::StatusOr<std::string> r = CallMachine(m.id(), INSTALL_CONFIG, c.SerializeAsString());
    if (!r.ok()) return r.status();
  }
  installed_.store(c.id());
  installed_config_ = c;
  Publish(c);
  return absl::OkStatus();
}

void CmService::Publish(const cm::Configuration& c) {
  absl::MutexLock l(&mu_);
  published_ = c;
}

absl::Status CmService::AwaitClients(const cm::Configuration& c) {
  const absl::Time start = absl::Now();
  // Renewals from now on are answered with `c` or newer (published), so the
  // leases as they stand now bound the wait.
  const cm::Configuration at_start = config();
  std::vector<uint32_t> behind = cm::ClientsBehind(at_start, at_start, c.id(), o_.now_ms());
  const std::vector<uint32_t> first = behind;
  while (!behind.empty()) {
    if (stop_.WaitForNotificationWithTimeout(absl::Milliseconds(1))) {
      return absl::CancelledError(absl::StrCat("CM: stopped while waiting for clients [",
                                               absl::StrJoin(behind, ", "),
                                               "] to follow configuration ", c.id()));
    }
    behind = cm::ClientsBehind(at_start, config(), c.id(), o_.now_ms());
  }
  // Those still members that never acknowledged it: their leases ran out.
  const int expired = static_cast<int>(
      cm::ClientsBehind(at_start, config(), c.id(), std::numeric_limits<int64_t>::min()).size());
  const absl::Duration took = absl::Now() - start;
  LOG_IF(INFO, !first.empty())
      << "CM: configuration " << c.id() << ": waited " << took << " for clients ["
      << absl::StrJoin(first, ", ") << "] to follow it (" << expired
      << " lease(s) ran out unacknowledged) before resuming regions whose primary changed";
  absl::MutexLock l(&mu_);
  ++stats_.ack_waits;
  stats_.last_ack_wait = took;
  stats_.clients_expired += expired;
  return absl::OkStatus();
}

void CmService::RecoverRemoved(const std::string& what) {
  absl::Status s = Recover(unrecovered_, o_.blocking_recovery);
  recovery_unfinished_ = !s.ok();
  if (s.ok()) {
    unrecovered_.clear();
  } else {
    LOG(ERROR) << "CM: " << what << ": " << s;
  }
}

absl::Status CmService::Recover(const std::vector<uint32_t>& removed, bool blocking) {
  const absl::Time start = absl::Now();
  const cm::Configuration c = config();
  // Only the regions whose replicas changed stop; the machines serve the
  // new configuration's transactions on the others meanwhile. An empty
  // BLOCK stops every region.
  RecoveryScope scope;
  scope.set_config(c.id());
  for (RegionId region : tx::ChangedRegions(installed_config_, c)) scope.add_recovering(region);
  scope.mutable_failed()->CopyFrom(c.failed());
  const std::string block = blocking ? std::string() : scope.SerializeAsString();
  std::vector<tx::InFlightRecord> records;
  for (const cm::Machine& m : c.machines()) {
    if (m.client()) continue;
    absl::StatusOr<std::string> r = CallMachine(m.id(), BLOCK, block);
    if (!r.ok()) return r.status();
    InFlight in;
    in.ParseFromString(*r);
    for (const InFlightRecord& rec : in.records()) {
      absl::StatusOr<tx::LockRequest> req = tx::DecodeLockRequest(rec.request());
      if (!req.ok()) return req.status();
      records.push_back({rec.tx(), rec.machine(), static_cast<tx::LogType>(rec.type()), rec.primary_committed(),
                         std::move(*req)});
    }
  }
  TxList ask;
  for (const tx::InFlightRecord& r : records) ask.add_tx(r.tx);
  absl::flat_hash_set<tx::TxId> committed;
  for (const cm::Machine& m : c.machines()) {
    if (m.client()) continue;
    absl::StatusOr<std::string> r = CallMachine(m.id(), KNOWN, ask.SerializeAsString());
    if (!r.ok()) return r.status();
    TxList known;
    known.ParseFromString(*r);
    committed.insert(known.tx().begin(), known.tx().end());
  }
  std::vector<tx::Resolution> decisions = tx::DecideInFlight(records, committed);
  Resolutions out, commits;
  for (tx::Resolution& d : decisions) {
    Resolution* r = out.add_resolutions();
    r->set_tx(d.tx);
    r->set_commit(d.commit);
    r->set_entries(tx::Encode(tx::LockRequest{0, d.tx, {}, std::move(d.entries)}));
    if (d.commit) *commits.add_resolutions() = *r;
  }
  // Lock recovery before any machine installs the configuration (a promoted
  // backup without a record of a commit locks its objects), and before
  // clients learn it: from then on a one-sided read of a promoted backup
  // finds each object an in-flight transaction writes locked (BLOCK locked
  // those of the records a machine holds).
  if (commits.resolutions_size() > 0) {
    const std::string req = commits.SerializeAsString();
    for (const cm::Machine& m : c.machines()) {
      if (m.client()) continue;
      absl::StatusOr<std::string> r = CallMachine(m.id(), RECOVER_LOCKS, req);
      if (!r.ok()) return r.status();
    }
  }
  Publish(c);
  Resume resume;
  resume.set_config(c.id());
  resume.set_scoped(!blocking);
  // Compared before INSTALL_CONFIG replaces what the machines had.
  const bool await_clients = o_.await_client_acks && PrimaryChanged(installed_config_, c);
  for (uint16_t step : {INSTALL_CONFIG, RESOLVE, RESUME}) {
    if (step == RESOLVE && !blocking && o_.while_recovering) {
      o_.while_recovering(c, {scope.recovering().begin(), scope.recovering().end()});
    }
    // No write commits at a promoted primary while a client may still read
    // the old one.
    if (step == RESUME && await_clients) {
      if (absl::Status s = AwaitClients(c); !s.ok()) return s;
    }
    const std::string req = step == INSTALL_CONFIG ? c.SerializeAsString()
                            : step == RESOLVE      ? out.SerializeAsString()
                                                   : resume.SerializeAsString();
    for (const cm::Machine& m : c.machines()) {
      if (m.client()) continue;
      absl::StatusOr<std::string> r = CallMachine(m.id(), step, req);
      if (!r.ok()) return r.status();
    }
    if (step == INSTALL_CONFIG) {
      installed_.store(c.id());
      installed_config_ = c;
    }
  }
  const absl::Duration took = absl::Now() - start;
  if (removed.empty()) {
    LOG(INFO) << "CM: configuration " << c.id() << " installed with new backups: " << decisions.size()
              << " in-flight transactions resolved in " << took;
    return absl::OkStatus();
  }
  absl::MutexLock l(&mu_);
  ++stats_.recoveries;
  stats_.last_duration = took;
  stats_.last_in_flight = static_cast<int>(decisions.size());
  LOG(WARNING) << "CM: recovered from the loss of " << removed.size() << " machine(s) or client(s): " << decisions.size()
               << " in-flight transactions resolved in " << took;
  return absl::OkStatus();
}

}  // namespace dctk::farm::server
