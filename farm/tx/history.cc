#include "farm/tx/history.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace dctk::farm::tx {

std::vector<std::string> CheckSerializable(const std::vector<CommittedTx>& history,
                                           const absl::flat_hash_map<uint64_t, uint64_t>& initial) {
  std::vector<std::string> problems;
  const int n = static_cast<int>(history.size());
  // (object, version) -> index of the transaction that produced it.
  absl::flat_hash_map<std::pair<uint64_t, uint64_t>, int> producer;
  for (int i = 0; i < n; ++i) {
    for (uint64_t obj : history[i].writes) {
      auto r = history[i].reads.find(obj);
      if (r == history[i].reads.end()) {
        problems.push_back(absl::StrCat("tx ", history[i].id, " wrote object ", obj, " without reading it"));
        continue;
      }
      auto [it, fresh] = producer.emplace(std::make_pair(obj, r->second + 1), i);
      if (!fresh) {
        problems.push_back(absl::StrCat("lost update: tx ", history[it->second].id, " and tx ", history[i].id,
                                        " both wrote object ", obj, " over version ", r->second));
      }
    }
  }
  std::vector<std::vector<int>> edges(n);
  for (int i = 0; i < n; ++i) {
    for (const auto& [obj, v] : history[i].reads) {
      auto w = producer.find({obj, v});
      if (w != producer.end()) {
        if (w->second != i) edges[w->second].push_back(i);  // write-read
      } else if (auto init = initial.find(obj); init == initial.end() || init->second != v) {
        problems.push_back(absl::StrCat("dirty read: tx ", history[i].id, " read object ", obj, " at version ", v,
                                        ", which no committed transaction wrote"));
      }
      auto next = producer.find({obj, v + 1});
      if (next != producer.end() && next->second != i) edges[i].push_back(next->second);  // read-write
    }
  }
  // Kahn's algorithm: a cycle leaves nodes with incoming edges.
  std::vector<int> indegree(n, 0);
  for (const auto& out : edges) {
    for (int j : out) ++indegree[j];
  }
  std::vector<int> ready;
  for (int i = 0; i < n; ++i) {
    if (indegree[i] == 0) ready.push_back(i);
  }
  int done = 0;
  while (!ready.empty()) {
    const int i = ready.back();
    ready.pop_back();
    ++done;
    for (int j : edges[i]) {
      if (--indegree[j] == 0) ready.push_back(j);
    }
  }
  if (done != n) {
    problems.push_back(absl::StrCat("serialization graph has a cycle through ", n - done,
                                    " transactions (e.g. write skew)"));
  }
  return problems;
}

}  // namespace dctk::farm::tx
