// HashTableClient: a hashtable partitioned over machines (one table per
// machine, ShardOf(key) picks it), with single lookups and FaRM-style
// multi-get: MultiLookup groups the keys by the machine that holds them and
// sends each machine ONE batch of one-sided neighborhood reads (posted back
// to back on that machine's connection, as a verbs doorbell batch would be),
// polls all batches together, and returns a result per key. Keys whose copy
// cannot answer alone (torn or locked, overflow chain, out-of-line value)
// fall back to a single Lookup after the batch.
//
// A batch of B keys over M machines becomes min(B, M) per-machine batches:
// the bigger the cluster, the smaller each machine's share of a fixed batch
// (the trade-off the FaRM paper describes; measured in hashtable_benchmark).
//
// One client per thread (it owns registered buffers and uses the caller's queue).
//
// Example:
//   auto c = HashTableClient<ShmFabric>::Create(fabric, queue, {{2, k2, 0}, {3, k3, 0}}, config);
//   std::vector<absl::StatusOr<absl::optional<Value>>> got = (*c)->MultiLookup(keys);
#ifndef DCTK_FARM_KV_HASHTABLE_CLIENT_H_
#define DCTK_FARM_KV_HASHTABLE_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"
#include "farm/fabric/fabric.h"
#include "farm/kv/hashtable_layout.h"
#include "farm/kv/hashtable_reader.h"

namespace dctk::farm::kv {

struct MultiGetStats {
  uint64_t calls = 0;            // MultiLookup calls
  uint64_t keys = 0;             // keys asked for
  uint64_t machine_batches = 0;  // per-machine batches of reads posted
  uint64_t fallbacks = 0;        // keys finished by a single Lookup
};

template <typename F>
  requires fabric::Fabric<F>
class HashTableClient {
 public:
  using Result = absl::StatusOr<absl::optional<Value>>;
  // Reads in flight per round; bounded by the fabric queue depth.
  static constexpr size_t kMaxInFlight = 128;

  // shards[i] is the table holding keys with ShardOf(key, shards.size()) == i.
  static absl::StatusOr<std::unique_ptr<HashTableClient>> Create(F& fabric, typename F::Queue* queue,
                                                                 std::vector<fabric::RemoteAddress> shards,
                                                                 const TableConfig& config) {
    if (shards.empty()) return absl::InvalidArgumentError("hashtable client: no shards");
    std::unique_ptr<HashTableClient> c(new HashTableClient(queue));
    for (const fabric::RemoteAddress& table : shards) {
      auto r = HashTableReader<F>::Create(fabric, queue, table, config);
      if (!r.ok()) return r.status();
      c->readers_.push_back(std::move(*r));
    }
    absl::Status s = fabric.RegisterLocal(c->copies_.data(), c->copies_.size() * 8);
    if (!s.ok()) return s;
    return c;
  }

  uint32_t shards() const { return static_cast<uint32_t>(readers_.size()); }
  HashTableReader<F>& shard(uint32_t i) { return *readers_[i]; }

  Result Lookup(const Key& key) { return readers_[ShardOf(key, shards())]->Lookup(key); }
  absl::StatusOr<absl::optional<std::string>> LookupBytes(const Key& key) {
    return readers_[ShardOf(key, shards())]->LookupBytes(key);
  }

  // One result per key, in order; each is what Lookup(key) would return.
  std::vector<Result> MultiLookup(absl::Span<const Key> keys) {
    ++stats_.calls;
    stats_.keys += keys.size();
    std::vector<Result> results(keys.size(), absl::optional<Value>());
    // Group key indices by shard (counting sort keeps each machine's keys adjacent).
    const uint32_t n = shards();
    std::vector<uint32_t> shard_of(keys.size()), start(n + 1, 0), order(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) ++start[(shard_of[i] = ShardOf(keys[i], n)) + 1];
    for (uint32_t s = 0; s < n; ++s) start[s + 1] += start[s];
    std::vector<uint32_t> next(start.begin(), start.end() - 1);
    for (size_t i = 0; i < keys.size(); ++i) order[next[shard_of[i]]++] = static_cast<uint32_t>(i);
    std::vector<uint32_t> fallback;
    for (size_t begin = 0; begin < order.size(); begin += kMaxInFlight) {
      const size_t end = std::min(order.size(), begin + kMaxInFlight);
      RunRound(keys, absl::MakeConstSpan(order).subspan(begin, end - begin), shard_of, results, fallback);
    }
    stats_.fallbacks += fallback.size();
    for (uint32_t i : fallback) results[i] = Lookup(keys[i]);
    return results;
  }

  const MultiGetStats& stats() const { return stats_; }

 private:
  explicit HashTableClient(typename F::Queue* queue)
      : queue_(queue), copies_(kMaxInFlight * kNeighborhoodBytes / 8) {}

  // Posts the reads for `round` (grouped by shard), polls them all, and
  // finishes each key or queues it for a single lookup.
  void RunRound(absl::Span<const Key> keys, absl::Span<const uint32_t> round,
                const std::vector<uint32_t>& shard_of, std::vector<Result>& results,
                std::vector<uint32_t>& fallback) {
    auto* copies = reinterpret_cast<uint8_t*>(copies_.data());
    size_t outstanding = 0;
    uint32_t last_shard = ~0u;
    for (size_t j = 0; j < round.size(); ++j) {
      const uint32_t i = round[j];
      if (shard_of[i] != last_shard) ++stats_.machine_batches;
      last_shard = shard_of[i];
      absl::Status s = readers_[shard_of[i]]->PostNeighborhoodRead(keys[i], copies + j * kNeighborhoodBytes, j);
      if (s.ok()) {
        ++outstanding;
      } else {
        results[i] = s;
      }
    }
    fabric::Completion done[32];
    while (outstanding > 0) {
      const int got = queue_->PollCompletions(absl::MakeSpan(done));
      for (int c = 0; c < got; ++c) {
        --outstanding;
        const uint32_t i = round[done[c].wr_id];
        if (!done[c].ok()) {
          results[i] = done[c].ToStatus();
          continue;
        }
        absl::optional<absl::optional<Value>> answer =
            readers_[shard_of[i]]->FinishFromNeighborhood(keys[i], copies + done[c].wr_id * kNeighborhoodBytes);
        if (answer.has_value()) {
          results[i] = *answer;
        } else {
          fallback.push_back(i);
        }
      }
    }
  }

  typename F::Queue* queue_;
  std::vector<std::unique_ptr<HashTableReader<F>>> readers_;
  std::vector<uint64_t> copies_;
  MultiGetStats stats_;
};

}  // namespace dctk::farm::kv

#endif  // DCTK_FARM_KV_HASHTABLE_CLIENT_H_
