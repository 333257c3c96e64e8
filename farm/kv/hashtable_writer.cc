#include "farm/kv/hashtable_writer.h"

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace dctk::farm::kv {
namespace {
// How far right a hopscotch displacement looks for a free slot.
constexpr uint32_t kMaxDisplacement = 32;
}  // namespace

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
  ExtractPayload(Object(index), payload, kBucketPayload);  // we are the only writer
  Bucket b;
  b.Decode(payload);
  return b;
}

void HashTableWriter::Store(uint64_t index, const Bucket& b) {
  uint8_t* obj = Object(index);
  uint64_t header;
  std::memcpy(&header, obj, 8);
  CHECK(ObjectWriter::TryLock(obj, VersionOf(header))) << "hashtable has a second writer";
  uint8_t payload[kBucketPayload];
  b.Encode(payload);
  ObjectWriter::Write(obj, ObjectLines(kBucketPayload), payload, kBucketPayload);
  ObjectWriter::Unlock(obj, /*bump_version=*/true);
}

int64_t HashTableWriter::Displace(uint32_t home) {
  // Find a free slot to the right of the neighborhood.
  const uint32_t last = config_.buckets;  // index of the extra bucket
  uint32_t free_bucket = home + 2;
  while (free_bucket <= last && free_bucket <= home + 1 + kMaxDisplacement &&
         Load(free_bucket).FreeSlot() < 0) {
    ++free_bucket;
  }
  if (free_bucket > last || free_bucket > home + 1 + kMaxDisplacement) return -1;
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
    ++displacements_;
  }
  return home + 1;
}

absl::Status HashTableWriter::Put(const Key& key, const Value& value) {
  const uint32_t home = HomeBucket(key, config_.buckets);
  // Overwrite in place if present anywhere in the neighborhood or chain.
  for (uint64_t b : {uint64_t{home}, uint64_t{home} + 1}) {
    Bucket bucket = Load(b);
    if (int i = bucket.Find(key); i >= 0) {
      bucket.slots[i].value = value;
      Store(b, bucket);
      return absl::OkStatus();
    }
  }
  Bucket head = Load(home);
  for (uint64_t link = head.overflow; link != 0;) {
    Bucket block = Load(link / kBucketBytes);
    if (int i = block.Find(key); i >= 0) {
      block.slots[i].value = value;
      Store(link / kBucketBytes, block);
      return absl::OkStatus();
    }
    link = block.overflow;
  }
  // Insert: neighborhood, then hopscotch displacement, then the overflow chain.
  for (int64_t b : {int64_t{home}, int64_t{home} + 1, int64_t{-2}}) {
    if (b == -2) b = Displace(home);
    if (b < 0) break;
    Bucket bucket = Load(b);
    if (int i = bucket.FreeSlot(); i >= 0) {
      bucket.slots[i] = {kOccupied, key, value};
      Store(b, bucket);
      ++size_;
      return absl::OkStatus();
    }
  }
  uint64_t parent = home;
  for (uint64_t link = Load(home).overflow; link != 0; link = Load(link / kBucketBytes).overflow) {
    Bucket block = Load(link / kBucketBytes);
    if (int i = block.FreeSlot(); i >= 0) {
      block.slots[i] = {kOccupied, key, value};
      Store(link / kBucketBytes, block);
      ++size_;
      return absl::OkStatus();
    }
    parent = link / kBucketBytes;
  }
  if (next_overflow_ == config_.overflow_blocks) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "hashtable: bucket ", home, " and its neighbour are full and all ", config_.overflow_blocks,
        " overflow blocks are used"));
  }
  const uint64_t index = uint64_t{config_.buckets} + 1 + next_overflow_++;
  Bucket block = Load(index);
  block.slots[0] = {kOccupied, key, value};
  Store(index, block);  // fill the block before linking it in
  Bucket p = Load(parent);
  p.overflow = index * kBucketBytes;
  Store(parent, p);
  ++size_;
  return absl::OkStatus();
}

absl::StatusOr<bool> HashTableWriter::Erase(const Key& key) {
  const uint32_t home = HomeBucket(key, config_.buckets);
  std::vector<uint64_t> places = {home, uint64_t{home} + 1};
  for (uint64_t link = Load(home).overflow; link != 0; link = Load(link / kBucketBytes).overflow) {
    places.push_back(link / kBucketBytes);
  }
  for (uint64_t b : places) {
    Bucket bucket = Load(b);
    if (int i = bucket.Find(key); i >= 0) {
      bucket.slots[i] = Bucket::Slot{};
      Store(b, bucket);
      --size_;
      return true;
    }
  }
  return false;
}

}  // namespace dctk::farm::kv
