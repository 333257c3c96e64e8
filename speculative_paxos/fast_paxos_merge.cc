#include "speculative_paxos/fast_paxos_merge.h"

#include <algorithm>
#include <set>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace dctk::spaxos {
namespace {

using RequestId = std::pair<uint64_t, uint64_t>;
RequestId IdOf(const Entry& e) { return {e.client_id(), e.request_id()}; }

Entry NoOp(uint64_t slot) {
  Entry e;
  e.set_slot(slot);
  e.set_client_id(kFpNoOpClient);
  e.set_request_id(slot);
  return e;
}

// The value kept at one slot, or nullptr when the slot is free.
absl::StatusOr<const Entry*> KeptAt(uint64_t slot,
                                    const std::vector<std::map<uint64_t, Entry>>& reports) {
  std::vector<const Entry*> tops;
  uint64_t k = 0;
  for (const auto& r : reports) {
    auto it = r.find(slot);
    tops.push_back(it == r.end() ? nullptr : &it->second);
    if (it != r.end()) k = std::max(k, it->second.ballot());
  }
  const Entry* in_k = nullptr;
  for (const Entry* e : tops) {
    if (e == nullptr || e->ballot() != k) continue;
    if (in_k != nullptr && IdOf(*in_k) != IdOf(*e)) {
      if (!FpIsFastBallot(k)) {
        return absl::InternalError(absl::StrCat(
            "fast paxos merge: slot ", slot, " holds two values in ",
            k == kFpChosenBallot ? "the chosen log" : absl::StrCat("classic ballot ", k)));
      }
      return nullptr;  // a collision in a fast round: nothing chosen there
    }
    in_k = e;
  }
  if (in_k == nullptr) return nullptr;
  if (!FpIsFastBallot(in_k->ballot())) return in_k;
  // Fast: chosen only if the whole fast quorum voted for it, so both of us.
  for (const Entry* e : tops) {
    if (e == nullptr || IdOf(*e) != IdOf(*in_k)) return nullptr;
  }
  return in_k;
}

}  // namespace

absl::StatusOr<FpMerge> MergeFastPaxos(
    uint64_t base, const std::vector<std::map<uint64_t, Entry>>& reports,
    const std::function<uint64_t(uint64_t)>& latest_request) {
  if (reports.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("fast paxos merge: need the reports of 2 replicas, got ", reports.size()));
  }
  uint64_t last = base;
  for (const auto& r : reports) {
    if (!r.empty()) last = std::max(last, r.rbegin()->first);
  }
  FpMerge out;
  std::set<RequestId> placed;
  absl::flat_hash_map<uint64_t, uint64_t> latest;
  auto fresh = [&](const Entry& e) {
    if (placed.contains(IdOf(e))) return false;
    auto [it, inserted] = latest.try_emplace(e.client_id(), 0);
    if (inserted) it->second = latest_request(e.client_id());
    return e.request_id() > it->second;
  };
  auto place = [&](Entry e, uint64_t slot) {
    latest[e.client_id()] = e.request_id();
    placed.insert(IdOf(e));
    e.set_slot(slot);
    e.clear_ballot();
    e.clear_hash();
    out.entries.push_back(std::move(e));
  };
  // Kept values at their slots; free slots below the last kept one: no-ops.
  std::vector<std::pair<uint64_t, const Entry*>> kept;
  for (uint64_t s = base + 1; s <= last; ++s) {
    absl::StatusOr<const Entry*> k = KeptAt(s, reports);
    if (!k.ok()) return k.status();
    if (*k != nullptr) kept.emplace_back(s, *k);
  }
  const uint64_t kept_end = kept.empty() ? base : kept.back().first;
  auto next_kept = kept.begin();
  for (uint64_t s = base + 1; s <= kept_end; ++s) {
    if (next_kept != kept.end() && next_kept->first == s) {
      const Entry& e = *(next_kept++)->second;
      if (e.client_id() != kFpNoOpClient && fresh(e)) {
        ++out.kept;
        place(e, s);
        continue;
      }
      if (e.client_id() != kFpNoOpClient) ++out.conflicts;
    }
    ++out.noops;
    out.entries.push_back(NoOp(s));
  }
  // Every other reported request, once, oldest slot first.
  std::vector<const Entry*> rest;
  for (const auto& r : reports) {
    for (const auto& [slot, e] : r) {
      if (e.client_id() != kFpNoOpClient) rest.push_back(&e);
    }
  }
  std::sort(rest.begin(), rest.end(), [](const Entry* a, const Entry* b) {
    return std::make_tuple(a->slot(), a->client_id(), a->request_id()) <
           std::make_tuple(b->slot(), b->client_id(), b->request_id());
  });
  uint64_t slot = kept_end;
  for (const Entry* e : rest) {
    if (fresh(*e)) place(*e, ++slot);
  }
  return out;
}

}  // namespace dctk::spaxos
