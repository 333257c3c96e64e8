// Implementation of tx_hashtable.h (templates on the transaction). Not for direct inclusion.
#ifndef DCTK_FARM_KV_INTERNAL_TX_HASHTABLE_IMPL_H_
#define DCTK_FARM_KV_INTERNAL_TX_HASHTABLE_IMPL_H_

#include <bit>

#include "absl/strings/escaping.h"

namespace dctk::farm::kv {
namespace tx_hashtable_internal {

// How far right a hopscotch displacement looks for a free slot (as the owner-side writer).
inline constexpr uint64_t kMaxDisplacement = 32;

inline std::string KeyName(const Key& k) {
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(k.data()), k.size()));
}

// Lines of the object allocated for an out-of-line value of `len` bytes: a
// power of two, so a shard's values use few of the region's size classes
// (each takes heap blocks of its own) and an overwrite of a similar length
// fits the object in place.
inline size_t ValueLines(uint64_t len) { return std::bit_ceil(ObjectLines(kHeapValueHeader + len)); }

// The object payload [key | length | bytes] of an out-of-line value.
inline std::string ValuePayload(const Key& k, absl::string_view value) {
  std::string p(kHeapValueHeader + value.size(), '\0');
  std::memcpy(p.data(), k.data(), 16);
  const uint64_t len = value.size();
  std::memcpy(p.data() + 16, &len, 8);
  std::memcpy(p.data() + kHeapValueHeader, value.data(), value.size());
  return p;
}

}  // namespace tx_hashtable_internal

// One operation on one key: the buckets of its shard it read or changed in
// the transaction, decoded once (later reads of a bucket come from here).
template <typename Tx>
class TxHashTable::Op {
 public:
  Op(const TxTableLayout& l, Tx& tx, const Key& key)
      : l_(l), tx_(tx), key_(key), shard_(l.ShardOfKey(key)), home_(HomeBucket(key, l.config.buckets)) {}

  absl::StatusOr<Bucket*> Load(uint64_t index) {
    if (auto it = cache_.find(index); it != cache_.end()) return &it->second;
    absl::StatusOr<std::string> p = tx_.Read(l_.Object(shard_, index), kBucketPayload);
    if (!p.ok()) return p.status();
    Bucket b;
    b.Decode(reinterpret_cast<const uint8_t*>(p->data()));
    return &cache_.emplace(index, b).first->second;
  }
  // Buffers the (changed) bucket `index` as a write of tx.
  absl::Status Store(uint64_t index) {
    uint8_t payload[kBucketPayload];
    cache_.at(index).Encode(payload);
    return tx_.Write(l_.Object(shard_, index), absl::string_view(reinterpret_cast<const char*>(payload), kBucketPayload));
  }

  // Where the key is (bucket index, slot), or nullopt. Afterwards places()
  // lists the buckets looked at: home, home + 1, then the overflow chain.
  absl::StatusOr<absl::optional<std::pair<uint64_t, int>>> Find() {
    using Where = absl::optional<std::pair<uint64_t, int>>;
    places_ = {home_, home_ + 1};
    for (uint64_t index : {home_, home_ + 1}) {
      absl::StatusOr<Bucket*> b = Load(index);
      if (!b.ok()) return b.status();
      if (int i = (*b)->Find(key_); i >= 0) return Where(std::make_pair(index, i));
    }
    const uint64_t first_block = uint64_t{l_.config.buckets} + 1;
    uint64_t link = cache_.at(home_).overflow;
    while (link != 0) {
      const uint64_t index = link / kBucketBytes;
      if (link % kBucketBytes != 0 || index < first_block || index >= l_.HeaderIndex() ||
          places_.size() > l_.config.overflow_blocks + 2) {
        return absl::DataLossError(absl::StrCat("hashtable shard ", shard_, ": bad overflow link ", link,
                                                " in the chain of bucket ", home_));
      }
      places_.push_back(index);
      absl::StatusOr<Bucket*> b = Load(index);
      if (!b.ok()) return b.status();
      if (int i = (*b)->Find(key_); i >= 0) return Where(std::make_pair(index, i));
      link = (*b)->overflow;
    }
    return Where();
  }

  // Puts `slot` into a free slot: the neighborhood, a hopscotch
  // displacement, the chain, or a new overflow block. After Find().
  absl::Status Place(const Bucket::Slot& slot) {
    for (uint64_t index : {home_, home_ + 1}) {
      Bucket* b = &cache_.at(index);
      if (int i = b->FreeSlot(); i >= 0) return Set(index, i, slot);
    }
    absl::StatusOr<bool> displaced = Displace();
    if (!displaced.ok()) return displaced.status();
    if (*displaced) return Set(home_ + 1, cache_.at(home_ + 1).FreeSlot(), slot);
    for (size_t p = 2; p < places_.size(); ++p) {
      if (int i = cache_.at(places_[p]).FreeSlot(); i >= 0) return Set(places_[p], i, slot);
    }
    return NewOverflowBlock(slot);
  }

  absl::Status Set(uint64_t index, int i, const Bucket::Slot& slot) {
    cache_.at(index).slots[i] = slot;
    return Store(index);
  }

  uint32_t shard() const { return shard_; }
  uint64_t home() const { return home_; }

  // The object holding slot's out-of-line value (in the shard's region).
  GlobalAddress ValueObject(const Bucket::Slot& slot) const {
    return GlobalAddress(l_.shards[shard_].region(), static_cast<uint32_t>(slot.heap_offset()));
  }

  // The out-of-line value `slot` points to, read in the transaction. A copy
  // that does not name the key and length the slot promised (the bucket
  // read is stale: another transaction moved on) is Aborted: the commit
  // would fail validation anyway.
  absl::StatusOr<std::string> ReadValue(const Bucket::Slot& slot) {
    const uint64_t len = slot.heap_length();
    const GlobalAddress at = ValueObject(slot);
    auto changed = [&] {
      return absl::AbortedError(absl::StrCat("hashtable: the value of key ", tx_hashtable_internal::KeyName(key_),
                                             " at ", at.ToString(), " changed under the transaction"));
    };
    if (len > l_.config.max_value_bytes || slot.heap_offset() > UINT32_MAX) return changed();
    absl::StatusOr<std::string> p = tx_.Read(at, kHeapValueHeader + len);
    if (absl::IsFailedPrecondition(p.status())) return changed();  // freed meanwhile
    if (!p.ok()) return p.status();
    uint64_t stored;
    std::memcpy(&stored, p->data() + 16, 8);
    if (std::memcmp(p->data(), key_.data(), 16) != 0 || stored != len) return changed();
    return p->substr(kHeapValueHeader);
  }

  // The slot for `value`: inline, or out of line in `old`'s object when the
  // value fits it (rewritten in place), else in a new object. `old`'s object
  // is freed when no longer used. Before the bucket is changed (Set/Place).
  absl::StatusOr<Bucket::Slot> MakeSlot(absl::string_view value, const Bucket::Slot* old) {
    const bool old_object = old != nullptr && old->out_of_line();
    const bool reuse = old_object && value.size() > kMaxInlineValue &&
                       tx_hashtable_internal::ValueLines(value.size()) <=
                           tx_hashtable_internal::ValueLines(old->heap_length());
    if (old_object && !reuse) {
      if (absl::Status s = FreeValue(*old); !s.ok()) return s;
    }
    if (value.size() <= kMaxInlineValue) {
      return Bucket::Slot::Inline(key_, reinterpret_cast<const uint8_t*>(value.data()), value.size());
    }
    GlobalAddress at;
    if (reuse) {
      at = ValueObject(*old);
    } else {
      absl::StatusOr<GlobalAddress> a =
          tx_.Alloc(PayloadCapacity(tx_hashtable_internal::ValueLines(value.size())), l_.shards[shard_]);
      if (!a.ok()) return a.status();
      at = *a;
    }
    absl::Status s = tx_.Write(at, tx_hashtable_internal::ValuePayload(key_, value));
    if (!s.ok()) return s;
    return Bucket::Slot::OutOfLine(key_, at.offset(), value.size());
  }

  // Frees slot's value object in the transaction.
  absl::Status FreeValue(const Bucket::Slot& slot) {
    absl::Status s = tx_.Free(ValueObject(slot));
    if (absl::IsFailedPrecondition(s)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "hashtable: the value object of key ", tx_hashtable_internal::KeyName(key_), " at ",
          ValueObject(slot).ToString(), " was allocated by this transaction, which cannot free it (",
          s.message(), "): commit the transaction before erasing, inlining or growing this value"));
    }
    return s;
  }

 private:
  // Frees a slot in home + 1 by moving entries right, each within its own
  // neighborhood (an entry of bucket j-1 whose home is j-1 moves to j).
  absl::StatusOr<bool> Displace() {
    const uint64_t last = std::min<uint64_t>(l_.config.buckets, home_ + 1 + tx_hashtable_internal::kMaxDisplacement);
    uint64_t free_bucket = home_ + 2;
    for (;; ++free_bucket) {
      if (free_bucket > last) return false;
      absl::StatusOr<Bucket*> b = Load(free_bucket);
      if (!b.ok()) return b.status();
      if ((*b)->FreeSlot() >= 0) break;
    }
    for (uint64_t j = free_bucket; j > home_ + 1; --j) {
      Bucket* from = &cache_.at(j - 1);
      Bucket* to = &cache_.at(j);
      int moved = -1;
      for (size_t i = 0; i < kSlots && moved < 0; ++i) {
        if (from->slots[i].occupied() && HomeBucket(from->slots[i].key, l_.config.buckets) == j - 1) {
          moved = static_cast<int>(i);
        }
      }
      if (moved < 0) return false;  // the moves so far are valid states; nothing frees home + 1
      to->slots[to->FreeSlot()] = from->slots[moved];
      from->slots[moved] = Bucket::Slot{};
      absl::Status s = Store(j);
      if (s.ok()) s = Store(j - 1);
      if (!s.ok()) return s;
    }
    return true;
  }

  // Claims the shard's next overflow block (its header counts them), fills
  // it with `slot` and links it at the end of home's chain.
  absl::Status NewOverflowBlock(const Bucket::Slot& slot) {
    const GlobalAddress header = l_.Object(shard_, l_.HeaderIndex());
    absl::StatusOr<std::string> h = tx_.Read(header, 8);
    if (!h.ok()) return h.status();
    uint64_t used;
    std::memcpy(&used, h->data(), 8);
    if (used >= l_.config.overflow_blocks) {
      return absl::ResourceExhaustedError(absl::StrCat("hashtable shard ", shard_, ": bucket ", home_,
                                                       " and its neighbour are full and all ", l_.config.overflow_blocks,
                                                       " overflow blocks are used"));
    }
    const uint64_t next = used + 1;
    absl::Status s = tx_.Write(header, absl::string_view(reinterpret_cast<const char*>(&next), 8));
    if (!s.ok()) return s;
    const uint64_t index = uint64_t{l_.config.buckets} + 1 + used;
    absl::StatusOr<Bucket*> block = Load(index);
    if (!block.ok()) return block.status();
    if ((*block)->FreeSlot() != 0 || (*block)->overflow != 0) {
      return absl::DataLossError(absl::StrCat("hashtable shard ", shard_, ": overflow block ", used,
                                              " is counted free but is not empty"));
    }
    s = Set(index, 0, slot);
    if (!s.ok()) return s;
    const uint64_t tail = places_.size() > 2 ? places_.back() : home_;  // the chain's end
    cache_.at(tail).overflow = index * kBucketBytes;
    return Store(tail);
  }

  const TxTableLayout& l_;
  Tx& tx_;
  const Key key_;
  const uint32_t shard_;
  const uint64_t home_;
  std::vector<uint64_t> places_;
  std::map<uint64_t, Bucket> cache_;  // node-based: pointers stay valid
};

template <typename Client>
absl::StatusOr<TxHashTable> TxHashTable::Create(Client& client, absl::Span<const RegionId> regions,
                                                const TableConfig& config, ShardBy shard_by) {
  TxTableLayout l{config, {}, shard_by};
  if (config.buckets == 0 || regions.empty()) {
    return absl::InvalidArgumentError("hashtable: needs at least one bucket and one region");
  }
  if (config.value_heap_bytes != 0) {
    return absl::InvalidArgumentError(
        "hashtable: a transactional table keeps out-of-line values as objects of its shards' regions: "
        "value_heap_bytes must be 0");
  }
  if (config.max_value_bytes > kMaxTxValueBytes) {
    return absl::InvalidArgumentError(absl::StrCat("hashtable: max_value_bytes ", config.max_value_bytes,
                                                   " exceeds the transactional table's limit of ", kMaxTxValueBytes));
  }
  if (uint64_t{config.buckets} + 2 > kMaxShardObjects) {
    return absl::InvalidArgumentError(absl::StrCat("hashtable: ", config.buckets, " buckets per shard: at most ",
                                                   kMaxShardObjects - 2, " fit one ", kBlockBytes,
                                                   "-byte heap block with the shard header"));
  }
  // Each shard fills its heap block: the rest of it becomes overflow blocks,
  // so the next shard in the region starts a fresh block.
  l.config.overflow_blocks = kMaxShardObjects - config.buckets - 2;
  const uint64_t objects = l.ShardObjects();
  for (size_t s = 0; s < regions.size(); ++s) {
    const std::string where = absl::StrCat("hashtable shard ", s, " in region ", regions[s], ": ");
    GlobalAddress first, near(regions[s], 0);
    for (uint64_t done = 0; done < objects;) {
      auto tx = client.Begin();
      const uint64_t end = std::min<uint64_t>(objects, done + kCreateBatch);
      for (uint64_t i = done; i < end; ++i) {
        absl::StatusOr<GlobalAddress> a = tx.Alloc(kBucketPayload, near);
        if (!a.ok()) {
          tx.Abort();
          return absl::Status(a.status().code(), absl::StrCat(where, a.status().message()));
        }
        if (i == 0) {
          first = *a;
        } else if (*a != first.Plus(static_cast<uint32_t>(i * kBucketBytes))) {
          tx.Abort();
          return absl::ResourceExhaustedError(absl::StrCat(where, "object ", i, " at ", a->ToString(),
                                                           " is not contiguous with the shard at ", first.ToString(),
                                                           " (another user of ", kBucketBytes,
                                                           "-byte objects shares the region?)"));
        }
        near = *a;
      }
      absl::Status st = tx.Commit();
      if (!st.ok()) return absl::Status(st.code(), absl::StrCat(where, st.message()));
      done = end;
    }
    l.shards.push_back(first);
  }
  return TxHashTable(std::move(l));
}

inline std::vector<RegionId> TxHashTable::SpreadShards(const RegionTable& table, int shards) {
  std::vector<RegionInfo> all = table.All();
  std::sort(all.begin(), all.end(), [](const RegionInfo& a, const RegionInfo& b) { return a.id < b.id; });
  std::map<fabric::MachineId, std::vector<RegionId>> by_primary;
  for (const RegionInfo& r : all) by_primary[r.primary().machine].push_back(r.id);
  std::vector<const std::vector<RegionId>*> machines;
  for (const auto& [m, regions] : by_primary) machines.push_back(&regions);
  std::vector<RegionId> out;
  for (int i = 0; i < shards && !machines.empty(); ++i) {
    const std::vector<RegionId>& on = *machines[i % machines.size()];
    out.push_back(on[(i / machines.size()) % on.size()]);
  }
  return out;
}

template <typename Tx>
absl::StatusOr<absl::optional<std::string>> TxHashTable::Get(Tx& tx, const Key& key) const {
  Op<Tx> op(layout_, tx, key);
  absl::StatusOr<absl::optional<std::pair<uint64_t, int>>> where = op.Find();
  if (!where.ok()) return where.status();
  if (!where->has_value()) return absl::optional<std::string>();
  absl::StatusOr<Bucket*> b = op.Load((*where)->first);
  if (!b.ok()) return b.status();
  const Bucket::Slot s = (*b)->slots[(*where)->second];
  if (s.out_of_line()) {
    absl::StatusOr<std::string> v = op.ReadValue(s);
    if (!v.ok()) return v.status();
    return absl::optional<std::string>(std::move(*v));
  }
  return absl::optional<std::string>(std::string(reinterpret_cast<const char*>(s.value.data()), s.inline_length()));
}

template <typename Tx>
absl::Status TxHashTable::Upsert(Tx& tx, const Key& key, absl::string_view value, Mode mode) const {
  if (value.size() > layout_.config.max_value_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("hashtable: value of ", value.size(), " bytes for key ",
                                                   tx_hashtable_internal::KeyName(key), " exceeds the table's ",
                                                   "max_value_bytes of ", layout_.config.max_value_bytes));
  }
  Op<Tx> op(layout_, tx, key);
  absl::StatusOr<absl::optional<std::pair<uint64_t, int>>> where = op.Find();
  if (!where.ok()) return where.status();
  if (where->has_value()) {
    if (mode == Mode::kInsert) {
      return absl::AlreadyExistsError(
          absl::StrCat("hashtable: key ", tx_hashtable_internal::KeyName(key), " is already present"));
    }
    absl::StatusOr<Bucket*> b = op.Load((*where)->first);
    if (!b.ok()) return b.status();
    const Bucket::Slot old = (*b)->slots[(*where)->second];
    absl::StatusOr<Bucket::Slot> slot = op.MakeSlot(value, &old);
    if (!slot.ok()) return slot.status();
    return op.Set((*where)->first, (*where)->second, *slot);
  }
  if (mode == Mode::kUpdate) {
    return absl::NotFoundError(absl::StrCat("hashtable: key ", tx_hashtable_internal::KeyName(key), " not found"));
  }
  absl::StatusOr<Bucket::Slot> slot = op.MakeSlot(value, nullptr);
  if (!slot.ok()) return slot.status();
  return op.Place(*slot);
}

template <typename Tx>
absl::StatusOr<bool> TxHashTable::Erase(Tx& tx, const Key& key) const {
  Op<Tx> op(layout_, tx, key);
  absl::StatusOr<absl::optional<std::pair<uint64_t, int>>> where = op.Find();
  if (!where.ok()) return where.status();
  if (!where->has_value()) return false;
  absl::StatusOr<Bucket*> b = op.Load((*where)->first);
  if (!b.ok()) return b.status();
  if (const Bucket::Slot old = (*b)->slots[(*where)->second]; old.out_of_line()) {
    if (absl::Status s = op.FreeValue(old); !s.ok()) return s;
  }
  absl::Status s = op.Set((*where)->first, (*where)->second, Bucket::Slot{});
  if (!s.ok()) return s;
  return true;
}

template <typename Tx>
absl::StatusOr<uint64_t> TxHashTable::OverflowBlocksUsed(Tx& tx, uint32_t shard) const {
  if (shard >= shards()) return absl::InvalidArgumentError(absl::StrCat("hashtable: no shard ", shard));
  absl::StatusOr<std::string> h = tx.Read(layout_.Object(shard, layout_.HeaderIndex()), 8);
  if (!h.ok()) return h.status();
  uint64_t used;
  std::memcpy(&used, h->data(), 8);
  return used;
}

}  // namespace dctk::farm::kv

#endif  // DCTK_FARM_KV_INTERNAL_TX_HASHTABLE_IMPL_H_
