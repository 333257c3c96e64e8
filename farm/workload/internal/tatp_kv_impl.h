// Implementation of tatp_kv.h (templates on the client). Not for direct inclusion.
#ifndef DCTK_FARM_WORKLOAD_INTERNAL_TATP_KV_IMPL_H_
#define DCTK_FARM_WORKLOAD_INTERNAL_TATP_KV_IMPL_H_

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dctk::farm::workload {
namespace tatp_kv_internal {

// Keys per subscriber in the population: Subscriber, index, 2.5 Access_Info,
// 2.5 Special_Facility, 3.75 Call_Forwarding on average (12 rounds it up).
inline constexpr uint64_t kKeysPerSubscriber = 12;
// Buckets per shard at most (a shard fills one heap block; the rest of the
// block are overflow blocks), and keys per bucket aimed at (50% of 8 slots).
inline constexpr uint32_t kMaxShardBuckets = 1700;
inline constexpr uint64_t kKeysPerBucket = 4;

inline char Upper(std::mt19937_64& rng) { return static_cast<char>('A' + rng() % 26); }
inline char Digit(std::mt19937_64& rng) { return static_cast<char>('0' + rng() % 10); }

template <typename T>
absl::StatusOr<T> Row(const absl::optional<std::string>& v, const char* table, uint64_t s_id) {
  if (!v.has_value() || v->size() != sizeof(T)) {
    return absl::DataLossError(absl::StrCat("tatp: subscriber ", s_id, " has no ", table, " row",
                                            v.has_value() ? absl::StrCat(" of ", sizeof(T), " bytes") : ""));
  }
  return tatp_internal::From<T>(*v);
}

}  // namespace tatp_kv_internal

inline kv::Key TatpKv::RowKey(uint8_t table, uint64_t s_id, int type, int start_time) {
  kv::Key k{};
  k[0] = table;
  k[1] = static_cast<uint8_t>(type);
  k[2] = static_cast<uint8_t>(start_time);
  std::memcpy(k.data() + 8, &s_id, 8);
  return k;
}

inline kv::Key TatpKv::SubNbrKey(uint64_t s_id) {
  kv::Key k{};
  k[0] = 2;
  const std::string nbr = absl::StrFormat("%015u", s_id);
  std::memcpy(k.data() + 1, nbr.data(), 15);
  return k;
}

template <typename Client>
absl::Status TatpKv::LoadOne(Client& client, uint64_t s_id, uint64_t seed, TatpKvCensus* census) const {
  using tatp_internal::Bytes;
  using namespace tatp_kv_internal;
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + s_id);
  TatpKvCensus mine;
  mine.subscribers = 1;
  auto tx = client.Begin();
  TatpSubscriberValue sub{};
  sub.bits = static_cast<uint16_t>(rng() & 0x3ff);
  for (uint8_t& h : sub.hex) h = static_cast<uint8_t>(rng());
  for (uint8_t& b : sub.byte2) b = static_cast<uint8_t>(rng());
  sub.msc_location = static_cast<uint32_t>(1 + rng() % 0xfffffffe);
  sub.vlr_location = static_cast<uint32_t>(1 + rng() % 0xfffffffe);
  absl::Status s = table_.Insert(tx, SubscriberKey(s_id), Bytes(sub));
  if (s.ok()) s = table_.Insert(tx, SubNbrKey(s_id), Bytes(s_id));
  const std::array<bool, 4> ai = tatp_internal::SomeOfFour(rng), sf = tatp_internal::SomeOfFour(rng);
  for (int t = 0; t < 4 && s.ok(); ++t) {
    if (ai[t]) {
      TatpAccessInfoRow row{static_cast<uint8_t>(rng()), static_cast<uint8_t>(rng()), {}, {}};
      for (char& c : row.data3) c = Upper(rng);
      for (char& c : row.data4) c = Upper(rng);
      s = table_.Insert(tx, AccessInfoKey(s_id, t + 1), Bytes(row));
      ++mine.access_info;
    }
    if (!sf[t] || !s.ok()) continue;
    TatpSpecialFacilityRow row{static_cast<uint8_t>(rng() % 100 < 85), static_cast<uint8_t>(rng()),
                               static_cast<uint8_t>(rng()), {}};
    for (char& c : row.data_b) c = Upper(rng);
    s = table_.Insert(tx, SpecialFacilityKey(s_id, t + 1), Bytes(row));
    ++mine.special_facility;
    // 0-3 Call_Forwarding rows, distinct start times, end_time = start + 1..8.
    std::array<int, 3> starts = {0, 8, 16};
    std::shuffle(starts.begin(), starts.end(), rng);
    const int rows = static_cast<int>(rng() % 4);
    for (int r = 0; r < rows && s.ok(); ++r) {
      TatpCallForwardingValue cf{static_cast<uint8_t>(starts[r] + 1 + rng() % 8), {}};
      for (char& c : cf.numberx) c = Digit(rng);
      s = table_.Insert(tx, CallForwardingKey(s_id, t + 1, starts[r]), Bytes(cf));
      ++mine.call_forwarding;
    }
  }
  if (!s.ok()) {
    tx.Abort();
    return s;
  }
  s = tx.Commit();
  if (!s.ok()) return s;
  census->subscribers += mine.subscribers;
  census->access_info += mine.access_info;
  census->special_facility += mine.special_facility;
  census->call_forwarding += mine.call_forwarding;
  return absl::OkStatus();
}

template <typename Client>
absl::StatusOr<TatpKv> TatpKv::Load(const std::vector<Client*>& loaders, const RegionTable& regions,
                                    const TatpKvOptions& o) {
  using namespace tatp_kv_internal;
  if (o.subscribers < 1 || loaders.empty()) {
    return absl::InvalidArgumentError("tatp: needs at least one subscriber and one loader");
  }
  std::set<fabric::MachineId> primaries;
  for (const RegionInfo& r : regions.All()) primaries.insert(r.primary().machine);
  if (primaries.empty()) return absl::FailedPreconditionError("tatp: the cluster has no regions");
  const uint64_t machines = primaries.size();
  const uint64_t keys = uint64_t(o.subscribers) * kKeysPerSubscriber;
  uint64_t shards = o.shards;
  if (shards == 0) {
    const uint64_t per_round = machines * kMaxShardBuckets * kKeysPerBucket;
    shards = machines * ((keys + per_round - 1) / per_round);
  }
  const uint64_t buckets =
      std::clamp<uint64_t>((keys + shards * kKeysPerBucket - 1) / (shards * kKeysPerBucket), 16, kMaxShardBuckets);
  absl::StatusOr<kv::TxHashTable> table =
      kv::TxHashTable::Create(*loaders[0], kv::TxHashTable::SpreadShards(regions, static_cast<int>(shards)),
                              {.buckets = static_cast<uint32_t>(buckets)}, kv::ShardBy::kKeySuffix);
  if (!table.ok()) return table.status();
  TatpKv t(std::move(*table), o.subscribers, o.nurand_a != 0 ? o.nurand_a : TatpNuRandA(o.subscribers));
  std::vector<absl::Status> status(loaders.size());
  std::vector<TatpKvCensus> census(loaders.size());
  std::vector<std::thread> threads;
  for (size_t l = 0; l < loaders.size(); ++l) {
    threads.emplace_back([&, l] {
      for (uint64_t s = 1 + l; s <= uint64_t(o.subscribers) && status[l].ok(); s += loaders.size()) {
        status[l] = tatp_internal::LoadUntilCommitted([&] { return t.LoadOne(*loaders[l], s, o.seed, &census[l]); });
      }
    });
  }
  for (auto& th : threads) th.join();
  for (size_t l = 0; l < loaders.size(); ++l) {
    if (!status[l].ok()) return status[l];
    t.loaded_.subscribers += census[l].subscribers;
    t.loaded_.access_info += census[l].access_info;
    t.loaded_.special_facility += census[l].special_facility;
    t.loaded_.call_forwarding += census[l].call_forwarding;
  }
  return t;
}

template <typename Tx>
absl::StatusOr<uint64_t> TatpKv::SubscriberOf(Tx& tx, uint64_t s_id) const {
  absl::StatusOr<absl::optional<std::string>> v = table_.Get(tx, SubNbrKey(s_id));
  if (!v.ok()) return v.status();
  if (!v->has_value() || (*v)->size() != 8) {
    return absl::DataLossError(absl::StrCat("tatp: no sub_nbr index entry for subscriber ", s_id));
  }
  return tatp_internal::From<uint64_t>(**v);
}

template <typename Client, typename Reader>
absl::Status TatpKv::RunOne(Client& client, Reader& reader, std::mt19937_64& rng, TatpResult* result) const {
  using tatp_internal::Bytes;
  using tatp_internal::From;
  using tatp_kv_internal::Row;
  const uint64_t s_id = TatpNuRand(rng, nurand_a_, subscribers_);
  *result = TatpResult{};
  result->kind = TatpPickTx(rng);
  const int type = 1 + static_cast<int>(rng() % 4);  // ai_type / sf_type
  switch (result->kind) {
    case TatpTx::kGetSubscriberData: {
      absl::StatusOr<absl::optional<std::string>> v = reader.Lookup(SubscriberKey(s_id));
      if (!v.ok()) return v.status();
      absl::StatusOr<TatpSubscriberValue> row = Row<TatpSubscriberValue>(*v, "Subscriber", s_id);
      if (!row.ok()) return row.status();
      result->found = true;
      return absl::OkStatus();
    }
    case TatpTx::kGetAccessData: {
      absl::StatusOr<absl::optional<std::string>> v = reader.Lookup(AccessInfoKey(s_id, type));
      if (!v.ok()) return v.status();
      result->found = v->has_value();
      return absl::OkStatus();
    }
    default:
      break;
  }
  auto tx = client.Begin();
  auto rollback = [&] {  // the specification's unsuccessful transaction
    tx.Abort();
    return absl::OkStatus();
  };
  switch (result->kind) {
    case TatpTx::kGetNewDestination: {
      const int start_time = 8 * static_cast<int>(rng() % 3);
      const int end_time = 1 + static_cast<int>(rng() % 24);
      absl::StatusOr<absl::optional<std::string>> sf = table_.Get(tx, SpecialFacilityKey(s_id, type));
      if (!sf.ok()) return sf.status();
      if (!sf->has_value() || !From<TatpSpecialFacilityRow>(**sf).is_active) break;
      for (int st = 0; st <= start_time; st += 8) {
        absl::StatusOr<absl::optional<std::string>> cf = table_.Get(tx, CallForwardingKey(s_id, type, st));
        if (!cf.ok()) return cf.status();
        if (cf->has_value() && From<TatpCallForwardingValue>(**cf).end_time > end_time) result->found = true;
      }
      break;
    }
    case TatpTx::kUpdateSubscriberData: {
      absl::StatusOr<absl::optional<std::string>> v = table_.Get(tx, SubscriberKey(s_id));
      if (!v.ok()) return v.status();
      absl::StatusOr<TatpSubscriberValue> sub = Row<TatpSubscriberValue>(*v, "Subscriber", s_id);
      if (!sub.ok()) return sub.status();
      sub->bits = static_cast<uint16_t>((sub->bits & ~1u) | (rng() & 1));
      absl::StatusOr<absl::optional<std::string>> sf = table_.Get(tx, SpecialFacilityKey(s_id, type));
      if (!sf.ok()) return sf.status();
      if (!sf->has_value()) return rollback();
      TatpSpecialFacilityRow row = From<TatpSpecialFacilityRow>(**sf);
      row.data_a = static_cast<uint8_t>(rng());
      absl::Status s = table_.Update(tx, SubscriberKey(s_id), Bytes(*sub));
      if (s.ok()) s = table_.Update(tx, SpecialFacilityKey(s_id, type), Bytes(row));
      if (!s.ok()) return s;
      result->found = true;
      break;
    }
    case TatpTx::kUpdateLocation: {
      absl::StatusOr<uint64_t> id = SubscriberOf(tx, s_id);
      if (!id.ok()) return id.status();
      absl::StatusOr<absl::optional<std::string>> v = table_.Get(tx, SubscriberKey(*id));
      if (!v.ok()) return v.status();
      absl::StatusOr<TatpSubscriberValue> sub = Row<TatpSubscriberValue>(*v, "Subscriber", *id);
      if (!sub.ok()) return sub.status();
      sub->vlr_location = static_cast<uint32_t>(1 + rng() % 0xfffffffe);
      absl::Status s = table_.Update(tx, SubscriberKey(*id), Bytes(*sub));
      if (!s.ok()) return s;
      result->found = true;
      break;
    }
    case TatpTx::kInsertCallForwarding:
    case TatpTx::kDeleteCallForwarding: {
      const int start_time = 8 * static_cast<int>(rng() % 3);
      absl::StatusOr<uint64_t> id = SubscriberOf(tx, s_id);
      if (!id.ok()) return id.status();
      const kv::Key key = CallForwardingKey(*id, type, start_time);
      if (result->kind == TatpTx::kDeleteCallForwarding) {
        absl::StatusOr<bool> erased = table_.Erase(tx, key);
        if (!erased.ok()) return erased.status();
        if (!*erased) return rollback();
        result->cf_delta = -1;
      } else {
        absl::StatusOr<absl::optional<std::string>> sf = table_.Get(tx, SpecialFacilityKey(*id, type));
        if (!sf.ok()) return sf.status();
        if (!sf->has_value()) return rollback();
        TatpCallForwardingValue cf{static_cast<uint8_t>(1 + rng() % 24), {}};
        for (char& c : cf.numberx) c = tatp_kv_internal::Digit(rng);
        absl::Status s = table_.Insert(tx, key, Bytes(cf));
        if (absl::IsAlreadyExists(s)) return rollback();
        if (!s.ok()) return s;
        result->cf_delta = 1;
      }
      result->found = true;
      break;
    }
    default:
      break;
  }
  absl::Status s = tx.Commit();
  if (!s.ok()) result->cf_delta = 0;
  return s;
}

template <typename Client>
absl::StatusOr<TatpKvCensus> TatpKv::Check(Client& client) const {
  using tatp_kv_internal::Row;
  TatpKvCensus total;
  for (uint64_t s_id = 1; s_id <= uint64_t(subscribers_); ++s_id) {
    for (;;) {
      TatpKvCensus mine;
      auto tx = client.Begin();
      absl::Status bad;
      auto get = [&](const kv::Key& k) -> absl::StatusOr<absl::optional<std::string>> { return table_.Get(tx, k); };
      absl::StatusOr<absl::optional<std::string>> sub = get(SubscriberKey(s_id));
      absl::StatusOr<uint64_t> id = sub.ok() ? SubscriberOf(tx, s_id) : sub.status();
      absl::Status s = id.status();
      if (s.ok() && *id != s_id) {
        bad = absl::FailedPreconditionError(absl::StrCat("tatp: sub_nbr of ", s_id, " maps to subscriber ", *id));
      }
      if (s.ok() && bad.ok()) s = Row<TatpSubscriberValue>(*sub, "Subscriber", s_id).status();
      mine.subscribers = 1;
      for (int t = 1; t <= 4 && s.ok() && bad.ok(); ++t) {
        absl::StatusOr<absl::optional<std::string>> ai = get(AccessInfoKey(s_id, t));
        absl::StatusOr<absl::optional<std::string>> sf = ai.ok() ? get(SpecialFacilityKey(s_id, t)) : ai.status();
        if (!sf.ok()) {
          s = sf.status();
          break;
        }
        mine.access_info += ai->has_value();
        mine.special_facility += sf->has_value();
        for (int st = 0; st <= 16 && s.ok() && bad.ok(); st += 8) {
          absl::StatusOr<absl::optional<std::string>> cf = get(CallForwardingKey(s_id, t, st));
          if (!cf.ok()) {
            s = cf.status();
          } else if (cf->has_value()) {
            ++mine.call_forwarding;
            const int end = (*cf)->size() == sizeof(TatpCallForwardingValue)
                                ? tatp_internal::From<TatpCallForwardingValue>(**cf).end_time
                                : -1;
            if (!sf->has_value() || end < 1 || end > 24) {
              bad = absl::FailedPreconditionError(absl::StrCat(
                  "tatp: subscriber ", s_id, " has a Call_Forwarding row (sf_type ", t, ", start_time ", st,
                  ", end_time ", end, ")", sf->has_value() ? " with end_time outside 1..24" : " but no Special_Facility"));
            }
          }
        }
      }
      if (s.ok() && bad.ok() && (mine.access_info < 1 || mine.access_info > 4 || mine.special_facility < 1 ||
                                 mine.special_facility > 4)) {
        bad = absl::FailedPreconditionError(absl::StrCat("tatp: subscriber ", s_id, " has ", mine.access_info,
                                                         " Access_Info and ", mine.special_facility,
                                                         " Special_Facility rows (1-4 each)"));
      }
      if (s.ok()) s = tx.Commit();  // read-only: validates what was read
      if (absl::IsAborted(s)) continue;
      if (!s.ok()) return s;
      if (!bad.ok()) return bad;
      total.subscribers += mine.subscribers;
      total.access_info += mine.access_info;
      total.special_facility += mine.special_facility;
      total.call_forwarding += mine.call_forwarding;
      break;
    }
  }
  return total;
}

}  // namespace dctk::farm::workload

#endif  // DCTK_FARM_WORKLOAD_INTERNAL_TATP_KV_IMPL_H_
