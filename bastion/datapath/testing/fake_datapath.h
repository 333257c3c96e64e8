// FakeDatapath: an in-memory Datapath for tests of the policy compiler and the manager.
//
// It keeps the same maps as the kernel datapath (rules as given, not as trie prefixes;
// hosts, dependencies and rules in two generations, written to the write generation),
// checks the same preconditions the BPF maps would (removing a missing entry is
// NotFound), records every write in order, and can be told to fail the Nth write from
// now, to test all-or-nothing applies. Events are injected with PushEvent().
//
// Example:
//   FakeDatapath dp;
//   dp.FailWriteAfter(3);   // the 4th write returns ResourceExhausted
//   EXPECT_FALSE(ApplyState(dp, {}, next).ok());
//   EXPECT_TRUE(dp.rules().empty());
#ifndef DCTK_BASTION_DATAPATH_TESTING_FAKE_DATAPATH_H_
#define DCTK_BASTION_DATAPATH_TESTING_FAKE_DATAPATH_H_

#include <deque>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "bastion/datapath/datapath.h"

namespace dctk::bastion::testing {

class FakeDatapath : public Datapath {
 public:
  using RuleKey = std::tuple<uint32_t, uint32_t, uint8_t, uint16_t, uint16_t>;

  absl::Status UpsertEndpoint(uint32_t ip, const ContainerEndpoint& endpoint) override;
  absl::Status RemoveEndpoint(uint32_t ip) override;
  absl::Status BindInterface(int host_ifindex, const Binding& binding) override;
  absl::Status UnbindInterface(int host_ifindex) override;
  absl::Status UpsertHost(uint32_t ip, uint32_t host_id) override;
  absl::Status RemoveHost(uint32_t ip) override;
  absl::Status UpsertGroup(uint32_t ip, const Group& group) override;
  absl::Status RemoveGroup(uint32_t ip) override;
  absl::Status AddDependency(uint32_t src_id, uint32_t dst_id, uint32_t generation) override;
  absl::Status RemoveDependency(uint32_t src_id, uint32_t dst_id) override;
  absl::Status UpsertPolicy(const PolicyRule& rule) override;
  absl::Status RemovePolicy(const PolicyRule& rule) override;
  absl::Status SetAuditMode(bool audit) override;
  uint32_t ActiveGeneration() const override;
  absl::Status ActivateGeneration(uint32_t generation) override;
  void SetWriteGeneration(uint32_t generation) override;
  absl::Status FlushConnections() override;
  absl::Status Attach(int host_ifindex) override;
  absl::Status Detach(int host_ifindex) override;
  absl::StatusOr<VerdictCounters> ReadCounters() override;
  absl::StatusOr<int> PollEvents(absl::Duration timeout,
                                 const std::function<void(const VerdictEvent&)>& fn) override;

  // The next `n` writes succeed, the one after fails (once). -1 = never fail.
  void FailWriteAfter(int n);
  void PushEvent(const VerdictEvent& event);
  void SetCounter(uint32_t code, uint64_t value);

  // Snapshots (copies, so they can be taken while other threads write); hosts,
  // dependencies and rules of the active generation, or of `generation`.
  std::map<uint32_t, uint32_t> endpoints() const;  // ip -> container id
  std::map<int, uint32_t> bindings() const;         // ifindex -> container id
  std::map<uint32_t, uint32_t> hosts() const { return hosts(ActiveGeneration()); }
  std::set<std::pair<uint32_t, uint32_t>> dependencies() const {
    return dependencies(ActiveGeneration());
  }
  std::set<RuleKey> rules() const { return rules(ActiveGeneration()); }
  std::map<uint32_t, uint32_t> hosts(uint32_t generation) const;
  std::map<uint32_t, Group> groups() const { return groups(ActiveGeneration()); }
  std::map<uint32_t, Group> groups(uint32_t generation) const;
  std::set<std::pair<uint32_t, uint32_t>> dependencies(uint32_t generation) const;
  std::set<RuleKey> rules(uint32_t generation) const;
  std::set<int> attached() const;
  bool audit() const;
  // In order: "+endpoint 10.0.0.2", "+rule 1->2 6 80-80 @1" (hosts, dependencies and
  // rules name their generation), "activate 1", "audit 1".
  std::vector<std::string> writes() const;

 private:
  absl::Status Write(const std::string& what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  int fail_after_ ABSL_GUARDED_BY(mu_) = -1;
  std::map<uint32_t, uint32_t> endpoints_ ABSL_GUARDED_BY(mu_);
  std::map<int, uint32_t> bindings_ ABSL_GUARDED_BY(mu_);
  std::map<uint32_t, uint32_t> hosts_[2] ABSL_GUARDED_BY(mu_);
  std::map<uint32_t, Group> groups_[2] ABSL_GUARDED_BY(mu_);
  std::set<std::pair<uint32_t, uint32_t>> dependencies_[2] ABSL_GUARDED_BY(mu_);
  std::set<RuleKey> rules_[2] ABSL_GUARDED_BY(mu_);
  uint32_t active_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t write_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<int> attached_ ABSL_GUARDED_BY(mu_);
  bool audit_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> writes_ ABSL_GUARDED_BY(mu_);
  std::deque<VerdictEvent> events_ ABSL_GUARDED_BY(mu_);
  VerdictCounters counters_ ABSL_GUARDED_BY(mu_) = {};
};

}  // namespace dctk::bastion::testing

#endif  // DCTK_BASTION_DATAPATH_TESTING_FAKE_DATAPATH_H_
