#include "speculative_paxos/merge.h"

#include <algorithm>
#include <map>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "speculative_paxos/log.h"
#include "speculative_paxos/stamp.h"

namespace dctk::spaxos {
namespace {

// The report's entry at `slot`, or nullptr (slot <= base or past its end).
const Entry* EntryAt(const LogReport& r, uint64_t slot) {
  if (!r.covers_base() || slot <= r.base() || slot - r.base() > r.entries_size()) {
    return nullptr;
  }
  return &r.entries(slot - r.base() - 1);
}

// Hash of the report's log at `slot` (>= base), or nullptr if it does not reach.
const std::string* HashIn(const LogReport& r, uint64_t slot) {
  if (!r.covers_base()) return nullptr;
  if (slot == r.base()) return &r.base_hash();
  const Entry* e = EntryAt(r, slot);
  return e == nullptr ? nullptr : &e->hash();
}

absl::Status CheckReport(const MergeInput& in, const LogReport& r) {
  if (r.base() != in.base) {
    return absl::InvalidArgumentError(
        absl::StrCat("report of replica ", r.replica(), " starts after slot ", r.base(),
                     ", merge base is ", in.base));
  }
  for (int i = 0; i < r.entries_size(); ++i) {
    if (r.entries(i).slot() != in.base + 1 + i) {
      return absl::InvalidArgumentError(absl::StrCat("report of replica ", r.replica(),
                                                     ": entry ", i, " has slot ",
                                                     r.entries(i).slot()));
    }
  }
  return absl::OkStatus();
}

class Builder {
 public:
  Builder(const MergeInput& in) : in_(in), hash_(in.base_hash) {}

  uint64_t end() const { return in_.base + out_.entries.size(); }
  const std::string& hash() const { return hash_; }

  // Appends `e` keeping its hash (it already chains from ours).
  void Keep(const Entry& e) {
    out_.entries.push_back(e);
    out_.entries.back().set_slot(end());
    hash_ = e.hash();
    Note(e);
  }
  // Appends `e` at the end with a freshly chained hash, unless stale.
  void AddIfNew(const Entry& e) {
    if (held_.contains({e.client_id(), e.request_id()})) return;
    uint64_t latest = latest_.contains(e.client_id()) ? latest_[e.client_id()] : 0;
    if (in_.prefix_latest) latest = std::max(latest, in_.prefix_latest(e.client_id()));
    if (e.request_id() <= latest) return;
    Entry copy = e;
    copy.set_slot(end() + 1);
    copy.set_hash(ChainHash(hash_, e.client_id(), e.request_id(), e.op()));
    hash_ = copy.hash();
    Note(copy);
    out_.entries.push_back(std::move(copy));
  }
  MergeResult Take() { return std::move(out_); }
  MergeResult& result() { return out_; }

 private:
  void Note(const Entry& e) {
    held_.insert({e.client_id(), e.request_id()});
    uint64_t& latest = latest_[e.client_id()];
    latest = std::max(latest, e.request_id());
  }

  const MergeInput& in_;
  std::string hash_;
  MergeResult out_;
  absl::flat_hash_set<std::pair<uint64_t, uint64_t>> held_;
  absl::flat_hash_map<uint64_t, uint64_t> latest_;
};

}  // namespace

absl::StatusOr<MergeResult> MergeLogs(const MergeInput& in) {
  if (in.reports.size() < static_cast<size_t>(in.f + 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("merge needs ", in.f + 1, " reports, got ", in.reports.size()));
  }
  for (const LogReport& r : in.reports) {
    if (absl::Status s = CheckReport(in, r); !s.ok()) return s;
  }
  std::vector<const LogReport*> reports;
  for (const LogReport& r : in.reports) reports.push_back(&r);
  std::sort(reports.begin(), reports.end(),
            [](const LogReport* a, const LogReport* b) { return a->replica() < b->replica(); });

  // Part 1: the confirmed prefix of the newest confirmed log.
  const LogReport* best = reports.front();
  auto rank = [](const LogReport* r) {
    return std::make_tuple(Stamp::FromProto(r->log_stamp()), r->sync_point());
  };
  for (const LogReport* r : reports) {
    if (rank(r) > rank(best)) best = r;
  }
  Builder out(in);
  if (best->sync_point() > in.base) {
    if (!best->covers_base() || best->base_hash() != in.base_hash) {
      return absl::InternalError(absl::StrCat("confirmed log of replica ", best->replica(),
                                              " (sync point ", best->sync_point(),
                                              ") does not extend the committed prefix at slot ",
                                              in.base));
    }
    for (uint64_t s = in.base + 1; s <= best->sync_point(); ++s) {
      const Entry* e = EntryAt(*best, s);
      if (e == nullptr) {
        return absl::InternalError(absl::StrCat("replica ", best->replica(), " confirmed slot ",
                                                best->sync_point(), " but reported up to ",
                                                in.base + best->entries_size()));
      }
      out.Keep(*e);
    }
  }
  for (const LogReport* r : reports) {
    if (r->commit_point() > out.end()) {
      return absl::InternalError(absl::StrCat("replica ", r->replica(), " committed slot ",
                                              r->commit_point(), " past the confirmed log end ",
                                              out.end()));
    }
  }
  out.result().confirmed_end = out.end();

  // Part 2: entries held by enough current logs that agree with part 1.
  const Stamp newest = Stamp::FromProto(best->log_stamp());
  std::vector<const LogReport*> voters;
  for (const LogReport* r : reports) {
    const std::string* h = HashIn(*r, out.end());
    if (Stamp::FromProto(r->log_stamp()) == newest && h != nullptr && *h == out.hash()) {
      voters.push_back(r);
    }
  }
  for (;;) {
    const uint64_t slot = out.end() + 1;
    std::map<std::string, std::pair<int, const Entry*>> votes;
    for (const LogReport* r : voters) {
      if (const Entry* e = EntryAt(*r, slot)) {
        auto& v = votes[e->hash()];
        ++v.first;
        v.second = e;
      }
    }
    const Entry* chosen = nullptr;
    for (const auto& [hash, v] : votes) {
      if (v.first >= MergeThreshold(in.f)) chosen = v.second;
    }
    if (chosen == nullptr) break;
    out.Keep(*chosen);
  }
  out.result().voted_end = out.end();

  // Part 3: every other request, once.
  for (const LogReport* r : reports) {
    for (const Entry& e : r->entries()) out.AddIfNew(e);
  }
  return out.Take();
}

}  // namespace dctk::spaxos
