#include "farm/kv/hashtable_writer.h"

#include <sched.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace dctk::farm::kv {
namespace {
// How far right a hopscotch displacement looks for a free slot.
constexpr uint32_t kMaxDisplacement = 32;

uint64_t LoadHeader(const uint8_t* obj) {
  return __atomic_load_n(reinterpret_cast<const uint64_t*>(obj), __ATOMIC_ACQUIRE);
}
}  // namespace

HashTableWriter::State::State(const TableConfig& c)
    : locks(new std::atomic<uint8_t>[size_t{c.buckets} + 1]), heap(IndexBytes(c), TableBytes(c)) {
  for (size_t i = 0; i <= c.buckets; ++i) locks[i].store(0, std::memory_order_relaxed);
}

// Buckets [first, end) locked by this thread, released on destruction. Runs
// only grow to the right, so every writer takes bucket locks in ascending order.
class HashTableWriter::Held {
 public:
  Held(State* state, uint32_t first) : state_(state), first_(first), end_(first) {}
  ~Held() {
    for (uint32_t i = first_; i < end_; ++i) state_->locks[i].store(0, std::memory_order_release);
  }
  Held(const Held&) = delete;
  Held& operator=(const Held&) = delete;

  void ExtendTo(uint32_t last) {
    for (; end_ <= last; ++end_) {
      for (int spins = 0; state_->locks[end_].exchange(1, std::memory_order_acquire) != 0; ++spins) {
        if (spins >= 64) sched_yield();  // the holder may be descheduled (2 cores)
      }
    }
  }

 private:
  State* state_;
  const uint32_t first_;
  uint32_t end_;
};

absl::StatusOr<HashTableWriter> HashTableWriter::Create(uint8_t* table, const TableConfig& config) {
  if (config.buckets == 0 || reinterpret_cast<uintptr_t>(table) % kLineSize != 0) {
    return absl::InvalidArgumentError("hashtable: needs >= 1 bucket and 64-byte aligned memory");
  }
  HashTableWriter w(table, config);
  const uint64_t objects = uint64_t{config.buckets} + 1 + config.overflow_blocks;
  for (uint64_t i = 0; i < objects; ++i) InitObject(w.Object(i), ObjectLines(kBucketPayload));
  return w;
}

Bucket HashTableWriter::Load(uint64_t index) {
  uint8_t payload[kBucketPayload];
  ExtractPayload(Object(index), payload, kBucketPayload);  // we hold the bucket's lock
  Bucket b;
  b.Decode(payload);
  return b;
}

void HashTableWriter::Store(uint64_t index, const Bucket& b) {
  uint8_t* obj = Object(index);
  CHECK(ObjectWriter::TryLock(obj, VersionOf(LoadHeader(obj))))
      << "hashtable bucket " << index << " is locked by a writer outside HashTableWriter";
  uint8_t payload[kBucketPayload];
  b.Encode(payload);
  ObjectWriter::Write(obj, ObjectLines(kBucketPayload), payload, kBucketPayload);
  ObjectWriter::Unlock(obj, /*bump_version=*/true);
}

int64_t HashTableWriter::Displace(uint32_t home, Held& held) {
  // Find a free slot to the right of the neighborhood, locking as we go.
  const uint32_t last = std::min(config_.buckets, home + 1 + kMaxDisplacement);
  uint32_t free_bucket = home + 2;
  for (;; ++free_bucket) {
    if (free_bucket > last) return -1;
    held.ExtendTo(free_bucket);
    if (Load(free_bucket).FreeSlot() >= 0) break;
  }
  // Walk it left: move an entry of bucket j-1 whose neighborhood includes j.
  for (uint32_t j = free_bucket; j > home + 1; --j) {
    Bucket from = Load(j - 1);
    Bucket to = Load(j);
    int moved = -1;
    for (size_t i = 0; i < kSlots && moved < 0; ++i) {
      if (from.slots[i].occupied() && HomeBucket(from.slots[i].key, config_.buckets) == j - 1) {
        moved = static_cast<int>(i);
      }
    }
    if (moved < 0) return -1;  // nothing in j-1 may move right
    const int dst = to.FreeSlot();
    to.slots[dst] = from.slots[moved];
    Store(j, to);  // new copy first ...
    from.slots[moved] = Bucket::Slot{};
    Store(j - 1, from);  // ... then clear the old one
    state_->displacements.fetch_add(1, std::memory_order_relaxed);
  }
  return home + 1;
}

absl::Status HashTableWriter::Upsert(const Bucket::Slot& slot, Bucket::Slot* replaced) {
  *replaced = Bucket::Slot{};
  const Key& key = slot.key;
  const uint32_t home = HomeBucket(key, config_.buckets);
  Held held(state_.get(), home);
  held.ExtendTo(home + 1);
  // Overwrite in place if present anywhere in the neighborhood or chain.
  std::vector<uint64_t> places = {home, uint64_t{home} + 1};
  for (uint64_t link = Load(home).overflow; link != 0; link = Load(link / kBucketBytes).overflow) {
    places.push_back(link / kBucketBytes);
  }
  for (uint64_t b : places) {
    Bucket bucket = Load(b);
    if (int i = bucket.Find(key); i >= 0) {
      *replaced = bucket.slots[i];
      bucket.slots[i] = slot;
      Store(b, bucket);
      return absl::OkStatus();
    }
  }
  // Insert: neighborhood, then hopscotch displacement, then the overflow chain.
  for (int64_t b : {int64_t{home}, int64_t{home} + 1, int64_t{-2}}) {
    if (b == -2) b = Displace(home, held);
    if (b < 0) break;
    Bucket bucket = Load(b);
    if (int i = bucket.FreeSlot(); i >= 0) {
      bucket.slots[i] = slot;
      Store(b, bucket);
      state_->size.fetch_add(1, std::memory_order_relaxed);
      return absl::OkStatus();
    }
  }
  for (size_t p = 2; p < places.size(); ++p) {
    Bucket block = Load(places[p]);
    if (int i = block.FreeSlot(); i >= 0) {
      block.slots[i] = slot;
      Store(places[p], block);
      state_->size.fetch_add(1, std::memory_order_relaxed);
      return absl::OkStatus();
    }
  }
  uint32_t n = state_->next_overflow.load(std::memory_order_relaxed);
  do {
    if (n == config_.overflow_blocks) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "hashtable: bucket ", home, " and its neighbour are full and all ", config_.overflow_blocks,
          " overflow blocks are used"));
    }
  } while (!state_->next_overflow.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
  const uint64_t index = uint64_t{config_.buckets} + 1 + n;
  Bucket block = Load(index);  // ours alone until linked
  block.slots[0] = slot;
  Store(index, block);  // fill the block before linking it in
  const uint64_t parent = places.size() > 2 ? places.back() : home;
  Bucket p = Load(parent);
  p.overflow = index * kBucketBytes;
  Store(parent, p);
  state_->size.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status HashTableWriter::Put(const Key& key, const Value& value) {
  return PutBytes(key, absl::MakeConstSpan(value.data(), value.size()));
}

absl::Status HashTableWriter::PutBytes(const Key& key, absl::Span<const uint8_t> value) {
  if (value.size() > config_.max_value_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("hashtable: value of ", value.size(),
                                                   " bytes exceeds max_value_bytes ",
                                                   config_.max_value_bytes));
  }
  Bucket::Slot slot;
  absl::optional<ValueHeap::Block> block;
  if (value.size() <= kMaxInlineValue) {
    slot = Bucket::Slot::Inline(key, value.data(), value.size());
  } else {
    absl::StatusOr<ValueHeap::Block> b = WriteHeapValue(key, value);
    if (!b.ok()) return b.status();
    block = *b;
    slot = Bucket::Slot::OutOfLine(key, b->offset, value.size());
  }
  Bucket::Slot replaced;
  absl::Status s = Upsert(slot, &replaced);
  if (!s.ok()) {
    if (block) FreeHeapValue(slot);
    return s;
  }
  if (replaced.occupied() && replaced.out_of_line()) FreeHeapValue(replaced);
  return absl::OkStatus();
}

absl::StatusOr<bool> HashTableWriter::Erase(const Key& key) {
  const uint32_t home = HomeBucket(key, config_.buckets);
  Bucket::Slot erased;
  {
    Held held(state_.get(), home);
    held.ExtendTo(home + 1);
    std::vector<uint64_t> places = {home, uint64_t{home} + 1};
    for (uint64_t link = Load(home).overflow; link != 0; link = Load(link / kBucketBytes).overflow) {
      places.push_back(link / kBucketBytes);
    }
    for (uint64_t b : places) {
      Bucket bucket = Load(b);
      if (int i = bucket.Find(key); i >= 0) {
        erased = bucket.slots[i];
        bucket.slots[i] = Bucket::Slot{};
        Store(b, bucket);
        state_->size.fetch_sub(1, std::memory_order_relaxed);
        break;
      }
    }
  }
  if (!erased.occupied()) return false;
  if (erased.out_of_line()) FreeHeapValue(erased);
  return true;
}

absl::StatusOr<ValueHeap::Block> HashTableWriter::WriteHeapValue(const Key& key,
                                                                 absl::Span<const uint8_t> value) {
  absl::StatusOr<ValueHeap::Block> b = state_->heap.Allocate(HeapObjectBytes(value.size()));
  if (!b.ok()) return b.status();
  uint8_t* obj = table_ + b->offset;
  const size_t lines = b->bytes / kLineSize;
  if (b->fresh) InitObject(obj, lines);
  std::vector<uint8_t> payload(kHeapValueHeader + value.size());
  const uint64_t len = value.size();
  std::memcpy(payload.data(), key.data(), 16);
  std::memcpy(payload.data() + 16, &len, 8);
  std::memcpy(payload.data() + kHeapValueHeader, value.data(), value.size());
  CHECK(ObjectWriter::TryLock(obj, VersionOf(LoadHeader(obj)))) << "heap object in use";
  ObjectWriter::Write(obj, lines, payload.data(), payload.size());
  ObjectWriter::Unlock(obj, /*bump_version=*/true);
  return b;
}

void HashTableWriter::FreeHeapValue(const Bucket::Slot& slot) {
  const ValueHeap::Block block{slot.heap_offset(), HeapObjectBytes(slot.heap_length()), false};
  uint8_t* obj = table_ + block.offset;
  const uint8_t zeros[kHeapValueHeader] = {};
  CHECK(ObjectWriter::TryLock(obj, VersionOf(LoadHeader(obj)))) << "heap object in use";
  ObjectWriter::Write(obj, block.bytes / kLineSize, zeros, sizeof(zeros));
  ObjectWriter::Unlock(obj, /*bump_version=*/true);
  state_->heap.Free(block);
}

}  // namespace dctk::farm::kv
