// LookupTable: the main job's hashtable. It is farm/kv's transactional table
// (TxHashTable): shards in regions spread over the FaRM machines (so a
// machine's loss moves only its shards), entries updated by bank transfers
// inside their own transactions, and looked up lock-free from any client
// with TxHashTableReader (one one-sided read at the shard's primary).
//
// Keys are 0..keys-1 (KeyOf). Each starts with a value derived from the key
// and the seed (InitialValue), written by Fill. A transfer from account `a`
// then Puts into key `a % keys` a TransferRecord ("the last transfer from
// this account": coordinator thread, journal id, from, to, amount, and a
// checksum over them, the key and the seed) in the transfer's transaction,
// so the entry and the balances commit or abort together. A lookup's answer
// is checked without a copy of the table (Classify): the initial value, or
// a well-formed record of a transfer from an account of that key; anything
// else is a wrong value. Whether the record's transfer committed is checked
// at the end: each transfer thread's TransferHistory lists its committed
// transfers by journal id (Bank::Journal), and a record must be one of them.
//
// Example:
//   auto t = LookupTable::Create(client.tx(), client.regions(), {.keys = 256, .seed = 1});
//   absl::Status filled = t->Fill(client.tx());
//   TransferHistory history(/*thread=*/0);
//   bank.Transfer(client.tx(), rng, &ledger, &journal, [&](auto& tx, const Bank::Move& m) {
//     return t->RecordTransfer(tx, history.Attempt(m));
//   });
//   history.CommittedUpTo(journal.committed);
//   auto reader = kv::TxHashTableReader<F>::Create(fabric, queue, &client.regions(), t->layout());
//   absl::StatusOr<absl::optional<std::string>> v = (*reader)->Lookup(t->KeyOf(7));
//   LookupTable::Answer a = t->Classify(7, **v);   // kInitial, kTransfer (a.record) or kWrong
#ifndef DCTK_FARM_WORKLOAD_LOOKUP_TABLE_H_
#define DCTK_FARM_WORKLOAD_LOOKUP_TABLE_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "farm/core/region_table.h"
#include "farm/kv/hashtable_layout.h"
#include "farm/kv/tx_hashtable.h"
#include "farm/workload/bank.h"

namespace dctk::farm::workload {

// What a transfer writes into its account's entry (32 bytes, inline).
struct TransferRecord {
  uint32_t thread = 0;  // the transfer thread (its journal)
  uint64_t id = 0;      // the journal id the transfer commits as
  uint32_t from = 0, to = 0;
  uint32_t amount = 0;  // bank transfers move less than 100

  friend bool operator==(const TransferRecord& a, const TransferRecord& b) {
    return a.thread == b.thread && a.id == b.id && a.from == b.from && a.to == b.to && a.amount == b.amount;
  }
  template <typename H>
  friend H AbslHashValue(H h, const TransferRecord& r) {
    return H::combine(std::move(h), r.thread, r.id, r.from, r.to, r.amount);
  }
};

// One transfer thread's committed transfers by journal id. An attempt that
// does not commit leaves its id to the thread's next attempt, so the record
// of an id is the last one attempted with it once the journal counts it.
class TransferHistory {
 public:
  explicit TransferHistory(uint32_t thread) : thread_(thread) {}

  // The record of attempt `m` (call it in the attempt's transaction).
  TransferRecord Attempt(const Bank::Move& m) {
    const TransferRecord r{thread_, m.id, static_cast<uint32_t>(m.from), static_cast<uint32_t>(m.to),
                           static_cast<uint32_t>(m.amount)};
    attempts_[m.id] = r;
    return r;
  }
  // The journal now counts `committed` transfers (Journal::committed after
  // Transfer or Settle): the last attempts with ids up to it committed.
  void CommittedUpTo(uint64_t committed) {
    while (committed_.size() < committed) {
      auto it = attempts_.find(committed_.size() + 1);
      if (it == attempts_.end()) return;  // an id never attempted through Attempt: Contains will say so
      committed_.push_back(it->second);
      attempts_.erase(it);
    }
  }
  // True iff `r` is one of this thread's committed transfers.
  bool Contains(const TransferRecord& r) const {
    return r.thread == thread_ && r.id >= 1 && r.id <= committed_.size() && committed_[r.id - 1] == r;
  }
  uint64_t committed() const { return committed_.size(); }

 private:
  uint32_t thread_;
  absl::flat_hash_map<uint64_t, TransferRecord> attempts_;  // ids not counted yet
  std::vector<TransferRecord> committed_;                   // [id - 1]
};

struct LookupTableOptions {
  int keys = 256;
  uint64_t seed = 1;
  int shards = 0;  // 0: one per machine that is a primary (more if the keys need it)
};

class LookupTable {
 public:
  // Keys per bucket at most, on average: entries stay in their home bucket
  // (a lookup is one read) and transfers rarely share a bucket.
  static constexpr uint64_t kKeysPerBucket = 2;
  static constexpr uint32_t kMaxShardBuckets = 1700;  // leaves overflow blocks in the shard's heap block

  // Allocates the table's shards, empty, in regions spread over the
  // machines of `regions` (TxHashTable::SpreadShards), with transactions of
  // `client` (a tx::TxClient). Errors: InvalidArgument for bad options,
  // FailedPrecondition without regions, TxHashTable::Create's.
  template <typename Client>
  static absl::StatusOr<LookupTable> Create(Client& client, const RegionTable& regions, const LookupTableOptions& o);

  // Writes every key's initial value (Put: running it again is harmless).
  template <typename Client>
  absl::Status Fill(Client& client) const;

  // Puts `r` into the entry of account r.from, in `tx`.
  template <typename Tx>
  absl::Status RecordTransfer(Tx& tx, const TransferRecord& r) const {
    const uint64_t key = r.from % static_cast<uint64_t>(keys_);
    return table_.Put(tx, KeyOf(key), Encode(key, r));
  }

  enum class Kind { kInitial, kTransfer, kWrong };
  struct Answer {
    Kind kind = Kind::kWrong;
    TransferRecord record;  // kTransfer
  };
  // What the value found for key `i` is.
  Answer Classify(uint64_t i, absl::string_view value) const {
    if (value == InitialValue(i)) return {Kind::kInitial, {}};
    if (value.size() != kv::kMaxTxInlineValue) return {};
    TransferRecord r;
    std::memcpy(&r.from, value.data(), 4);
    std::memcpy(&r.to, value.data() + 4, 4);
    std::memcpy(&r.thread, value.data() + 8, 4);
    std::memcpy(&r.amount, value.data() + 12, 4);
    std::memcpy(&r.id, value.data() + 16, 8);
    if (r.from % static_cast<uint64_t>(keys_) != i || Encode(i, r) != value) return {};  // the checksum covers i
    return {Kind::kTransfer, r};
  }

  kv::Key KeyOf(uint64_t i) const {
    kv::Key k{};
    std::memcpy(k.data(), "acct", 4);
    std::memcpy(k.data() + 8, &i, 8);
    return k;
  }
  std::string InitialValue(uint64_t i) const {
    std::string v(kv::kMaxTxInlineValue, '\0');
    uint64_t x = seed_ * 0x9E3779B97F4A7C15ull + i;
    for (size_t w = 0; w < v.size(); w += 8) {
      x = Mix(x);
      std::memcpy(v.data() + w, &x, 8);
    }
    return v;
  }

  int keys() const { return keys_; }
  const kv::TxHashTable& table() const { return table_; }
  const kv::TxTableLayout& layout() const { return table_.layout(); }
  // "region:offset" of each shard, comma-separated.
  std::string ShardsString() const {
    std::string out;
    for (const GlobalAddress& a : layout().shards) absl::StrAppend(&out, out.empty() ? "" : ",", a.ToString());
    return out;
  }

 private:
  LookupTable(kv::TxHashTable table, int keys, uint64_t seed) : table_(std::move(table)), keys_(keys), seed_(seed) {}

  static uint64_t Mix(uint64_t x) {
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    x *= 0x94D049BB133111EBull;
    return x ^ (x >> 32);
  }
  // [from | to | thread | amount | id | checksum of key, seed and the rest]
  std::string Encode(uint64_t key, const TransferRecord& r) const {
    std::string v(kv::kMaxTxInlineValue, '\0');
    std::memcpy(v.data(), &r.from, 4);
    std::memcpy(v.data() + 4, &r.to, 4);
    std::memcpy(v.data() + 8, &r.thread, 4);
    std::memcpy(v.data() + 12, &r.amount, 4);
    std::memcpy(v.data() + 16, &r.id, 8);
    uint64_t check = Mix(seed_ ^ Mix(key + 0x5851F42D4C957F2Dull));
    for (size_t w = 0; w < 24; w += 8) {
      uint64_t word;
      std::memcpy(&word, v.data() + w, 8);
      check = Mix(check ^ word);
    }
    std::memcpy(v.data() + 24, &check, 8);
    return v;
  }

  kv::TxHashTable table_;
  int keys_;
  uint64_t seed_;
};

template <typename Client>
absl::StatusOr<LookupTable> LookupTable::Create(Client& client, const RegionTable& regions,
                                                const LookupTableOptions& o) {
  if (o.keys < 1 || o.shards < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("lookup table: needs at least one key and no negative shard count (keys=", o.keys,
                     " shards=", o.shards, ")"));
  }
  std::set<fabric::MachineId> primaries;
  for (const RegionInfo& r : regions.All()) primaries.insert(r.primary().machine);
  if (primaries.empty()) return absl::FailedPreconditionError("lookup table: the cluster has no regions");
  const uint64_t keys = static_cast<uint64_t>(o.keys);
  uint64_t shards = static_cast<uint64_t>(o.shards);
  if (shards == 0) {
    const uint64_t per_round = primaries.size() * kMaxShardBuckets * kKeysPerBucket;
    shards = primaries.size() * ((keys + per_round - 1) / per_round);
  }
  const uint64_t buckets =
      std::clamp<uint64_t>((keys + shards * kKeysPerBucket - 1) / (shards * kKeysPerBucket), 16, kMaxShardBuckets);
  absl::StatusOr<kv::TxHashTable> table = kv::TxHashTable::Create(
      client, kv::TxHashTable::SpreadShards(regions, static_cast<int>(shards)),
      {.buckets = static_cast<uint32_t>(buckets)});
  if (!table.ok()) return table.status();
  return LookupTable(std::move(*table), o.keys, o.seed);
}

template <typename Client>
absl::Status LookupTable::Fill(Client& client) const {
  constexpr int kPerTransaction = 32;
  for (int first = 0; first < keys_; first += kPerTransaction) {
    auto tx = client.Begin();
    for (int i = first; i < std::min(keys_, first + kPerTransaction); ++i) {
      absl::Status s = table_.Put(tx, KeyOf(i), InitialValue(i));
      if (!s.ok()) return absl::Status(s.code(), absl::StrCat("lookup table: key ", i, ": ", s.message()));
    }
    absl::Status s = tx.Commit();
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace dctk::farm::workload

#endif  // DCTK_FARM_WORKLOAD_LOOKUP_TABLE_H_
