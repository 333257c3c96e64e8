// LookupTable: the workload's hashtable (farm/kv) stored in FaRM objects, so
// clients look keys up lock-free with farm/kv's one-sided reader while the
// bank's transactions run beside it.
//
// farm/kv's reader needs the table contiguous in one region: `buckets + 1`
// bucket objects then the overflow objects, each kBucketBytes (object.h
// layout). A transaction allocates exactly that: every object has the
// bucket payload, whose slot is one size class of exactly kBucketBytes, and
// each Alloc asks for the block of the previous object (`near`), so the
// heap hands out adjacent slots; Create checks the addresses are contiguous.
// The contents come from farm/kv's HashTableWriter, run on a local zeroed
// copy of the table; the transaction then writes each object's payload, so
// the region holds a table a HashTableReader reads exactly as one its owner
// wrote. The table is written once at startup and only read afterwards
// (no owner-side writer is needed at the machine holding it).
//
// Keys are 0..keys-1 (KeyOf), each with a value derived from the key and the
// seed (ValueOf), so a lookup's answer can be checked without a copy of the
// table.
//
// Example:
//   absl::StatusOr<LookupTable> t = LookupTable::Create(client.tx(), 64, /*seed=*/1);
//   fabric::RemoteAddress at = {primary.machine, primary.key, t->first().offset()};
//   auto reader = kv::HashTableReader<F>::Create(fabric, queue, at, t->config());
//   absl::StatusOr<absl::optional<kv::Value>> v = (*reader)->Lookup(t->KeyOf(7));
//   bool right = v.ok() && v->has_value() && **v == t->ValueOf(7);
#ifndef DCTK_FARM_WORKLOAD_LOOKUP_TABLE_H_
#define DCTK_FARM_WORKLOAD_LOOKUP_TABLE_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "farm/core/address.h"
#include "farm/core/object.h"
#include "farm/kv/hashtable_layout.h"
#include "farm/kv/hashtable_writer.h"

namespace dctk::farm::workload {

class LookupTable {
 public:
  // Builds and stores a table of `keys` keys in one transaction of `client`
  // (a tx::TxClient). Errors: the transaction's, or ResourceExhausted if the
  // heap did not hand out contiguous slots.
  template <typename Client>
  static absl::StatusOr<LookupTable> Create(Client& client, int keys, uint64_t seed) {
    if (keys < 1) return absl::InvalidArgumentError("lookup table: at least one key");
    LookupTable t(keys, seed);
    // Local copy: 64-byte aligned, zeroed, formatted and filled by farm/kv's writer.
    struct alignas(64) Line {
      uint8_t bytes[64];
    };
    std::vector<Line> local(kv::IndexBytes(t.config_) / sizeof(Line), Line{});
    auto* base = reinterpret_cast<uint8_t*>(local.data());
    absl::StatusOr<kv::HashTableWriter> w = kv::HashTableWriter::Create(base, t.config_);
    if (!w.ok()) return w.status();
    for (int i = 0; i < keys; ++i) {
      absl::Status s = w->Put(t.KeyOf(i), t.ValueOf(i));
      if (!s.ok()) return absl::Status(s.code(), absl::StrCat("lookup table: key ", i, ": ", s.message()));
    }
    const size_t objects = t.objects();
    auto tx = client.Begin();
    GlobalAddress near;
    std::string payload(kv::kBucketPayload, '\0');
    for (size_t i = 0; i < objects; ++i) {
      absl::StatusOr<GlobalAddress> a = tx.Alloc(kv::kBucketPayload, near);
      if (!a.ok()) return a.status();
      if (i == 0) {
        t.first_ = *a;
      } else if (*a != t.first_.Plus(static_cast<uint32_t>(i * kv::kBucketBytes))) {
        return absl::ResourceExhaustedError(absl::StrCat("lookup table: object ", i, " at ", a->ToString(),
                                                         " is not contiguous with the table at ",
                                                         t.first_.ToString()));
      }
      near = *a;
      ExtractPayload(base + i * kv::kBucketBytes, payload.data(), payload.size());
      absl::Status s = tx.Write(*a, payload);
      if (!s.ok()) return s;
    }
    absl::Status s = tx.Commit();
    if (!s.ok()) return s;
    return t;
  }

  // The first bucket object: the table's start in its region.
  GlobalAddress first() const { return first_; }
  const kv::TableConfig& config() const { return config_; }
  int keys() const { return keys_; }
  size_t objects() const { return size_t{config_.buckets} + 1 + config_.overflow_blocks; }

  kv::Key KeyOf(uint64_t i) const {
    kv::Key k{};
    std::memcpy(k.data(), "acct", 4);
    std::memcpy(k.data() + 8, &i, 8);
    return k;
  }
  kv::Value ValueOf(uint64_t i) const {
    kv::Value v{};
    uint64_t x = seed_ * 0x9E3779B97F4A7C15ull + i;
    for (size_t w = 0; w < v.size(); w += 8) {
      x ^= x >> 31;
      x *= 0xBF58476D1CE4E5B9ull;
      x ^= x >> 29;
      std::memcpy(v.data() + w, &x, 8);
    }
    return v;
  }

 private:
  // Load below 1/2: no key needs displacement far from home; overflow for the rest.
  LookupTable(int keys, uint64_t seed)
      : config_{.buckets = static_cast<uint32_t>(keys / 4 + 8), .overflow_blocks = 8}, keys_(keys), seed_(seed) {}

  kv::TableConfig config_;
  int keys_;
  uint64_t seed_;
  GlobalAddress first_;
};

}  // namespace dctk::farm::workload

#endif  // DCTK_FARM_WORKLOAD_LOOKUP_TABLE_H_
