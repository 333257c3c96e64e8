// TatpKv: TATP over FaRM's transactional hashtable (farm/kv/tx_hashtable.h),
// as the FaRM papers run it: every table is hashtable entries keyed by the
// row's primary key, with the row inline as the value:
//   Subscriber        (1, s_id)                      -> bits, hex, byte2, msc, vlr
//   sub_nbr index     (2, sub_nbr: 15 digits)        -> s_id
//   Access_Info       (3, s_id, ai_type)             -> data1..data4
//   Special_Facility  (4, s_id, sf_type)             -> is_active, error_cntrl, data_a, data_b
//   Call_Forwarding   (5, s_id, sf_type, start_time) -> end_time, numberx
// Keys carry s_id in bytes 8..15 and the table is sharded by those bytes
// (ShardBy::kKeySuffix), so a subscriber's rows share a shard (a primary);
// shards are spread over the machines. sub_nbr is s_id zero-padded to 15
// digits (the specification's population), so the Subscriber row need not
// store it.
//
// The mix (the specification's, 80% read-only), subscribers by NURand
// (tatp.h: TatpNuRand):
//   GET_SUBSCRIBER_DATA 35%, GET_ACCESS_DATA 35%  one lock-free hashtable
//       lookup (TxHashTableReader: one one-sided read), no transaction
//   GET_NEW_DESTINATION 10%  read-only transaction: Special_Facility, then
//       the Call_Forwarding rows with start_time <= t and end_time > e
//   UPDATE_SUBSCRIBER_DATA 2%  bit_1 of Subscriber and data_a of a
//       Special_Facility row, by s_id
//   UPDATE_LOCATION 14%  vlr_location, by sub_nbr (index lookup first)
//   INSERT_CALL_FORWARDING 2%, DELETE_CALL_FORWARDING 2%  by sub_nbr
// A transaction the specification counts as unsuccessful (a row it needs is
// absent, the INSERT's key exists or its Special_Facility does not) changes
// nothing and is rolled back; TatpResult::found says which happened.
//
// Example:
//   absl::StatusOr<TatpKv> t = TatpKv::Load(loaders, cluster.table(), {.subscribers = 1000});
//   auto reader = kv::TxHashTableReader<F>::Create(fabric, queue, &cluster.table(), t->table().layout());
//   TatpResult r;
//   absl::Status s = t->RunOne(client, **reader, rng, &r);   // Aborted: retry
//   absl::StatusOr<TatpKvCensus> c = t->Check(client);        // the tables' consistency
#ifndef DCTK_FARM_WORKLOAD_TATP_KV_H_
#define DCTK_FARM_WORKLOAD_TATP_KV_H_

#include <atomic>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "farm/core/region_table.h"
#include "farm/kv/hashtable_layout.h"
#include "farm/kv/tx_hashtable.h"
#include "farm/workload/tatp.h"

namespace dctk::farm::workload {

struct TatpSubscriberValue {
  uint16_t bits;  // bit_1 .. bit_10
  uint8_t hex[5];  // hex_1 .. hex_10, two per byte
  uint8_t byte2[10];
  uint8_t pad;
  uint32_t msc_location;
  uint32_t vlr_location;
};
struct TatpCallForwardingValue {
  uint8_t end_time;
  char numberx[15];
};
static_assert(sizeof(TatpSubscriberValue) <= kv::kMaxTxInlineValue && sizeof(TatpCallForwardingValue) <= kv::kMaxTxInlineValue);

struct TatpKvOptions {
  int subscribers = 1000;
  uint64_t seed = 1;
  int shards = 0;         // 0: a multiple of the machines, for about 50% occupancy
  uint64_t nurand_a = 0;  // 0: TatpNuRandA(subscribers)
};

// What one transaction of the mix did.
struct TatpResult {
  TatpTx kind = TatpTx::kGetSubscriberData;
  bool found = false;  // the specification's success: its rows existed (and it wrote)
  int cf_delta = 0;    // Call_Forwarding rows inserted (+1) or deleted (-1), if committed
};

// Rows in the tables.
struct TatpKvCensus {
  uint64_t subscribers = 0, access_info = 0, special_facility = 0, call_forwarding = 0;
};

class TatpKv {
 public:
  // Creates the table and loads `subscribers` subscribers (s_id 1..P), one
  // transaction each, subscriber s through loaders[s % loaders.size()], one
  // thread per loader. Contents depend only on the seed.
  template <typename Client>
  static absl::StatusOr<TatpKv> Load(const std::vector<Client*>& loaders, const RegionTable& regions,
                                     const TatpKvOptions& o);

  // One transaction of the mix: `client` a tx::TxClient, `reader` a
  // kv::TxHashTableReader on the same machine. Errors are the transaction's
  // (Aborted: retry) or DataLoss if a row every subscriber has is missing.
  template <typename Client, typename Reader>
  absl::Status RunOne(Client& client, Reader& reader, std::mt19937_64& rng, TatpResult* result) const;

  // Reads every subscriber's rows in read-only transactions and checks the
  // invariants the mix must keep: the sub_nbr index maps each sub_nbr to
  // its subscriber; 1-4 Access_Info and 1-4 Special_Facility rows each;
  // Call_Forwarding rows only under an existing Special_Facility, with
  // end_time in 1..24. FailedPrecondition naming the first violation. The
  // caller checks call_forwarding == loaded().call_forwarding + inserted - deleted.
  template <typename Client>
  absl::StatusOr<TatpKvCensus> Check(Client& client) const;

  const kv::TxHashTable& table() const { return table_; }
  int subscribers() const { return subscribers_; }
  uint64_t nurand_a() const { return nurand_a_; }
  const TatpKvCensus& loaded() const { return loaded_; }

  static kv::Key SubscriberKey(uint64_t s_id) { return RowKey(1, s_id, 0, 0); }
  static kv::Key SubNbrKey(uint64_t s_id);
  static kv::Key AccessInfoKey(uint64_t s_id, int ai_type) { return RowKey(3, s_id, ai_type, 0); }
  static kv::Key SpecialFacilityKey(uint64_t s_id, int sf_type) { return RowKey(4, s_id, sf_type, 0); }
  static kv::Key CallForwardingKey(uint64_t s_id, int sf_type, int start_time) {
    return RowKey(5, s_id, sf_type, start_time);
  }

 private:
  TatpKv(kv::TxHashTable table, int subscribers, uint64_t nurand_a)
      : table_(std::move(table)), subscribers_(subscribers), nurand_a_(nurand_a) {}

  static kv::Key RowKey(uint8_t table, uint64_t s_id, int type, int start_time);
  template <typename Client>
  absl::Status LoadOne(Client& client, uint64_t s_id, uint64_t seed, TatpKvCensus* census) const;
  template <typename Tx>
  absl::StatusOr<uint64_t> SubscriberOf(Tx& tx, uint64_t s_id) const;

  kv::TxHashTable table_;
  int subscribers_;
  uint64_t nurand_a_;
  TatpKvCensus loaded_;
};

}  // namespace dctk::farm::workload

#include "farm/workload/internal/tatp_kv_impl.h"

#endif  // DCTK_FARM_WORKLOAD_TATP_KV_H_
