// TxHashTableReader: lock-free lookups in a transactional table
// (tx_hashtable.h) from any machine, outside transactions: one one-sided
// READ of the key's neighborhood at the primary of its shard's region
// (hashtable_reader.h does the read and the snapshot checks), and a second
// one for a value stored out of line (an object of the shard's region). It only ever
// returns committed values: buckets change at COMMIT-PRIMARY, under their
// locks, and a locked or half-written copy is read again.
//
// Each shard's primary comes from the region table (a per-reader
// RegionTable::Cache, one atomic load per lookup when nothing changed); when
// a configuration change moves a shard (its primary failed and a backup took
// over) the reader re-aims that shard's reader at the new primary on the
// next lookup. Other shards are untouched. A read that fails (the primary
// died and the configuration does not show it yet) returns the fabric's
// error (Unavailable): retry after the configuration changes.
//
// One reader per thread (it uses the caller's queue).
//
// Example:
//   auto q = fabric.CreateQueue();
//   auto r = TxHashTableReader<ShmFabric>::Create(fabric, q->get(), &region_table, table.layout());
//   absl::StatusOr<absl::optional<std::string>> v = (*r)->Lookup(key);
#ifndef DCTK_FARM_KV_TX_HASHTABLE_READER_H_
#define DCTK_FARM_KV_TX_HASHTABLE_READER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/optional.h"
#include "farm/core/region_table.h"
#include "farm/fabric/fabric.h"
#include "farm/kv/hashtable_reader.h"
#include "farm/kv/tx_hashtable.h"

namespace dctk::farm::kv {

template <typename F>
  requires fabric::Fabric<F>
class TxHashTableReader {
 public:
  static absl::StatusOr<std::unique_ptr<TxHashTableReader>> Create(F& fabric, typename F::Queue* queue,
                                                                   const RegionTable* regions, TxTableLayout layout) {
    if (layout.shards.empty()) return absl::InvalidArgumentError("hashtable reader: the table has no shards");
    return std::unique_ptr<TxHashTableReader>(new TxHashTableReader(fabric, queue, regions, std::move(layout)));
  }

  // The key's committed value, or nullopt.
  absl::StatusOr<absl::optional<std::string>> Lookup(const Key& key) {
    absl::StatusOr<HashTableReader<F>*> r = Aim(layout_.ShardOfKey(key));
    if (!r.ok()) return r.status();
    return (*r)->LookupBytes(key);
  }

  // Where shard `s` is read now: its region's primary (machine, key, offset).
  absl::StatusOr<fabric::RemoteAddress> ShardAt(uint32_t s) {
    if (s >= layout_.shards.size()) return absl::InvalidArgumentError(absl::StrCat("hashtable reader: no shard ", s));
    return cache_.ResolvePrimary(layout_.shards[s], static_cast<uint32_t>(layout_.ShardObjects() * kBucketBytes));
  }

  uint64_t lookups() const { return Sum(&HashTableReader<F>::lookups) + retired_lookups_; }
  uint64_t reads() const { return Sum(&HashTableReader<F>::reads) + retired_reads_; }
  // Times a shard's reader was (re-)aimed at a primary: shards + moves.
  uint64_t aims() const { return aims_; }
  const TxTableLayout& layout() const { return layout_; }

 private:
  struct Shard {
    fabric::RemoteAddress at{};
    std::unique_ptr<HashTableReader<F>> reader;
  };

  TxHashTableReader(F& fabric, typename F::Queue* queue, const RegionTable* regions, TxTableLayout layout)
      : fabric_(fabric), queue_(queue), cache_(regions), layout_(std::move(layout)), shards_(layout_.shards.size()) {}

  // Shard s's reader, aimed at the current primary.
  absl::StatusOr<HashTableReader<F>*> Aim(uint32_t s) {
    absl::StatusOr<fabric::RemoteAddress> at = ShardAt(s);
    if (!at.ok()) return at.status();
    Shard& sh = shards_[s];
    if (sh.reader == nullptr || sh.at.machine != at->machine || sh.at.key != at->key || sh.at.offset != at->offset) {
      if (sh.reader != nullptr) {
        retired_lookups_ += sh.reader->lookups();
        retired_reads_ += sh.reader->reads();
      }
      absl::StatusOr<const RegionInfo*> region = cache_.Lookup(layout_.shards[s].region());
      if (!region.ok()) return region.status();
      // Out-of-line values: objects of the shard's region, by region offset.
      auto r = HashTableReader<F>::Create(fabric_, queue_, *at, layout_.config, ValueArea::Region((*region)->size));
      if (!r.ok()) return r.status();
      sh.reader = std::move(*r);
      sh.at = *at;
      ++aims_;
    }
    return sh.reader.get();
  }

  uint64_t Sum(uint64_t (HashTableReader<F>::*counter)() const) const {
    uint64_t n = 0;
    for (const Shard& sh : shards_) {
      if (sh.reader != nullptr) n += ((*sh.reader).*counter)();
    }
    return n;
  }

  F& fabric_;
  typename F::Queue* queue_;
  RegionTable::Cache cache_;
  const TxTableLayout layout_;
  std::vector<Shard> shards_;
  uint64_t aims_ = 0;
  uint64_t retired_lookups_ = 0;
  uint64_t retired_reads_ = 0;
};

}  // namespace dctk::farm::kv

#endif  // DCTK_FARM_KV_TX_HASHTABLE_READER_H_
