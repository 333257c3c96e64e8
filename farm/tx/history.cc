#include "farm/tx/history.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dctk::farm::tx {
namespace {

// Nodes 0..n-1 are the transactions. Node n + k is the real-time chain's k-th
// link: "the k + 1 first transactions in commit-return order have returned";
// each transaction points to its link, each link to the next, and a link to
// every transaction that began after all those returned. So a path from T1 to
// T2 through the chain exists exactly when T1 returned before T2 began.
enum class EdgeKind { kWriteRead, kReadWrite, kRealTime };

struct Edge {
  int to = 0;
  EdgeKind kind = EdgeKind::kRealTime;
  uint64_t object = 0;   // conflict edges: the object
  uint64_t version = 0;  // and the version read
};

using Graph = std::vector<std::vector<Edge>>;
using Producers = absl::flat_hash_map<std::pair<uint64_t, uint64_t>, int>;
using Cycle = std::vector<std::pair<int, const Edge*>>;  // (from, edge), in order

// (object, version) -> index of the transaction that wrote that version.
Producers FindProducers(const std::vector<CommittedTx>& history,
                        std::vector<std::string>* problems) {
  Producers producer;
  for (int i = 0; i < static_cast<int>(history.size()); ++i) {
    for (uint64_t obj : history[i].writes) {
      auto r = history[i].reads.find(obj);
      if (r == history[i].reads.end()) {
        problems->push_back(
            absl::StrCat("tx ", history[i].id, " wrote object ", obj, " without reading it"));
        continue;
      }
      auto [it, fresh] = producer.emplace(std::make_pair(obj, r->second + 1), i);
      if (!fresh) {
        problems->push_back(absl::StrCat("lost update: tx ", history[it->second].id, " and tx ",
                                         history[i].id, " both wrote object ", obj,
                                         " over version ", r->second));
      }
    }
  }
  return producer;
}

void AddConflictEdges(const std::vector<CommittedTx>& history, const Producers& producer,
                      const absl::flat_hash_map<uint64_t, uint64_t>& initial, Graph* graph,
                      std::vector<std::string>* problems) {
  for (int i = 0; i < static_cast<int>(history.size()); ++i) {
    for (const auto& [obj, v] : history[i].reads) {
      auto w = producer.find({obj, v});
      if (w != producer.end()) {
        if (w->second != i) (*graph)[w->second].push_back({i, EdgeKind::kWriteRead, obj, v});
      } else if (auto init = initial.find(obj); init == initial.end() || init->second != v) {
        problems->push_back(absl::StrCat("dirty read: tx ", history[i].id, " read object ", obj,
                                         " at version ", v,
                                         ", which no committed transaction wrote"));
      }
      auto next = producer.find({obj, v + 1});
      if (next != producer.end() && next->second != i) {
        (*graph)[i].push_back({next->second, EdgeKind::kReadWrite, obj, v});
      }
    }
  }
}

void AddRealTimeEdges(const std::vector<CommittedTx>& history, Graph* graph,
                      std::vector<std::string>* problems) {
  const int n = static_cast<int>(history.size());
  std::vector<int> by_end(n);
  for (int i = 0; i < n; ++i) {
    by_end[i] = i;
    if (history[i].begin >= history[i].end) {
      problems->push_back(absl::StrCat("tx ", history[i].id, " began at tick ", history[i].begin,
                                       ", not before its commit returned (tick ", history[i].end,
                                       ")"));
    }
  }
  std::sort(by_end.begin(), by_end.end(),
            [&](int a, int b) { return history[a].end < history[b].end; });
  std::vector<uint64_t> ends(n);
  for (int k = 0; k < n; ++k) {
    ends[k] = history[by_end[k]].end;
    (*graph)[by_end[k]].push_back({n + k});
    if (k > 0) (*graph)[n + k - 1].push_back({n + k});
  }
  for (int i = 0; i < n; ++i) {
    const int returned =
        std::lower_bound(ends.begin(), ends.end(), history[i].begin) - ends.begin();
    if (returned > 0) (*graph)[n + returned - 1].push_back({i});
  }
}

// A cycle of `graph` (real-time edges included or not), or an empty one.
// Kahn's algorithm leaves the nodes on or after a cycle; each has a
// predecessor among them, so walking predecessors from any one repeats a node.
Cycle FindCycle(const Graph& graph, bool with_real_time) {
  const int nodes = static_cast<int>(graph.size());
  auto counted = [&](const Edge& e) { return with_real_time || e.kind != EdgeKind::kRealTime; };
  std::vector<int> indegree(nodes, 0);
  for (const auto& out : graph) {
    for (const Edge& e : out) indegree[e.to] += counted(e);
  }
  std::vector<int> ready;
  for (int i = 0; i < nodes; ++i) {
    if (indegree[i] == 0) ready.push_back(i);
  }
  while (!ready.empty()) {
    const int i = ready.back();
    ready.pop_back();
    for (const Edge& e : graph[i]) {
      if (counted(e) && --indegree[e.to] == 0) ready.push_back(e.to);
    }
  }
  std::vector<std::pair<int, const Edge*>> pred(nodes, {-1, nullptr});
  int start = -1;
  for (int i = 0; i < nodes; ++i) {
    if (indegree[i] == 0) continue;
    start = i;
    for (const Edge& e : graph[i]) {
      if (counted(e) && indegree[e.to] > 0) pred[e.to] = {i, &e};
    }
  }
  if (start < 0) return {};
  std::vector<int> seen_at(nodes, -1);
  Cycle back;  // back[j]: the edge into the j-th node walked
  int x = start;
  while (seen_at[x] < 0) {
    seen_at[x] = static_cast<int>(back.size());
    back.push_back(pred[x]);
    x = pred[x].first;
  }
  Cycle cycle(back.begin() + seen_at[x], back.end());
  std::reverse(cycle.begin(), cycle.end());
  return cycle;
}

// The cycle's steps between transactions; a run of real-time chain links is
// one step, from the transaction that returned to the one that began after.
std::string DescribeCycle(const std::vector<CommittedTx>& history, Cycle cycle) {
  const int n = static_cast<int>(history.size());
  // The chain alone has no cycle: start at a transaction.
  auto first_tx =
      std::find_if(cycle.begin(), cycle.end(), [&](const auto& s) { return s.first < n; });
  std::rotate(cycle.begin(), first_tx, cycle.end());
  std::vector<std::string> steps;
  int returned = -1;  // the transaction a run of chain links started at
  for (const auto& [from, e] : cycle) {
    if (e->kind == EdgeKind::kRealTime) {
      if (from < n) returned = from;
      if (e->to >= n) continue;
      const CommittedTx &a = history[returned], &b = history[e->to];
      steps.push_back(absl::StrCat("tx ", a.id, " -> tx ", b.id, ": tx ", a.id,
                                   "'s commit returned (tick ", a.end, ") before tx ", b.id,
                                   " began (tick ", b.begin, ")"));
      continue;
    }
    const CommittedTx &a = history[from], &b = history[e->to];
    steps.push_back(
        e->kind == EdgeKind::kWriteRead
            ? absl::StrCat("tx ", a.id, " -> tx ", b.id, ": tx ", b.id, " read object ", e->object,
                           " at version ", e->version, ", written by tx ", a.id)
            : absl::StrCat("tx ", a.id, " -> tx ", b.id, ": tx ", a.id, " read object ", e->object,
                           " at version ", e->version, ", which tx ", b.id, " overwrote"));
  }
  return absl::StrCat(steps.size(), " transactions: ", absl::StrJoin(steps, "; "));
}

}  // namespace

std::vector<std::string> CheckStrictlySerializable(
    const std::vector<CommittedTx>& history,
    const absl::flat_hash_map<uint64_t, uint64_t>& initial) {
  std::vector<std::string> problems;
  const Producers producer = FindProducers(history, &problems);
  Graph graph(2 * history.size());
  AddConflictEdges(history, producer, initial, &graph, &problems);
  AddRealTimeEdges(history, &graph, &problems);
  if (Cycle c = FindCycle(graph, /*with_real_time=*/false); !c.empty()) {
    problems.push_back(absl::StrCat(
        "not serializable (write skew or another anomaly): serialization graph cycle of ",
        DescribeCycle(history, std::move(c))));
  } else if (Cycle c = FindCycle(graph, /*with_real_time=*/true); !c.empty()) {
    problems.push_back(
        absl::StrCat("not strictly serializable (a stale read or a read from the future): "
                     "real-time order cycle of ",
                     DescribeCycle(history, std::move(c))));
  }
  return problems;
}

std::optional<std::string> InjectStaleRead(std::vector<CommittedTx>* history) {
  std::vector<std::string> ignored;
  const Producers producer = FindProducers(*history, &ignored);
  for (CommittedTx& t : *history) {
    for (auto& [obj, v] : t.reads) {
      if (std::find(t.writes.begin(), t.writes.end(), obj) != t.writes.end()) continue;
      auto w = producer.find({obj, v});
      if (w == producer.end() || (*history)[w->second].end >= t.begin) continue;
      --v;
      return absl::StrCat("tx ", t.id, " read object ", obj, " at version ", v, ",");
    }
  }
  return std::nullopt;
}

}  // namespace dctk::farm::tx
