// TxHashTable: FaRM's hashtable (hashtable_layout.h) updated inside farm/tx
// transactions and partitioned over several regions (machines), as in FaRM
// (SOSP'15): a transfer and a hashtable update commit atomically, and any
// machine looks keys up lock-free with ONE one-sided read (TxHashTableReader).
//
// Layout. Shard i is a run of contiguous FaRM objects in one region, each of
// kBucketBytes (object.h layout): `buckets + 1` buckets, `overflow_blocks`
// overflow blocks, then one shard header (the count of overflow blocks in
// use). Contiguous, so the neighborhood of a key (home bucket and the next)
// is one read, exactly as hashtable_reader.h expects; a shard therefore fits
// one 1 MiB block of the region's object heap (kMaxShardObjects objects).
// A key's shard is picked from its hash (ShardBy::kWholeKey), or from key
// bytes 8..15 only (ShardBy::kKeySuffix), so that rows sharing them (one
// TATP subscriber's) share a shard and a primary. Losing a machine moves only
// the shards whose regions it was primary of (their backups take over).
//
// Updates. Get/Put/Insert/Update/Erase take a farm/tx Transaction: buckets
// are read with Transaction::Read (versions recorded, validated at commit)
// and written with Transaction::Write (buffered, applied at COMMIT-PRIMARY
// under the objects' locks). A hopscotch displacement (entries moved right,
// each within its own neighborhood) or a new overflow block (claimed through
// the shard header, filled and linked) is part of the same transaction, so
// it commits or aborts with the caller's other writes. Conflicts are at
// bucket granularity: two transactions writing keys in one bucket, or one
// reading a bucket the other writes, cannot both commit (Aborted: retry).
//
// Values. Up to 32 bytes inline in the slot; longer ones (up to
// TableConfig::max_value_bytes, at most kMaxTxValueBytes) out of line, in the
// same object format as the owner-side table's value heap (hashtable_layout.h:
// [key | length | bytes], the slot holding [offset | length]), but each value
// object is a FaRM object the transaction allocates in the shard's region
// (Transaction::Alloc near the shard) and frees when the value is overwritten
// or erased, so values are replicated, logged and recovered with the buckets,
// and commit or abort with them. (The owner-side ValueHeap is one process's
// allocator: it cannot serve transactions coordinated on many machines.) A
// value object spans a power-of-two number of cache lines (few size
// classes per region: each takes 1 MiB heap blocks of its own); an overwrite
// that still fits rewrites it in place (no allocation). The slot's offset is the object's
// offset in the region, so a lock-free reader reads it at the shard's primary
// with a second one-sided read and accepts it only if it names the key and
// length the slot promised (hashtable_reader.h). A transaction cannot free
// an object it allocated itself (farm/tx): erasing, inlining or growing past
// its object a value whose object this same transaction allocated is
// FailedPrecondition (commit first); nothing is leaked.
//
// Why lock-free readers only see committed values: a bucket changes only at
// COMMIT-PRIMARY (after the commit point), under its lock, with its line
// versions written first; a reader's copy of a locked or half-written bucket
// fails the snapshot check and is read again. A transaction locks all its
// buckets before it applies any, and entries only move right, so a reader
// copying h then h+1 sees at worst the old h and the new h+1 of one move,
// which both hold the moved entry.
//
// Example:
//   auto table = TxHashTable::Create(client, TxHashTable::SpreadShards(regions, 3), {.buckets = 1024});
//   auto tx = client.Begin();
//   tx.Write(account, new_balance);
//   table->Put(tx, key, "new value");            // both or neither
//   absl::Status s = tx.Commit();
//   auto reader = TxHashTableReader<ShmFabric>::Create(fabric, queue, &regions, table->layout());
//   absl::StatusOr<absl::optional<std::string>> v = (*reader)->Lookup(key);   // one read
#ifndef DCTK_FARM_KV_TX_HASHTABLE_H_
#define DCTK_FARM_KV_TX_HASHTABLE_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"
#include "farm/alloc/block_allocator.h"
#include "farm/core/address.h"
#include "farm/core/region_table.h"
#include "farm/kv/hashtable_layout.h"

namespace dctk::farm::kv {

// Longest value a transactional table keeps inline in the slot.
inline constexpr size_t kMaxTxInlineValue = kMaxInlineValue;
// Largest TableConfig::max_value_bytes of a transactional table (its value
// object must be one FaRM object; readers keep a buffer this large).
inline constexpr size_t kMaxTxValueBytes = 256 << 10;
// Objects of one shard: it must fit one heap block (contiguous slots).
inline constexpr uint32_t kMaxShardObjects = kBlockBytes / kBucketBytes;

enum class ShardBy : uint8_t {
  kWholeKey,   // the key's hash: keys spread evenly
  kKeySuffix,  // key bytes 8..15 only: keys sharing them share a shard
};

// Where a transactional table lives; enough for any client to use it.
struct TxTableLayout {
  TableConfig config;                 // of each shard (value_heap_bytes 0: values are objects of the region)
  std::vector<GlobalAddress> shards;  // shard i's first bucket object
  ShardBy shard_by = ShardBy::kWholeKey;

  uint32_t ShardOfKey(const Key& k) const {
    const uint32_t n = static_cast<uint32_t>(shards.size());
    if (shard_by == ShardBy::kWholeKey) return ShardOf(k, n);
    Key suffix{};
    std::memcpy(suffix.data() + 8, k.data() + 8, 8);
    return ShardOf(suffix, n);
  }
  // Objects per shard: buckets, the extra bucket, overflow blocks, header.
  uint64_t ShardObjects() const { return uint64_t{config.buckets} + 2 + config.overflow_blocks; }
  uint64_t HeaderIndex() const { return uint64_t{config.buckets} + 1 + config.overflow_blocks; }
  GlobalAddress Object(uint32_t shard, uint64_t index) const {
    return shards[shard].Plus(static_cast<uint32_t>(index * kBucketBytes));
  }
};

class TxHashTable {
 public:
  // Transactions used to allocate a shard (their LOCK messages stay small).
  static constexpr int kCreateBatch = 256;

  // Allocates shard i in regions[i] (one transaction per kCreateBatch
  // objects of `client`, a tx::TxClient); the buckets start empty. Errors:
  // InvalidArgument for a bad config (no buckets, a value heap, a shard over
  // kMaxShardObjects objects), ResourceExhausted when the region's heap did
  // not hand out contiguous slots, or the transactions' errors. A value
  // heap (value_heap_bytes) is refused: out-of-line values are objects of
  // the shard's region; max_value_bytes bounds them (<= kMaxTxValueBytes).
  template <typename Client>
  static absl::StatusOr<TxHashTable> Create(Client& client, absl::Span<const RegionId> regions,
                                            const TableConfig& config, ShardBy shard_by = ShardBy::kWholeKey);

  // `shards` regions, taken round-robin over the machines that are their
  // primaries (machine order, then region id), so the table spans machines.
  static std::vector<RegionId> SpreadShards(const RegionTable& table, int shards);

  explicit TxHashTable(TxTableLayout layout) : layout_(std::move(layout)) {}

  // The key's value, or nullopt; the buckets read join tx's read set.
  template <typename Tx>
  absl::StatusOr<absl::optional<std::string>> Get(Tx& tx, const Key& key) const;
  // Inserts or overwrites. InvalidArgument (naming the key and both sizes)
  // for a value over max_value_bytes; ResourceExhausted when the
  // neighborhood is full, no displacement helps and the shard's overflow
  // blocks are all used, or when the shard's region has no room for the
  // value object.
  template <typename Tx>
  absl::Status Put(Tx& tx, const Key& key, absl::string_view value) const {
    return Upsert(tx, key, value, Mode::kPut);
  }
  // AlreadyExists if the key is present.
  template <typename Tx>
  absl::Status Insert(Tx& tx, const Key& key, absl::string_view value) const {
    return Upsert(tx, key, value, Mode::kInsert);
  }
  // NotFound if the key is absent.
  template <typename Tx>
  absl::Status Update(Tx& tx, const Key& key, absl::string_view value) const {
    return Upsert(tx, key, value, Mode::kUpdate);
  }
  // True if the key was present.
  template <typename Tx>
  absl::StatusOr<bool> Erase(Tx& tx, const Key& key) const;
  // Overflow blocks in use in `shard` (read in tx).
  template <typename Tx>
  absl::StatusOr<uint64_t> OverflowBlocksUsed(Tx& tx, uint32_t shard) const;

  const TxTableLayout& layout() const { return layout_; }
  uint32_t shards() const { return static_cast<uint32_t>(layout_.shards.size()); }
  // Slots of all shards' buckets (overflow blocks not counted).
  uint64_t capacity() const { return shards() * (uint64_t{layout_.config.buckets} + 1) * kSlots; }

 private:
  enum class Mode { kPut, kInsert, kUpdate };
  template <typename Tx>
  class Op;  // one operation's view of a shard's buckets inside a transaction

  template <typename Tx>
  absl::Status Upsert(Tx& tx, const Key& key, absl::string_view value, Mode mode) const;

  TxTableLayout layout_;
};

}  // namespace dctk::farm::kv

#include "farm/kv/internal/tx_hashtable_impl.h"

#endif  // DCTK_FARM_KV_TX_HASHTABLE_H_
