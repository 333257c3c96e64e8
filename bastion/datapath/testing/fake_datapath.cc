#include "bastion/datapath/testing/fake_datapath.h"

#include "absl/strings/str_cat.h"

namespace dctk::bastion::testing {
namespace {

template <typename Map, typename Key>
absl::Status Erase(Map& map, const Key& key, const std::string& what) {
  if (map.erase(key) == 0) return absl::NotFoundError(absl::StrCat("fake datapath: ", what));
  return absl::OkStatus();
}

}  // namespace

absl::Status FakeDatapath::Write(const std::string& what) {
  if (fail_after_ == 0) {
    fail_after_ = -1;
    return absl::ResourceExhaustedError(absl::StrCat("fake datapath: injected failure at ", what));
  }
  if (fail_after_ > 0) --fail_after_;
  writes_.push_back(what);
  return absl::OkStatus();
}

absl::Status FakeDatapath::UpsertEndpoint(uint32_t ip, const ContainerEndpoint& endpoint) {
  absl::MutexLock l(&mu_);
  if (absl::Status s = Write(absl::StrCat("+endpoint ", Ipv4ToString(ip))); !s.ok()) return s;
  endpoints_[ip] = endpoint.container_id;
  return absl::OkStatus();
}

absl::Status FakeDatapath::RemoveEndpoint(uint32_t ip) {
  absl::MutexLock l(&mu_);
  const std::string what = absl::StrCat("-endpoint ", Ipv4ToString(ip));
  if (absl::Status s = Write(what); !s.ok()) return s;
  return Erase(endpoints_, ip, what);
}

absl::Status FakeDatapath::BindInterface(int host_ifindex, const Binding& binding) {
  absl::MutexLock l(&mu_);
  if (absl::Status s = Write(absl::StrCat("+binding ", host_ifindex)); !s.ok()) return s;
  bindings_[host_ifindex] = binding.container_id;
  return absl::OkStatus();
}

absl::Status FakeDatapath::UnbindInterface(int host_ifindex) {
  absl::MutexLock l(&mu_);
  const std::string what = absl::StrCat("-binding ", host_ifindex);
  if (absl::Status s = Write(what); !s.ok()) return s;
  return Erase(bindings_, host_ifindex, what);
}

absl::Status FakeDatapath::UpsertHost(uint32_t ip, uint32_t host_id) {
  absl::MutexLock l(&mu_);
  if (host_id < kHostIdFirst || host_id == kWorldId) {
    return absl::InvalidArgumentError(absl::StrCat("fake datapath: host id ", host_id));
  }
  if (absl::Status s = Write(absl::StrCat("+host ", Ipv4ToString(ip), " @", write_)); !s.ok()) return s;
  hosts_[write_][ip] = host_id;
  return absl::OkStatus();
}

absl::Status FakeDatapath::RemoveHost(uint32_t ip) {
  absl::MutexLock l(&mu_);
  const std::string what = absl::StrCat("-host ", Ipv4ToString(ip), " @", write_);
  if (absl::Status s = Write(what); !s.ok()) return s;
  return Erase(hosts_[write_], ip, what);
}

absl::Status FakeDatapath::UpsertGroup(uint32_t ip, const Group& group) {
  absl::MutexLock l(&mu_);
  if (!IsMulticast(ip) || group.id < kGroupIdFirst || group.id >= kHostIdFirst ||
      group.members.size() > kMaxGroupMembers) {
    return absl::InvalidArgumentError(absl::StrCat("fake datapath: group ", Ipv4ToString(ip)));
  }
  if (absl::Status s = Write(absl::StrCat("+group ", Ipv4ToString(ip), " @", write_)); !s.ok()) {
    return s;
  }
  groups_[write_][ip] = group;
  return absl::OkStatus();
}

absl::Status FakeDatapath::RemoveGroup(uint32_t ip) {
  absl::MutexLock l(&mu_);
  const std::string what = absl::StrCat("-group ", Ipv4ToString(ip), " @", write_);
  if (absl::Status s = Write(what); !s.ok()) return s;
  return Erase(groups_[write_], ip, what);
}

absl::Status FakeDatapath::AddDependency(uint32_t src_id, uint32_t dst_id, uint32_t generation) {
  absl::MutexLock l(&mu_);
  if (absl::Status s = Write(absl::StrCat("+dependency ", src_id, "->", dst_id, " @", write_)); !s.ok()) {
    return s;
  }
  dependencies_[write_].insert({src_id, dst_id});
  return absl::OkStatus();
}

absl::Status FakeDatapath::RemoveDependency(uint32_t src_id, uint32_t dst_id) {
  absl::MutexLock l(&mu_);
  const std::string what = absl::StrCat("-dependency ", src_id, "->", dst_id, " @", write_);
  if (absl::Status s = Write(what); !s.ok()) return s;
  return Erase(dependencies_[write_], std::make_pair(src_id, dst_id), what);
}

absl::Status FakeDatapath::UpsertPolicy(const PolicyRule& r) {
  absl::MutexLock l(&mu_);
  if (absl::Status s = Write(absl::StrCat("+rule ", r.src_id, "->", r.dst_id, " ", r.proto, " ",
                                          r.first_port, "-", r.last_port, " @", write_));
      !s.ok()) {
    return s;
  }
  rules_[write_].insert({r.src_id, r.dst_id, r.proto, r.first_port, r.last_port});
  return absl::OkStatus();
}

absl::Status FakeDatapath::RemovePolicy(const PolicyRule& r) {
  absl::MutexLock l(&mu_);
  const std::string what = absl::StrCat("-rule ", r.src_id, "->", r.dst_id, " ", r.proto, " ",
                                        r.first_port, "-", r.last_port, " @", write_);
  if (absl::Status s = Write(what); !s.ok()) return s;
  return Erase(rules_[write_], RuleKey{r.src_id, r.dst_id, r.proto, r.first_port, r.last_port}, what);
}

absl::Status FakeDatapath::SetAuditMode(bool audit) {
  absl::MutexLock l(&mu_);
  if (absl::Status s = Write(absl::StrCat("audit ", audit)); !s.ok()) return s;
  audit_ = audit;
  return absl::OkStatus();
}

uint32_t FakeDatapath::ActiveGeneration() const {
  absl::MutexLock l(&mu_);
  return active_;
}

absl::Status FakeDatapath::ActivateGeneration(uint32_t generation) {
  absl::MutexLock l(&mu_);
  if (generation > 1) return absl::InvalidArgumentError("fake datapath: generation");
  if (absl::Status s = Write(absl::StrCat("activate ", generation)); !s.ok()) return s;
  active_ = generation;
  return absl::OkStatus();
}

void FakeDatapath::SetWriteGeneration(uint32_t generation) {
  absl::MutexLock l(&mu_);
  write_ = generation & 1;
}

absl::Status FakeDatapath::FlushConnections() { return absl::OkStatus(); }

absl::Status FakeDatapath::Attach(int host_ifindex) {
  absl::MutexLock l(&mu_);
  if (absl::Status s = Write(absl::StrCat("+attach ", host_ifindex)); !s.ok()) return s;
  attached_.insert(host_ifindex);
  return absl::OkStatus();
}

absl::Status FakeDatapath::Detach(int host_ifindex) {
  absl::MutexLock l(&mu_);
  const std::string what = absl::StrCat("-attach ", host_ifindex);
  if (absl::Status s = Write(what); !s.ok()) return s;
  return Erase(attached_, host_ifindex, what);
}

absl::StatusOr<VerdictCounters> FakeDatapath::ReadCounters() {
  absl::MutexLock l(&mu_);
  return counters_;
}

absl::StatusOr<int> FakeDatapath::PollEvents(absl::Duration timeout,
                                             const std::function<void(const VerdictEvent&)>& fn) {
  std::deque<VerdictEvent> events;
  {
    absl::MutexLock l(&mu_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !events_.empty(); };
    mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    events.swap(events_);
  }
  for (const VerdictEvent& e : events) fn(e);
  return static_cast<int>(events.size());
}

void FakeDatapath::FailWriteAfter(int n) {
  absl::MutexLock l(&mu_);
  fail_after_ = n;
}

void FakeDatapath::PushEvent(const VerdictEvent& event) {
  absl::MutexLock l(&mu_);
  events_.push_back(event);
}

void FakeDatapath::SetCounter(uint32_t code, uint64_t value) {
  absl::MutexLock l(&mu_);
  counters_[code] = value;
}

std::map<uint32_t, uint32_t> FakeDatapath::endpoints() const {
  absl::MutexLock l(&mu_);
  return endpoints_;
}

std::map<int, uint32_t> FakeDatapath::bindings() const {
  absl::MutexLock l(&mu_);
  return bindings_;
}

std::map<uint32_t, uint32_t> FakeDatapath::hosts(uint32_t generation) const {
  absl::MutexLock l(&mu_);
  return hosts_[generation & 1];
}

std::map<uint32_t, Group> FakeDatapath::groups(uint32_t generation) const {
  absl::MutexLock l(&mu_);
  return groups_[generation & 1];
}

std::set<std::pair<uint32_t, uint32_t>> FakeDatapath::dependencies(uint32_t generation) const {
  absl::MutexLock l(&mu_);
  return dependencies_[generation & 1];
}

std::set<FakeDatapath::RuleKey> FakeDatapath::rules(uint32_t generation) const {
  absl::MutexLock l(&mu_);
  return rules_[generation & 1];
}

std::set<int> FakeDatapath::attached() const {
  absl::MutexLock l(&mu_);
  return attached_;
}

bool FakeDatapath::audit() const {
  absl::MutexLock l(&mu_);
  return audit_;
}

std::vector<std::string> FakeDatapath::writes() const {
  absl::MutexLock l(&mu_);
  return writes_;
}

}  // namespace dctk::bastion::testing
