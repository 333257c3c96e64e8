#include "bastion/manager/manager.h"

#include <sys/stat.h>

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "bastion/manager/host_network_policy.h"
#include "bastion/manager/state_file.h"

namespace dctk::bastion {
namespace {

constexpr size_t kMaxUncovered = 4096;

bool SameNetwork(const ContainerInfo& a, const ContainerInfo& b) {
  return a.ip == b.ip && a.mac == b.mac && a.host_ifindex == b.host_ifindex &&
         a.gateway == b.gateway && a.labels == b.labels && a.name == b.name;
}

bool Auditable(uint32_t reason) {
  switch (reason) {
#define BASTION_AUDITABLE_CASE_(c, value, name, help, auditable) \
  case c:                                                        \
    return auditable;
    BASTION_FOR_EACH_DROP_REASON(BASTION_AUDITABLE_CASE_)
#undef BASTION_AUDITABLE_CASE_
  }
  return false;
}

}  // namespace

Manager::Manager(Datapath* datapath, Options options, ManagerMetrics* metrics)
    : datapath_(datapath),
      options_(std::move(options)),
      metrics_(metrics),
      input_(options_.host_network != nullptr) {}

Manager::~Manager() {
  if (!options_.detach_on_exit) return;
  absl::MutexLock l(&mu_);
  for (const auto& [ifindex, unused] : attached_) datapath_->Detach(ifindex).IgnoreError();
  for (const auto& [key, path] : cgroups_) {
    options_.host_network->DetachCgroup(path).IgnoreError();  // the cgroup may be gone
  }
}

void Manager::AddSource(std::unique_ptr<ContainerSource> source) {
  sources_.push_back(std::move(source));
}

absl::StatusOr<std::string> Manager::Start() {
  if (options_.state_file.empty()) return std::string("no state file: starting from empty maps");
  absl::StatusOr<SavedState> saved = ReadStateFile(options_.state_file);
  if (absl::IsNotFound(saved.status())) {
    return absl::StrCat("no saved state in ", options_.state_file, ": starting from empty maps");
  }
  if (!saved.ok()) return saved.status();
  absl::MutexLock l(&mu_);
  ids_ = saved->ids;
  next_id_ = std::max<uint32_t>(saved->next_id, 1);
  if (!saved->policy_text.empty()) {
    absl::StatusOr<Policy> p = ParsePolicy(saved->policy_text, saved->policy_file);
    if (!p.ok()) return p.status();
    policy_ = *p;
    policy_text_ = saved->policy_text;
  }
  adopted_ = saved->pending ? Union(saved->applied, *saved->pending) : saved->applied;
  adopting_ = true;
  return absl::StrCat("adopting saved state: ", ids_.size(), " containers, ",
                      adopted_.rules.size(), " rule blocks, ", adopted_.dependencies.size(),
                      " dependencies", saved->pending ? " (an apply was interrupted)" : "");
}

std::vector<ContainerInfo> Manager::Containers() const {
  absl::MutexLock l(&mu_);
  std::vector<ContainerInfo> out;
  out.reserve(containers_.size());
  for (const auto& [key, c] : containers_) out.push_back(c);
  return out;
}

void Manager::ResetInputLocked() {
  input_.Clear();
  for (const auto& [key, c] : containers_) {
    // Each was placed before (it is running): placing it again cannot fail.
    absl::Status placed = input_.Upsert(key, c);
    CHECK(placed.ok()) << placed;
  }
}

absl::StatusOr<DatapathState> Manager::CompileLocked(const Policy& policy) const {
  absl::StatusOr<DatapathState> state = CompilePolicy(policy, input_.containers());
  if (state.ok()) FinishHostNetworkState(input_.host_network_ids(), *state);
  return state;
}

absl::StatusOr<DatapathState> Manager::CompileSliceLocked(const Policy& policy,
                                                          const std::set<uint32_t>& ids) const {
  absl::StatusOr<DatapathState> state = CompileSlice(policy, input_.containers(), ids);
  if (state.ok()) FinishHostNetworkState(input_.host_network_ids(), *state);
  return state;
}

absl::Status Manager::SaveLocked(const DatapathState* pending) {
  if (options_.state_file.empty()) return absl::OkStatus();
  SavedState s;
  // While adopting, the maps may still hold anything adopted: keep it in the file.
  s.applied = adopting_ ? Union(adopted_, running_.state()) : running_.state();
  if (pending) s.pending = *pending;
  s.ids = ids_;
  for (const auto& [key, c] : containers_) s.names[key] = c.name;
  s.next_id = next_id_;
  s.policy_text = policy_text_;
  s.policy_file = policy_.file;
  if (absl::Status st = WriteStateFile(options_.state_file, s); !st.ok()) return st;
  journal_bytes_ = 0;
  struct stat info;
  snapshot_bytes_ = stat(options_.state_file.c_str(), &info) == 0 ? info.st_size : 0;
  return absl::OkStatus();
}

absl::Status Manager::ApplyLocked(const DatapathState& next) {
  const absl::Time start = absl::Now();
  if (adopting_) {
    // The maps hold `adopted_`, give or take an interrupted apply: write all of `next`,
    // then remove whatever else may be there.
    DatapathState maybe = Union(adopted_, running_.state());
    if (absl::Status s = SaveLocked(&next); !s.ok()) return s;
    if (absl::Status s = ApplyState(*datapath_, {}, next); !s.ok()) return s;
    if (absl::Status s = ApplyState(*datapath_, Minus(maybe, next), {}, /*tolerate_missing=*/true);
        !s.ok()) {
      return s;
    }
    adopting_ = false;
    adopted_ = {};
  } else {
    if (absl::Status s = SaveLocked(&next); !s.ok()) return s;
    if (absl::Status s = ApplyState(*datapath_, running_.state(), next); !s.ok()) {
      SaveLocked(nullptr).IgnoreError();
      return s;
    }
  }
  running_.Reset(next);
  if (metrics_) {
    metrics_->policy_applies_total.Increment();
    metrics_->apply_latency.Record(absl::ToInt64Nanoseconds(absl::Now() - start));
    metrics_->map_rules.Set(running_.state().rules.size());
    metrics_->map_dependencies.Set(running_.state().dependencies.size());
  }
  return absl::OkStatus();
}

absl::Status Manager::ApplySliceLocked(const std::set<uint32_t>& ids, const DatapathState& slice,
                                       StateDelta delta) {
  DatapathState old_slice = running_.Slice(ids);
  old_slice.hosts = running_.state().hosts;  // the slice carries all hosts: gateways may come or go
  old_slice.groups = running_.state().groups;  // and all groups: their members may come or go
  return ApplyDeltaLocked(old_slice, slice, std::move(delta));
}

absl::Status Manager::ApplyDeltaLocked(const DatapathState& remove, const DatapathState& add,
                                       StateDelta delta) {
  const absl::Time start = absl::Now();
  const bool journal = !options_.state_file.empty();
  if (journal) {
    // Journalled before the apply (so a crash mid-way is adopted as pending), O(delta).
    delta.remove = remove;
    delta.add = add;
    absl::StatusOr<size_t> n = AppendStateDelta(options_.state_file, delta);
    if (!n.ok()) return n.status();
    journal_bytes_ += *n;
  }
  absl::Status applied = ApplyState(*datapath_, remove, add);
  if (journal) {
    const bool rolled_back = !applied.ok() && !absl::IsDataLoss(applied);
    if (applied.ok() || rolled_back) {
      absl::StatusOr<size_t> n = AppendStateDeltaEnd(options_.state_file, applied.ok());
      if (n.ok()) journal_bytes_ += *n;
    }
  }
  if (!applied.ok()) return applied;
  // Patch the running state in place: O(delta), not O(all entries).
  running_.Patch(remove, add);
  if (metrics_) {
    metrics_->policy_applies_total.Increment();
    metrics_->apply_latency.Record(absl::ToInt64Nanoseconds(absl::Now() - start));
    metrics_->map_rules.Set(running_.state().rules.size());
    metrics_->map_dependencies.Set(running_.state().dependencies.size());
  }
  return absl::OkStatus();
}

ReconcileReport Manager::Reconcile() {
  const absl::Time start = absl::Now();
  ReconcileReport report;
  // Listing runs outside the lock: it may be slow (HTTP, directory scans).
  std::vector<std::pair<std::string, absl::StatusOr<std::vector<ContainerInfo>>>> lists;
  // Container key -> cgroup of each listed host-network container (or why it is unknown).
  std::map<std::string, absl::StatusOr<std::string>> cgroups;
  bool all_listed = true;
  for (const auto& source : sources_) {
    lists.push_back({source->name(), source->List()});
    all_listed &= lists.back().second.ok();
    if (!lists.back().second.ok() || !options_.host_network) continue;
    for (const ContainerInfo& c : *lists.back().second) {
      if (IsHostNetwork(c)) {
        cgroups.emplace(absl::StrCat(source->name(), "/", c.runtime_id),
                        source->HostNetworkCgroup(c.runtime_id));
      }
    }
  }

  absl::MutexLock l(&mu_);
  std::map<std::string, ContainerInfo> now;
  // One container seen by two sources is one container: a host veth, or a host-network
  // cgroup, belongs to one. The earlier source's entry wins: bastiond adds the netns
  // directory first, where bastion-oci-hook and bastion-cni register a container before
  // it starts, so the Docker API's later view of the same container is not a second one.
  std::set<int> veths;
  std::set<std::string> host_cgroups;
  auto first_sighting = [&](const std::string& key, const ContainerInfo& c) {
    if (c.host_ifindex > 0) return veths.insert(c.host_ifindex).second;
    auto cg = cgroups.find(key);
    if (!IsHostNetwork(c) || cg == cgroups.end() || !cg->second.ok()) return true;
    return host_cgroups.insert(*cg->second).second;
  };
  for (auto& [source, list] : lists) {
    if (!list.ok()) {
      report.errors.push_back(absl::StrCat(source, ": ", list.status().message()));
      // Keep what this source had: a failed listing is not a disappearance.
      for (const auto& [key, c] : containers_) {
        if (key.rfind(source + "/", 0) != 0) continue;
        if (auto cg = cgroups_.find(key); cg != cgroups_.end()) cgroups.emplace(key, cg->second);
        if (first_sighting(key, c)) now.emplace(key, c);
      }
      continue;
    }
    for (ContainerInfo& c : *list) {
      const std::string key = absl::StrCat(source, "/", c.runtime_id);
      if (first_sighting(key, c)) now.emplace(key, std::move(c));
    }
  }
  // The difference, in one walk over both (each sorted by key): O(containers), no copies.
  std::vector<const std::string*> came, moved, gone;  // keys; `moved`: its network changed
  std::set<uint32_t> touched;  // the ids whose entries change
  bool host_network_touched = false;
  {
    auto old = containers_.begin();
    for (auto& [key, c] : now) {
      for (; old != containers_.end() && old->first < key; ++old) gone.push_back(&old->first);
      const bool known = old != containers_.end() && old->first == key;
      if (known) {
        c.id = old->second.id;
      } else {
        auto id = ids_.find(key);  // adopted from the state file, or new
        if (id == ids_.end()) id = ids_.emplace(key, next_id_++).first;
        c.id = id->second;
      }
      if (!known || !SameNetwork(old->second, c)) {
        (known ? moved : came).push_back(&key);
        touched.insert(c.id);
        host_network_touched |= IsHostNetwork(c) || (known && IsHostNetwork(old->second));
      }
      if (known) ++old;
    }
    for (; old != containers_.end(); ++old) gone.push_back(&old->first);
  }
  for (const std::string* key : came) report.added.push_back(now.at(*key).name);
  for (const std::string* key : gone) {
    const ContainerInfo& c = containers_.at(*key);
    report.removed.push_back(c.name);
    touched.insert(c.id);
    host_network_touched |= IsHostNetwork(c);
  }
  if (metrics_) metrics_->reconciles_total.Increment();
  if (touched.empty() && !adopting_) {
    // Cgroups are checked every round: a restarted container has a new one.
    if (options_.host_network) SyncCgroupsLocked(cgroups, all_listed, report);
    return report;
  }

  // input_ moves to the new world (undone below if the change fails).
  absl::Status applied;
  for (const std::string* key : gone) input_.Erase(*key);
  for (const auto* keys : {&came, &moved}) {
    for (const std::string* key : *keys) {
      if (applied.ok()) applied = input_.Upsert(*key, now.at(*key));
    }
  }
  // A host-network container's rules are mirrored onto its users' gateway rules, which
  // its slice does not hold: its changes recompile everything (they are rare).
  const bool full = adopting_ || host_network_touched || touched.size() * 2 > now.size();
  if (!applied.ok()) {
    // A container the compiler cannot take: nothing changes.
  } else if (full) {
    absl::StatusOr<DatapathState> next = CompileLocked(policy_);
    applied = next.ok() ? ApplyLocked(*next) : next.status();
  } else {
    // Only the containers that came, went or changed are recompiled (compiler.h).
    StateDelta delta{.next_id = next_id_};
    for (const auto* keys : {&came, &moved}) {
      for (const std::string* key : *keys) {
        const ContainerInfo& c = now.at(*key);
        delta.ids[*key] = c.id;
        delta.names[*key] = c.name;
      }
    }
    for (const std::string* key : gone) delta.erased.push_back(*key);
    absl::StatusOr<DatapathState> slice = CompileSliceLocked(policy_, touched);
    applied = slice.ok() ? ApplySliceLocked(touched, *slice, std::move(delta)) : slice.status();
  }
  if (!applied.ok()) {
    ResetInputLocked();
    report.errors.push_back(absl::StrCat("applying the container change: ", applied.message()));
    report.added.clear();
    report.removed.clear();
    return report;
  }
  // The container map follows, one container at a time.
  for (const std::string* key : gone) {
    auto it = containers_.find(*key);
    names_.erase(it->second.id);
    ids_.erase(*key);
    containers_.erase(it);
  }
  for (const auto* keys : {&came, &moved}) {
    for (const std::string* key : *keys) {
      ContainerInfo& c = containers_[*key];
      c = std::move(now.at(*key));
      names_[c.id] = c.name;
    }
  }
  // Stacks on new veths after their entries exist (no spurious `unbound` drops), off
  // vanished ones after their entries are gone. A veth whose attach failed is retried
  // in the next round that changes anything.
  std::set<int> wanted;
  for (const auto& [key, c] : containers_) {
    if (c.host_ifindex <= 0) continue;
    wanted.insert(c.host_ifindex);
    if (attached_.count(c.host_ifindex)) continue;
    if (absl::Status s = datapath_->Attach(c.host_ifindex); !s.ok()) {
      report.errors.push_back(std::string(s.message()));
      continue;
    }
    attached_[c.host_ifindex] = true;
    if (options_.on_attach) {
      if (absl::Status s = options_.on_attach(c); !s.ok()) {
        report.errors.push_back(std::string(s.message()));
      }
    }
  }
  for (auto it = attached_.begin(); it != attached_.end();) {
    if (wanted.count(it->first)) {
      ++it;
      continue;
    }
    datapath_->Detach(it->first).IgnoreError();  // the veth is usually gone with its container
    it = attached_.erase(it);
  }
  if (full && flush_after_adoption_) {
    // A policy set while adopting is in force now: flows it revokes end (as SetPolicy).
    if (absl::Status s = datapath_->FlushConnections(); !s.ok()) {
      report.errors.push_back(absl::StrCat("flushing connections: ", s.message()));
    } else {
      flush_after_adoption_ = false;
    }
  }
  if (options_.host_network) SyncCgroupsLocked(cgroups, all_listed, report);
  // After a full apply the snapshot (until now `pending`) is written with the new
  // containers; a slice went to the journal, which is folded into a new snapshot once it
  // outgrows the last one (amortised O(slice) per event).
  if (full || journal_bytes_ > snapshot_bytes_) SaveLocked(nullptr).IgnoreError();
  if (metrics_) {
    metrics_->containers.Set(containers_.size());
    metrics_->containers_added_total.Increment(report.added.size());
    metrics_->containers_removed_total.Increment(report.removed.size());
    metrics_->reconcile_latency.Record(absl::ToInt64Nanoseconds(absl::Now() - start));
  }
  return report;
}

void Manager::SyncCgroupsLocked(
    const std::map<std::string, absl::StatusOr<std::string>>& cgroups, bool all_listed,
    ReconcileReport& report) {
  bool all = true;
  for (const auto& [key, c] : containers_) {
    if (!IsHostNetwork(c)) continue;
    auto found = cgroups.find(key);
    if (found == cgroups.end() || !found->second.ok()) {
      report.errors.push_back(absl::StrCat(
          "host-network container ", c.name, " is not enforced: ",
          found == cgroups.end() ? "its source knows no cgroup" : found->second.status().message()));
      all = false;
      continue;
    }
    const std::string& path = *found->second;
    if (auto old = cgroups_.find(key); old != cgroups_.end() && old->second != path) {
      options_.host_network->DetachCgroup(old->second).IgnoreError();  // moved: the old one goes
      cgroups_.erase(old);
    }
    // Every round (idempotent): a container restarted under the same name has a new cgroup.
    if (absl::Status s = options_.host_network->AttachCgroup(path, c.id); !s.ok()) {
      report.errors.push_back(absl::StrCat("host-network container ", c.name, ": ", s.message()));
      all = false;
      continue;
    }
    cgroups_[key] = path;
  }
  for (auto it = cgroups_.begin(); it != cgroups_.end();) {
    if (containers_.count(it->first)) {
      ++it;
      continue;
    }
    options_.host_network->DetachCgroup(it->second).IgnoreError();  // usually gone with it
    it = cgroups_.erase(it);
  }
  // Once everything that exists is known and attached, what a previous bastiond left
  // for containers now gone can go.
  if (all && all_listed && !unclaimed_removed_) {
    if (absl::Status s = options_.host_network->DetachUnclaimed(); s.ok()) {
      unclaimed_removed_ = true;
    } else {
      report.errors.push_back(std::string(s.message()));
    }
  }
}

ReconcileReport Manager::WaitAndReconcile(absl::Duration poll_interval) {
  // One waiting source at a time; with several, each gets a share of the interval.
  const absl::Duration share = sources_.empty() ? poll_interval : poll_interval / sources_.size();
  for (const auto& source : sources_) {
    if (source->WaitForChange(share)) break;
  }
  return Reconcile();
}

absl::StatusOr<std::optional<PolicyUpdate>> Manager::PolicyUpdateLocked(
    const Policy& policy) const {
  if (adopting_ || policy.audit != policy_.audit || !input_.host_network_ids().empty()) {
    return std::nullopt;
  }
  absl::StatusOr<PolicyUpdate> update =
      CompilePolicyUpdate(policy_, running_.state(), policy, input_.Index());
  if (!update.ok()) return update.status();
  return std::optional<PolicyUpdate>(*std::move(update));
}

absl::Status Manager::SetPolicy(const Policy& policy, const std::string& text) {
  absl::MutexLock l(&mu_);
  if (adopting_) {
    // Restarted, and no round has listed the containers yet: compiled over none, the
    // policy would remove every adopted entry until the round. It is checked (over no
    // containers), kept, and applied whole by the next round, which adopts.
    absl::StatusOr<DatapathState> check = CompileLocked(policy);
    if (!check.ok()) {
      if (metrics_) metrics_->policy_rejected_total.Increment();
      return absl::Status(check.status().code(),
                          absl::StrCat(check.status().message(), " (the running policy stays)"));
    }
    policy_ = policy;
    policy_text_ = text;
    flush_after_adoption_ = true;
    return absl::OkStatus();
  }
  absl::StatusOr<std::optional<PolicyUpdate>> update = PolicyUpdateLocked(policy);
  absl::Status s = update.status();
  if (update.ok() && *update) {
    // Journalled with the new policy text, like a container event: O(the change).
    s = ApplyDeltaLocked((*update)->remove, (*update)->add,
                         StateDelta{.next_id = next_id_, .policy_text = text,
                                    .policy_file = policy.file});
    if (s.ok()) {
      policy_ = policy;
      policy_text_ = text;
      if (journal_bytes_ > snapshot_bytes_) SaveLocked(nullptr).IgnoreError();
    }
  } else if (update.ok()) {
    absl::StatusOr<DatapathState> next = CompileLocked(policy);
    s = next.ok() ? ApplyLocked(*next) : next.status();
    if (s.ok()) {
      policy_ = policy;
      policy_text_ = text;
      SaveLocked(nullptr).IgnoreError();  // applied; until then the snapshot says pending
    }
  }
  if (!s.ok()) {
    if (metrics_) metrics_->policy_rejected_total.Increment();
    return absl::Status(s.code(), absl::StrCat(s.message(), " (the running policy stays)"));
  }
  // Flows the new policy revokes must not live on through their tracked replies.
  return datapath_->FlushConnections();
}

absl::StatusOr<StateDiff> Manager::DiffPolicy(const Policy& policy) {
  absl::MutexLock l(&mu_);
  auto describe = [this](uint32_t id) {
    mu_.AssertHeld();
    return DescribeLocked(id);
  };
  absl::StatusOr<std::optional<PolicyUpdate>> update = PolicyUpdateLocked(policy);
  if (!update.ok()) return update.status();
  // Entries outside the touched containers are the same in both states.
  if (*update) return DiffStates((*update)->remove, (*update)->add, describe);
  absl::StatusOr<DatapathState> next = CompileLocked(policy);
  if (!next.ok()) return next.status();
  return DiffStates(running_.state(), *next, describe);
}

std::string Manager::PolicyText() const {
  absl::MutexLock l(&mu_);
  return policy_text_;
}

std::string Manager::PolicyFile() const {
  absl::MutexLock l(&mu_);
  return policy_.file;
}

DatapathState Manager::Running() const {
  absl::MutexLock l(&mu_);
  return running_.state();
}

std::string Manager::DescribeLocked(uint32_t id) const {
  if (id == kWorldId) return "world";
  if (id == kHostIdFirst) return kGatewayHost;
  if (id > kHostIdFirst) {
    const size_t i = id - kHostIdFirst - 1;
    return i < policy_.hosts.size() ? policy_.hosts[i].name : absl::StrCat("host#", id);
  }
  if (id >= kGroupIdFirst) {
    const size_t i = id - kGroupIdFirst;
    return i < policy_.groups.size() ? absl::StrCat("group:", policy_.groups[i].name)
                                     : absl::StrCat("group#", id);
  }
  auto it = names_.find(id);
  return it != names_.end() ? it->second : absl::StrCat("container#", id);
}

size_t Manager::TrackedIds() const {
  absl::MutexLock l(&mu_);
  return ids_.size();
}

std::string Manager::Describe(uint32_t id) const {
  absl::MutexLock l(&mu_);
  return DescribeLocked(id);
}

std::string Manager::NameAddressLocked(uint32_t ip) const {
  const DatapathState& running = running_.state();
  if (auto e = running.endpoints.find(ip); e != running.endpoints.end()) {
    return DescribeLocked(e->second.container_id);
  }
  if (auto h = running.hosts.find(ip); h != running.hosts.end()) {
    return absl::StrCat(DescribeLocked(h->second), "(", Ipv4ToString(ip), ")");
  }
  if (auto g = running.groups.find(ip); g != running.groups.end()) {
    return absl::StrCat(DescribeLocked(g->second.id), "(", Ipv4ToString(ip), ")");
  }
  return Ipv4ToString(ip);
}

int Manager::PumpEvents(absl::Duration timeout) {
  absl::StatusOr<int> n = datapath_->PollEvents(timeout, [this](const VerdictEvent& e) {
    NamedEvent named{.event = e};
    std::vector<EventSubscription*> subscribers;
    {
      absl::MutexLock l(&mu_);
      named.container = e.container_id ? DescribeLocked(e.container_id) : "";
      named.src = NameAddressLocked(e.saddr);
      named.dst = NameAddressLocked(e.daddr);
      if (e.host_network && e.container_id) {
        // A host-network container's side carries the host's address: name the container.
        (e.to_container ? named.dst : named.src) = DescribeLocked(e.container_id);
      }
      if (IsDropReason(e.reason) && Auditable(e.reason)) {
        auto key = std::make_tuple(named.src, named.dst, e.proto, e.dport, e.reason);
        if (uncovered_.size() < kMaxUncovered || uncovered_.count(key)) ++uncovered_[key];
      }
      subscribers = subscribers_;
      // Pushing under mu_ keeps subscribers alive (Unsubscribe takes mu_ too).
      for (EventSubscription* s : subscribers) s->Push(named);
    }
    if (metrics_) metrics_->verdict_events_total.Increment();
  });
  return n.ok() ? *n : 0;
}

std::vector<UncoveredFlow> Manager::Uncovered() const {
  absl::MutexLock l(&mu_);
  std::vector<UncoveredFlow> out;
  for (const auto& [key, count] : uncovered_) {
    const auto& [src, dst, proto, dport, reason] = key;
    out.push_back({src, dst, proto, dport, reason, count});
  }
  std::sort(out.begin(), out.end(),
            [](const UncoveredFlow& a, const UncoveredFlow& b) { return a.count > b.count; });
  return out;
}

std::unique_ptr<EventSubscription> Manager::Subscribe(size_t max_queued) {
  std::unique_ptr<EventSubscription> s(new EventSubscription(this, max_queued));
  absl::MutexLock l(&mu_);
  subscribers_.push_back(s.get());
  return s;
}

void Manager::Unsubscribe(EventSubscription* s) {
  absl::MutexLock l(&mu_);
  subscribers_.erase(std::remove(subscribers_.begin(), subscribers_.end(), s), subscribers_.end());
}

EventSubscription::~EventSubscription() { manager_->Unsubscribe(this); }

void EventSubscription::Push(const NamedEvent& e) {
  absl::MutexLock l(&mu_);
  if (queue_.size() >= max_) {
    queue_.pop_front();
    ++dropped_;
  }
  queue_.push_back(e);
}

std::vector<NamedEvent> EventSubscription::Next(absl::Duration timeout) {
  absl::MutexLock l(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !queue_.empty(); };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  std::vector<NamedEvent> out(queue_.begin(), queue_.end());
  queue_.clear();
  return out;
}

uint64_t EventSubscription::dropped() const {
  absl::MutexLock l(&mu_);
  return dropped_;
}

}  // namespace dctk::bastion
