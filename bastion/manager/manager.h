// Manager: the heart of bastiond. It keeps the container map (discovered containers and
// their datapath ids), the running policy, and the DatapathState the maps hold; installs
// the stack on each new container's host veth and removes it when the container goes;
// applies policy changes all or nothing; and fans verdict events out to subscribers.
//
// Every change goes the same way: compile (policy, containers) -> DatapathState, then
// ApplyState(running -> next) (bastion/policy/apply.h). An invalid or failing policy
// leaves the running one in force. Reconcile() takes a full snapshot from every source
// and adds/removes containers by difference, so a missed runtime event costs only
// latency until the next poll, never correctness.
//
// Host-network containers (network_mode "host": no veth, the host's addresses) are under
// the same policy through their cgroup (Options::host_network): after every round each
// one's cgroup, as its source reports it, is attached (idempotent, so a restarted
// container's new cgroup is caught) and a vanished one's is detached. After the first
// round in which every source listed and every cgroup attached, the cgroup bindings a
// previous bastiond left for containers now gone are removed (DetachUnclaimed).
//
// With a state file, the applied state and the container ids are saved after every
// change (and the intended next state before it; container events and policy changes
// as journal records of their slice), so a bastiond restarted over pinned maps adopts
// what is installed and reconciles it with what exists now.
//
// Cost: a container event or a policy change compiles, applies and journals only its
// slice; the running state is indexed by container (running_state.h) and the compiler's
// input kept per container (compile_input.h). What stays O(containers) per round is the
// sources' full listing and its comparison with the known containers, and, inside the
// compiler, CompileSlice's address and index build (bastion/policy).
//
// Thread safety: all methods may be called from any thread (one mutex); events are
// delivered by the thread calling PumpEvents().
//
// Example:
//   Manager manager(datapath.get(), {.state_file = "/run/bastion/state.json"});
//   manager.AddSource(std::make_unique<NamespaceContainerSource>(dir));
//   RETURN_IF_ERROR(manager.Start());                 // adopt saved state, if any
//   RETURN_IF_ERROR(manager.SetPolicy(*LoadPolicyFile("policy.yaml"), text));
//   while (running) { manager.WaitAndReconcile(absl::Seconds(5)); }
#ifndef DCTK_BASTION_MANAGER_MANAGER_H_
#define DCTK_BASTION_MANAGER_MANAGER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bastion/datapath/datapath.h"
#include "bastion/datapath/host_network.h"
#include "bastion/manager/compile_input.h"
#include "bastion/manager/container_source.h"
#include "bastion/manager/manager_metrics.h"
#include "bastion/manager/running_state.h"
#include "bastion/manager/state_file.h"
#include "bastion/policy/apply.h"
#include "bastion/policy/compiler.h"
#include "bastion/policy/incremental.h"
#include "bastion/policy/policy.h"

namespace dctk::bastion {

// A verdict event with the names of the containers involved.
struct NamedEvent {
  VerdictEvent event;
  std::string container;  // bound to the veth it was seen on
  std::string src;        // container name, host group, or the address
  std::string dst;
};

// Traffic a policy drop stopped, aggregated: what the operator may want to allow.
struct UncoveredFlow {
  std::string src;
  std::string dst;
  uint8_t proto = 0;
  uint16_t dport = 0;
  uint32_t reason = 0;
  uint64_t count = 0;
};

struct ReconcileReport {
  std::vector<std::string> added;    // container names
  std::vector<std::string> removed;
  std::vector<std::string> errors;   // per source or container, the round went on
};

class EventSubscription;

class Manager {
 public:
  struct Options {
    // Saved applied state (JSON); empty = none, a restart starts from empty maps.
    std::string state_file;
    // Detach the programs from every veth when the Manager is destroyed. bastiond leaves
    // this false when its maps are pinned, so enforcement outlives it.
    bool detach_on_exit = true;
    // Called after the stack is attached to a container's veth (e.g. bastiond's static
    // bridge FDB entry for its MAC); an error is reported in the round's errors.
    std::function<absl::Status(const ContainerInfo&)> on_attach;
    // Puts host-network containers under policy by their cgroup; null = they are listed
    // but not enforced (and left out of the compiled policy).
    HostNetworkDatapath* host_network = nullptr;
  };

  Manager(Datapath* datapath, Options options, ManagerMetrics* metrics = nullptr);
  ~Manager();

  void AddSource(std::unique_ptr<ContainerSource> source);

  // Loads the state file (if any) as what the datapath holds: container ids and entries.
  // Returns what was adopted, as a line for the log.
  absl::StatusOr<std::string> Start();

  // One discovery round over all sources; installs/removes stacks and map entries.
  ReconcileReport Reconcile();
  // Waits for an event from any source (or `poll_interval`), then Reconcile().
  ReconcileReport WaitAndReconcile(absl::Duration poll_interval);

  // Compiles and applies `policy`; on any error the running policy stays in force. Only
  // the containers the change touches are recompiled and rewritten (and journalled).
  // While adopting saved state (after Start, until a round succeeded) the containers are
  // not known: the policy is checked and kept, and the next round applies it.
  absl::Status SetPolicy(const Policy& policy, const std::string& text);
  // What SetPolicy would change, without changing anything.
  absl::StatusOr<StateDiff> DiffPolicy(const Policy& policy);

  std::vector<ContainerInfo> Containers() const;
  std::string PolicyText() const;
  std::string PolicyFile() const;
  DatapathState Running() const;
  std::vector<UncoveredFlow> Uncovered() const;

  // Reads events from the datapath (waiting up to `timeout`) and hands them, named, to
  // every subscriber. Returns how many.
  int PumpEvents(absl::Duration timeout);
  std::unique_ptr<EventSubscription> Subscribe(size_t max_queued = 4096);

  // Container ids kept (live containers only; ids of removed ones are forgotten).
  size_t TrackedIds() const;

  // Id -> "farm-1", "gateway", "dns", "world".
  std::string Describe(uint32_t id) const;

 private:
  friend class EventSubscription;
  // Applies `next` whole (adopting: over whatever the pinned maps may hold), with a
  // snapshot saying `pending` before; the caller saves the applied state once its
  // containers or policy are updated too.
  absl::Status ApplyLocked(const DatapathState& next) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Replaces the entries involving `ids` by `slice` (from CompileSlice).
  // With a state file, `delta` (its id changes) goes to the journal (state_file.h).
  absl::Status ApplySliceLocked(const std::set<uint32_t>& ids, const DatapathState& slice,
                                StateDelta delta) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves the datapath and running_ from `remove` (entries of running_) to `add` (their
  // replacements; hosts and audit whole), journalled like a slice.
  absl::Status ApplyDeltaLocked(const DatapathState& remove, const DatapathState& add,
                                StateDelta delta) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The change from the running policy to `policy` as the touched containers' slices
  // (bastion/policy/incremental.h); nullopt when it must be compiled whole: while
  // adopting (what the pinned maps hold is uncertain), for an audit switch (a journal
  // delta does not carry audit mode) and with host-network containers (their gateway
  // mirrors are in no slice; as placed for the compiler they have an address, so this
  // asks CompileInput, not IsHostNetwork).
  absl::StatusOr<std::optional<PolicyUpdate>> PolicyUpdateLocked(const Policy& policy) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `policy` over input_ (the containers as they are, or about to be).
  absl::StatusOr<DatapathState> CompileLocked(const Policy& policy) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<DatapathState> CompileSliceLocked(const Policy& policy,
                                                   const std::set<uint32_t>& ids) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // input_ from containers_ (after a failed change moved it ahead).
  void ResetInputLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string DescribeLocked(uint32_t id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string NameAddressLocked(uint32_t ip) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Attaches the cgroups of host-network containers in `cgroups` (container key -> path,
  // or the error finding it), detaches those of containers gone; the first time all
  // attach and every source listed (`all_listed`), removes unclaimed leftovers.
  void SyncCgroupsLocked(const std::map<std::string, absl::StatusOr<std::string>>& cgroups,
                         bool all_listed, ReconcileReport& report)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status SaveLocked(const DatapathState* pending) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unsubscribe(EventSubscription* s);

  Datapath* const datapath_;
  const Options options_;
  ManagerMetrics* const metrics_;
  std::vector<std::unique_ptr<ContainerSource>> sources_;

  mutable absl::Mutex mu_;
  // Key "<source>/<runtime_id>" -> container (with its id).
  std::map<std::string, ContainerInfo> containers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint32_t> ids_ ABSL_GUARDED_BY(mu_);  // same key -> id, kept on restart
  std::map<uint32_t, std::string> names_ ABSL_GUARDED_BY(mu_);  // id -> container name
  // containers_ as the compiler takes them (host-network ones placed or left out).
  CompileInput input_ ABSL_GUARDED_BY(mu_);
  uint32_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  Policy policy_ ABSL_GUARDED_BY(mu_);
  std::string policy_text_ ABSL_GUARDED_BY(mu_);
  RunningState running_ ABSL_GUARDED_BY(mu_);
  std::map<int, bool> attached_ ABSL_GUARDED_BY(mu_);  // host ifindex
  std::map<std::string, std::string> cgroups_ ABSL_GUARDED_BY(mu_);  // container key -> cgroup
  bool unclaimed_removed_ ABSL_GUARDED_BY(mu_) = false;  // DetachUnclaimed done
  std::map<std::tuple<std::string, std::string, uint8_t, uint16_t, uint32_t>, uint64_t>
      uncovered_ ABSL_GUARDED_BY(mu_);
  std::vector<EventSubscription*> subscribers_ ABSL_GUARDED_BY(mu_);
  // After Start() found saved state: what the pinned maps may hold until the first apply.
  bool adopting_ ABSL_GUARDED_BY(mu_) = false;
  // A policy was set while adopting: conntrack is flushed once the round applied it.
  bool flush_after_adoption_ ABSL_GUARDED_BY(mu_) = false;
  // Journal bytes since the last snapshot, and the snapshot's size (state_file.h).
  size_t journal_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  size_t snapshot_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  DatapathState adopted_ ABSL_GUARDED_BY(mu_);
};

// A subscriber's queue of events; the oldest are dropped (and counted) when it is full.
class EventSubscription {
 public:
  ~EventSubscription();
  // Waits up to `timeout` for events; returns those queued (possibly none).
  std::vector<NamedEvent> Next(absl::Duration timeout);
  uint64_t dropped() const;

 private:
  friend class Manager;
  EventSubscription(Manager* manager, size_t max_queued) : manager_(manager), max_(max_queued) {}
  void Push(const NamedEvent& e);
  Manager* manager_;
  const size_t max_;
  mutable absl::Mutex mu_;
  std::deque<NamedEvent> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_MANAGER_MANAGER_H_
