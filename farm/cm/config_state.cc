#include "farm/cm/config_state.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "farm/core/placement_ring.h"

namespace dctk::farm::cm {
namespace {

constexpr uint32_t kVirtualNodes = 64;

Result Error(absl::StatusCode code, std::string message) {
  Result r;
  r.set_code(static_cast<int>(code));
  r.set_message(std::move(message));
  return r;
}

}  // namespace

Result ConfigState::Ok() const {
  Result r;
  *r.mutable_config() = config_;
  return r;
}

Machine* ConfigState::FindMachine(uint32_t id) {
  for (Machine& m : *config_.mutable_machines()) {
    if (m.id() == id) return &m;
  }
  return nullptr;
}

Result ConfigState::Execute(const Command& c) {
  if (c.op_case() != Command::kInit && c.op_case() != Command::kGet && config_.replicas() == 0) {
    return Error(absl::StatusCode::kFailedPrecondition, "CM: not initialised (Init first)");
  }
  switch (c.op_case()) {
    case Command::kInit: return Init(c.init());
    case Command::kJoin: return Join(c.join());
    case Command::kRenew: return Renew(c.renew());
    case Command::kTick: return Tick(c.tick());
    case Command::kCreateRegion: return CreateRegion();
    case Command::kSetReplicaKey: return SetReplicaKey(c.set_replica_key());
    case Command::kRemove: return Remove(c.remove().machine());
    case Command::kGet: return Ok();
    case Command::kAddBackups: return AddBackups();
    case Command::kCaughtUp: return CaughtUp(c.caught_up());
    case Command::kBeginRestart: return BeginRestart();
    case Command::kInstallRestartPlan: return InstallRestartPlan(c.install_restart_plan().plan());
    case Command::kSuspect: return Suspect(c.suspect());
    case Command::kLeave: return Leave(c.leave());
    case Command::OP_NOT_SET: break;
  }
  return Error(absl::StatusCode::kInvalidArgument, "CM: command without an operation");
}

std::string ConfigState::Execute(absl::string_view op) {
  Command c;
  if (!c.ParseFromArray(op.data(), static_cast<int>(op.size()))) {
    return Error(absl::StatusCode::kInvalidArgument, "CM: malformed command").SerializeAsString();
  }
  return Execute(c).SerializeAsString();
}

absl::Status ConfigState::Restore(absl::string_view snapshot) {
  Configuration c;
  if (!c.ParseFromArray(snapshot.data(), static_cast<int>(snapshot.size()))) {
    return absl::DataLossError("CM: malformed snapshot");
  }
  config_ = std::move(c);
  return absl::OkStatus();
}

Result ConfigState::Init(const Command::Init& c) {
  if (config_.replicas() != 0) return Error(absl::StatusCode::kAlreadyExists, "CM: already initialised");
  if (c.replicas() == 0 || c.region_size() == 0 || c.lease_ms() <= 0) {
    return Error(absl::StatusCode::kInvalidArgument, "CM Init: replicas, region_size and lease_ms must be positive");
  }
  config_.set_replicas(c.replicas());
  config_.set_region_size(c.region_size());
  config_.set_lease_ms(c.lease_ms());
  config_.set_id(1);
  return Ok();
}

Result ConfigState::Join(const Command::Join& c) {
  if (c.machine() == 0) return Error(absl::StatusCode::kInvalidArgument, "CM Join: machine id 0 is reserved");
  auto* failed = config_.mutable_failed();
  if (auto it = std::find(failed->begin(), failed->end(), c.machine()); it != failed->end()) {
    if (!config_.restarting()) {
      return Error(absl::StatusCode::kFailedPrecondition,
                   absl::StrCat("CM Join: machine ", c.machine(), " was removed; rejoin under a new id"));
    }
    // A whole-cluster restart: it comes back with its files, and the
    // restart plan decides what it holds.
    failed->erase(it);
  }
  if (Machine* m = FindMachine(c.machine())) {
    if (m->endpoint() != c.endpoint()) {
      return Error(absl::StatusCode::kAlreadyExists,
                   absl::StrCat("CM Join: machine ", c.machine(), " is already a member at ", m->endpoint()));
    }
    if (m->suspected()) {
      return Error(absl::StatusCode::kFailedPrecondition,
                   absl::StrCat("CM Join: machine ", c.machine(), " is suspected unresponsive; its lease is not renewed"));
    }
    m->set_lease_expiry_ms(c.now_ms() + config_.lease_ms());
    return Ok();
  }
  if (config_.id() >> 31 != 0) {
    return Error(absl::StatusCode::kResourceExhausted,
                 absl::StrCat("CM Join: configuration id ", config_.id(),
                              " leaves no room for incarnations (2^63 + id 2^32 + n)"));
  }
  Machine* m = config_.add_machines();
  m->set_id(c.machine());
  m->set_incarnation(IssueIncarnation());
  m->set_endpoint(c.endpoint());
  m->set_control(c.control());
  m->set_client(c.client());
  m->set_lease_expiry_ms(c.now_ms() + config_.lease_ms());
  std::sort(config_.mutable_machines()->begin(), config_.mutable_machines()->end(),
            [](const Machine& a, const Machine& b) { return a.id() < b.id(); });
  // A client changes nothing machines act on (no regions): same configuration.
  if (!c.client()) config_.set_id(config_.id() + 1);
  return Ok();
}

uint64_t ConfigState::IssueIncarnation() {
  const uint64_t floor = (uint64_t{1} << 63) | (config_.id() << 32);
  config_.set_last_incarnation(std::max(config_.last_incarnation() + 1, floor));
  return config_.last_incarnation();
}

Result ConfigState::Renew(const Command::Renew& c) {
  Machine* m = FindMachine(c.machine());
  if (m == nullptr) {
    return Error(absl::StatusCode::kNotFound, absl::StrCat("CM Renew: machine ", c.machine(), " is not a member"));
  }
  if (m->suspected()) {
    return Error(absl::StatusCode::kFailedPrecondition,
                 absl::StrCat("CM Renew: machine ", c.machine(), " is suspected unresponsive by a coordinator; its lease "
                              "is not renewed (it is removed when the lease runs out, at ", m->lease_expiry_ms(), ")"));
  }
  m->set_lease_expiry_ms(std::max(m->lease_expiry_ms(), c.now_ms() + config_.lease_ms()));
  m->set_applied_config(std::max(m->applied_config(), c.applied_config()));
  return Ok();
}

Result ConfigState::Suspect(const Command::Suspect& c) {
  Machine* m = FindMachine(c.machine());
  if (m == nullptr) {
    return Error(absl::StatusCode::kNotFound, absl::StrCat("CM Suspect: machine ", c.machine(), " is not a member"));
  }
  if (m->client()) {
    return Error(absl::StatusCode::kInvalidArgument,
                 absl::StrCat("CM Suspect: machine ", c.machine(), " is a client (it holds no regions)"));
  }
  m->set_suspected(true);
  return Ok();
}

Result ConfigState::Leave(const Command::Leave& c) {
  auto* ms = config_.mutable_machines();
  auto it =
      std::find_if(ms->begin(), ms->end(), [&](const Machine& m) { return m.id() == c.machine(); });
  if (it == ms->end()) {
    return Error(absl::StatusCode::kNotFound,
                 absl::StrCat("CM Leave: machine ", c.machine(),
                              " is not a member (it never joined, already left, or was removed)"));
  }
  if (!it->client()) {
    return Error(
        absl::StatusCode::kInvalidArgument,
        absl::StrCat("CM Leave: machine ", c.machine(),
                     " is a storage machine; only clients leave (a storage machine's regions "
                     "need a failure's recovery)"));
  }
  // Participants may hold its records or locks: recovery decides them.
  if (c.unfinished() > 0) return Remove(c.machine());
  // Nothing of it left anywhere: no machine acts differently (as at its Join).
  ms->erase(it);
  return Ok();
}

Result ConfigState::Tick(const Command::Tick& c) {
  std::vector<uint32_t> expired;
  for (const Machine& m : config_.machines()) {
    if (m.lease_expiry_ms() < c.now_ms()) expired.push_back(m.id());
  }
  Result r;
  for (uint32_t id : expired) {
    Result one = Remove(id);
    if (one.code() != 0) return one;
  }
  r = Ok();
  for (uint32_t id : expired) r.add_removed(id);
  return r;
}

void ConfigState::RemoveFromRegions(uint32_t machine) {
  for (Region& region : *config_.mutable_regions()) {
    auto* reps = region.mutable_replicas();
    for (int i = 0; i < reps->size(); ++i) {
      if (reps->Get(i).machine() == machine) {
        // Copying backups come after every caught-up one, so if i == 0 the
        // backup now at [0] is promoted only if it holds the whole region.
        reps->erase(reps->begin() + i);
        break;
      }
    }
    if (reps->empty() || reps->Get(0).copying()) {
      region.set_lost(true);  // no complete copy left
      reps->Clear();
    }
  }
}

Result ConfigState::Remove(uint32_t machine) {
  auto* ms = config_.mutable_machines();
  auto it = std::find_if(ms->begin(), ms->end(), [&](const Machine& m) { return m.id() == machine; });
  if (it == ms->end()) {
    return Error(absl::StatusCode::kNotFound, absl::StrCat("CM Remove: machine ", machine, " is not a member"));
  }
  ms->erase(it);
  config_.add_failed(machine);
  RemoveFromRegions(machine);
  config_.set_id(config_.id() + 1);
  Result r = Ok();
  r.add_removed(machine);
  return r;
}

std::vector<uint32_t> ConfigState::StorageMachines() const {
  std::vector<uint32_t> live;
  for (const Machine& m : config_.machines()) {
    if (!m.client()) live.push_back(m.id());
  }
  return live;
}

Result ConfigState::AddBackups() {
  const std::vector<uint32_t> live = StorageMachines();
  Result r;
  if (live.empty()) return Ok();
  absl::StatusOr<PlacementRing> ring = PlacementRing::Create(live, kVirtualNodes);
  if (!ring.ok()) return Error(ring.status().code(), std::string(ring.status().message()));
  const uint64_t next = config_.id() + 1;
  const uint32_t want = std::min<uint32_t>(config_.replicas(), static_cast<uint32_t>(live.size()));
  for (Region& region : *config_.mutable_regions()) {
    if (region.lost() || static_cast<uint32_t>(region.replicas_size()) >= want) continue;
    // The region's own order on the ring (as CreateRegion placed it), minus
    // the machines that already hold a copy.
    absl::StatusOr<std::vector<fabric::MachineId>> order = ring->Place(region.id(), static_cast<uint32_t>(live.size()));
    if (!order.ok()) return Error(order.status().code(), std::string(order.status().message()));
    for (fabric::MachineId m : *order) {
      if (static_cast<uint32_t>(region.replicas_size()) >= want) break;
      const bool holds = std::any_of(region.replicas().begin(), region.replicas().end(),
                                     [&](const Replica& rep) { return rep.machine() == m; });
      if (holds) continue;
      Replica* rep = region.add_replicas();
      rep->set_machine(m);
      rep->set_copying(true);
      rep->set_added_in(next);
      AddedBackup* a = r.add_added();
      a->set_region(region.id());
      a->set_machine(m);
    }
  }
  if (r.added_size() > 0) config_.set_id(next);
  *r.mutable_config() = config_;
  return r;
}

Result ConfigState::CaughtUp(const Command::CaughtUp& c) {
  for (Region& region : *config_.mutable_regions()) {
    if (region.id() != c.region()) continue;
    for (Replica& rep : *region.mutable_replicas()) {
      if (rep.machine() != c.machine()) continue;
      if (!rep.copying() || rep.added_in() != c.added_in()) {
        return Error(absl::StatusCode::kFailedPrecondition,
                     absl::StrCat("CM CaughtUp: machine ", c.machine(), "'s copy of region ", c.region(),
                                  rep.copying() ? absl::StrCat(" was added in configuration ", rep.added_in(),
                                                               ", not ", c.added_in())
                                                : " is not copying"));
      }
      rep.set_copying(false);
      return Ok();
    }
    return Error(absl::StatusCode::kNotFound,
                 absl::StrCat("CM CaughtUp: machine ", c.machine(), " holds no copy of region ", c.region()));
  }
  return Error(absl::StatusCode::kNotFound, absl::StrCat("CM CaughtUp: no region ", c.region()));
}

Result ConfigState::BeginRestart() {
  if (config_.restarting()) return Ok();
  if (!StorageMachines().empty()) {
    return Error(absl::StatusCode::kFailedPrecondition,
                 absl::StrCat("CM BeginRestart: ", StorageMachines().size(), " storage machines are still members"));
  }
  const bool lost = std::any_of(config_.regions().begin(), config_.regions().end(),
                                [](const Region& r) { return r.lost(); });
  if (!lost) return Error(absl::StatusCode::kFailedPrecondition, "CM BeginRestart: no region is lost");
  config_.set_restarting(true);
  config_.set_id(config_.id() + 1);
  return Ok();
}

Result ConfigState::InstallRestartPlan(const Configuration& plan) {
  if (!config_.restarting() && config_.regions_size() > 0) {
    return Error(absl::StatusCode::kFailedPrecondition,
                 "CM InstallRestartPlan: the cluster is running (not restarting, regions placed)");
  }
  if (plan.replicas() != config_.replicas() || plan.region_size() != config_.region_size() ||
      plan.lease_ms() != config_.lease_ms()) {
    return Error(absl::StatusCode::kInvalidArgument,
                 absl::StrCat("CM InstallRestartPlan: the plan has replicas=", plan.replicas(), " region_size=",
                              plan.region_size(), " lease_ms=", plan.lease_ms(), ", the CM replicas=",
                              config_.replicas(), " region_size=", config_.region_size(),
                              " lease_ms=", config_.lease_ms()));
  }
  for (const Region& region : plan.regions()) {
    if (region.lost()) continue;
    for (const Replica& rep : region.replicas()) {
      const Machine* m = FindMachine(rep.machine());
      if (m == nullptr || m->client()) {
        return Error(absl::StatusCode::kFailedPrecondition,
                     absl::StrCat("CM InstallRestartPlan: region ", region.id(), "'s replica on machine ",
                                  rep.machine(), " is not a storage member"));
      }
    }
  }
  *config_.mutable_regions() = plan.regions();
  config_.clear_failed();
  for (uint32_t id : plan.failed()) {
    if (FindMachine(id) == nullptr) config_.add_failed(id);
  }
  config_.set_restarting(false);
  config_.set_id(std::max(plan.id(), config_.id() + 1));
  // Members that joined while the cluster was down got incarnations under a
  // lower id (a fresh CM's): issued again above the restored id and above
  // the last one the plan's configuration (the machines' files) issued.
  config_.set_last_incarnation(std::max(config_.last_incarnation(), plan.last_incarnation()));
  for (Machine& m : *config_.mutable_machines()) m.set_incarnation(IssueIncarnation());
  return Ok();
}

Result ConfigState::CreateRegion() {
  const std::vector<uint32_t> live = StorageMachines();
  if (live.empty()) return Error(absl::StatusCode::kFailedPrecondition, "CM CreateRegion: no machines");
  absl::StatusOr<PlacementRing> ring = PlacementRing::Create(live, kVirtualNodes);
  if (!ring.ok()) return Error(ring.status().code(), std::string(ring.status().message()));
  uint32_t id = 1;
  for (const Region& r : config_.regions()) id = std::max(id, r.id() + 1);
  const uint32_t n = std::min<uint32_t>(config_.replicas(), static_cast<uint32_t>(live.size()));
  absl::StatusOr<std::vector<fabric::MachineId>> place = ring->Place(id, n);
  if (!place.ok()) return Error(place.status().code(), std::string(place.status().message()));
  Region* region = config_.add_regions();
  region->set_id(id);
  region->set_size(config_.region_size());
  for (fabric::MachineId m : *place) region->add_replicas()->set_machine(m);
  config_.set_id(config_.id() + 1);
  Result r = Ok();
  r.set_region(id);
  return r;
}

Result ConfigState::SetReplicaKey(const Command::SetReplicaKey& c) {
  for (Region& region : *config_.mutable_regions()) {
    if (region.id() != c.region()) continue;
    for (Replica& rep : *region.mutable_replicas()) {
      if (rep.machine() == c.machine()) {
        rep.set_key(c.key());
        config_.set_id(config_.id() + 1);
        return Ok();
      }
    }
    return Error(absl::StatusCode::kNotFound,
                 absl::StrCat("CM SetReplicaKey: machine ", c.machine(), " holds no replica of region ", c.region()));
  }
  return Error(absl::StatusCode::kNotFound, absl::StrCat("CM SetReplicaKey: no region ", c.region()));
}

std::string ReplicatedConfigState::Execute(uint64_t slot, absl::string_view op) {
  before_[slot] = state_.Snapshot();
  return state_.Execute(op);
}

void ReplicatedConfigState::Rollback(uint64_t slot) {
  auto it = before_.upper_bound(slot);
  if (it == before_.end()) return;
  // The state before the oldest undone slot is the state after `slot`.
  absl::Status s = state_.Restore(it->second);
  (void)s;  // our own snapshot: always parses
  before_.erase(it, before_.end());
}

void ReplicatedConfigState::Commit(uint64_t slot) {
  before_.erase(before_.begin(), before_.upper_bound(slot));
}

std::string ReplicatedConfigState::Snapshot(uint64_t slot) const {
  // The state before the oldest slot executed after `slot` is the state after it.
  auto it = before_.upper_bound(slot);
  return it == before_.end() ? state_.Snapshot() : it->second;
}

absl::Status ReplicatedConfigState::Restore(absl::string_view snapshot) {
  absl::Status s = state_.Restore(snapshot);
  if (s.ok()) before_.clear();
  return s;
}

std::vector<uint32_t> ClientsBehind(const Configuration& at_start, const Configuration& now,
                                    uint64_t id, int64_t now_ms) {
  std::vector<uint32_t> behind;
  for (const Machine& m : at_start.machines()) {
    if (!m.client() || m.lease_expiry_ms() < now_ms) continue;
    for (const Machine& n : now.machines()) {
      if (n.id() == m.id() && n.applied_config() < id) behind.push_back(m.id());
    }
  }
  return behind;
}

Command InitCommand(uint32_t replicas, uint64_t region_size, int64_t lease_ms) {
  Command c;
  c.mutable_init()->set_replicas(replicas);
  c.mutable_init()->set_region_size(region_size);
  c.mutable_init()->set_lease_ms(lease_ms);
  return c;
}
Command JoinCommand(uint32_t machine, const std::string& endpoint, const std::string& control, int64_t now_ms,
                    bool client) {
  Command c;
  c.mutable_join()->set_client(client);
  c.mutable_join()->set_machine(machine);
  c.mutable_join()->set_endpoint(endpoint);
  c.mutable_join()->set_control(control);
  c.mutable_join()->set_now_ms(now_ms);
  return c;
}
Command RenewCommand(uint32_t machine, int64_t now_ms, uint64_t applied_config) {
  Command c;
  c.mutable_renew()->set_machine(machine);
  c.mutable_renew()->set_now_ms(now_ms);
  c.mutable_renew()->set_applied_config(applied_config);
  return c;
}
Command TickCommand(int64_t now_ms) {
  Command c;
  c.mutable_tick()->set_now_ms(now_ms);
  return c;
}
Command CreateRegionCommand() {
  Command c;
  c.mutable_create_region();
  return c;
}
Command SetReplicaKeyCommand(uint32_t region, uint32_t machine, uint32_t key) {
  Command c;
  c.mutable_set_replica_key()->set_region(region);
  c.mutable_set_replica_key()->set_machine(machine);
  c.mutable_set_replica_key()->set_key(key);
  return c;
}
Command RemoveMachineCommand(uint32_t machine) {
  Command c;
  c.mutable_remove()->set_machine(machine);
  return c;
}
Command GetCommand() {
  Command c;
  c.mutable_get();
  return c;
}
Command AddBackupsCommand() {
  Command c;
  c.mutable_add_backups();
  return c;
}
Command BeginRestartCommand() {
  Command c;
  c.mutable_begin_restart();
  return c;
}
Command InstallRestartPlanCommand(const Configuration& plan) {
  Command c;
  *c.mutable_install_restart_plan()->mutable_plan() = plan;
  return c;
}
Command SuspectCommand(uint32_t machine, uint32_t by) {
  Command c;
  c.mutable_suspect()->set_machine(machine);
  c.mutable_suspect()->set_by(by);
  return c;
}
Command LeaveCommand(uint32_t machine, uint32_t unfinished) {
  Command c;
  c.mutable_leave()->set_machine(machine);
  c.mutable_leave()->set_unfinished(unfinished);
  return c;
}
Command CaughtUpCommand(uint32_t region, uint32_t machine, uint64_t added_in) {
  Command c;
  c.mutable_caught_up()->set_region(region);
  c.mutable_caught_up()->set_machine(machine);
  c.mutable_caught_up()->set_added_in(added_in);
  return c;
}

}  // namespace dctk::farm::cm
