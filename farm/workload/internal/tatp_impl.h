// Implementation of tatp.h (templates on the client). Not for direct inclusion.
#ifndef DCTK_FARM_WORKLOAD_INTERNAL_TATP_IMPL_H_
#define DCTK_FARM_WORKLOAD_INTERNAL_TATP_IMPL_H_

#include "absl/strings/str_cat.h"

namespace dctk::farm::workload {

inline const char* TatpTxName(TatpTx t) {
  switch (t) {
    case TatpTx::kGetSubscriberData: return "GET_SUBSCRIBER_DATA";
    case TatpTx::kGetNewDestination: return "GET_NEW_DESTINATION";
    case TatpTx::kGetAccessData: return "GET_ACCESS_DATA";
    case TatpTx::kUpdateSubscriberData: return "UPDATE_SUBSCRIBER_DATA";
    case TatpTx::kUpdateLocation: return "UPDATE_LOCATION";
    case TatpTx::kInsertCallForwarding: return "INSERT_CALL_FORWARDING";
    case TatpTx::kDeleteCallForwarding: return "DELETE_CALL_FORWARDING";
  }
  return "UNKNOWN";
}

namespace tatp_internal {
// Runs `load_one` (one subscriber's rows in one transaction) until it commits.
// A conflict (Aborted) is retried, and so is a machine that did not answer
// before anything was logged at a backup (DeadlineExceeded: not committed, see
// farm/tx/transaction.h; a loaded machine), at most kLoadTimeouts times in a
// row, so a dead machine still ends the load with its error.
template <typename Op>
absl::Status LoadUntilCommitted(Op load_one) {
  constexpr int kLoadTimeouts = 20;
  absl::Status st;
  int timeouts = 0;
  do {
    st = load_one();
    if (absl::IsDeadlineExceeded(st) && ++timeouts > kLoadTimeouts) break;
    if (!absl::IsDeadlineExceeded(st)) timeouts = 0;
  } while (absl::IsAborted(st) || absl::IsDeadlineExceeded(st));
  return st;
}

template <typename T>
std::string Bytes(const T& v) {
  return std::string(reinterpret_cast<const char*>(&v), sizeof(T));
}
template <typename T>
T From(const std::string& s) {
  T v;
  std::memcpy(&v, s.data(), sizeof(T));
  return v;
}
// k distinct types out of 1..4, as a bitmask of present rows.
inline std::array<bool, 4> SomeOfFour(std::mt19937_64& rng) {
  std::array<bool, 4> present{};
  const int k = 1 + static_cast<int>(rng() % 4);
  for (int placed = 0; placed < k;) {
    const int t = static_cast<int>(rng() % 4);
    if (!present[t]) {
      present[t] = true;
      ++placed;
    }
  }
  return present;
}
}  // namespace tatp_internal

template <typename Client>
absl::Status Tatp::LoadOne(Client& client, uint64_t s_id, std::mt19937_64& rng, Directory* d) {
  using namespace tatp_internal;
  auto tx = client.Begin();
  TatpSubscriberRow sub{};
  sub.s_id = s_id;
  const std::string nbr = absl::StrCat(s_id);
  std::memset(sub.sub_nbr, '0', 15);
  std::memcpy(sub.sub_nbr + 15 - std::min<size_t>(15, nbr.size()), nbr.data(), std::min<size_t>(15, nbr.size()));
  sub.bits = static_cast<uint16_t>(rng());
  sub.msc_location = static_cast<uint32_t>(rng());
  sub.vlr_location = static_cast<uint32_t>(rng());
  absl::StatusOr<GlobalAddress> a = tx.Alloc(sizeof(sub));
  if (!a.ok()) return a.status();
  d->subscriber = *a;
  absl::Status s = tx.Write(*a, Bytes(sub));
  const std::array<bool, 4> ai = SomeOfFour(rng), sf = SomeOfFour(rng);
  for (int t = 0; t < 4 && s.ok(); ++t) {
    if (ai[t]) {
      TatpAccessInfoRow row{static_cast<uint8_t>(rng()), static_cast<uint8_t>(rng()), {'a', 'b', 'c'}, {'d', 'e', 'f', 'g', 'h'}};
      absl::StatusOr<GlobalAddress> r = tx.Alloc(sizeof(row), *a);
      if (!r.ok()) return r.status();
      d->access_info[t] = *r;
      s = tx.Write(*r, Bytes(row));
    }
    if (sf[t] && s.ok()) {
      TatpSpecialFacilityRow row{static_cast<uint8_t>(rng() % 100 < 85), static_cast<uint8_t>(rng()),
                                 static_cast<uint8_t>(rng()), {'x', 'y', 'z', 'w', 'v'}};
      absl::StatusOr<GlobalAddress> r = tx.Alloc(sizeof(row), *a);
      if (!r.ok()) return r.status();
      d->special_facility[t] = *r;
      s = tx.Write(*r, Bytes(row));
      TatpCallForwardingRows cf{};
      for (int i = 0; i < 3; ++i) {
        cf.rows[i].present = rng() % 4 == 0;  // 0-3 rows, as in TATP's population
        cf.rows[i].end_time = static_cast<uint8_t>(8 * i + 1 + rng() % 8);
      }
      absl::StatusOr<GlobalAddress> c = tx.Alloc(sizeof(cf), *a);
      if (!c.ok()) return c.status();
      d->call_forwarding[t] = *c;
      if (s.ok()) s = tx.Write(*c, Bytes(cf));
    }
  }
  if (s.ok()) s = tx.Commit();
  return s;
}

template <typename Client>
absl::StatusOr<Tatp> Tatp::Load(const std::vector<Client*>& loaders, int subscribers, uint64_t seed) {
  Tatp t;
  t.dir_.resize(subscribers);
  t.nurand_a_ = TatpNuRandA(subscribers);
  std::vector<absl::Status> status(loaders.size());
  std::vector<std::thread> threads;
  for (size_t l = 0; l < loaders.size(); ++l) {
    threads.emplace_back([&, l] {
      std::mt19937_64 rng(seed + l);
      for (int s = static_cast<int>(l); s < subscribers && status[l].ok(); s += static_cast<int>(loaders.size())) {
        status[l] = tatp_internal::LoadUntilCommitted([&] {
          t.dir_[s] = Directory{};
          return LoadOne(*loaders[l], static_cast<uint64_t>(s), rng, &t.dir_[s]);
        });
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const absl::Status& s : status) {
    if (!s.ok()) return s;
  }
  return t;
}

template <typename Client>
absl::Status Tatp::RunOne(Client& client, std::mt19937_64& rng, TatpTx* kind) const {
  const Directory& d = PickSubscriber(rng);
  const TatpDraw draw = TatpDrawTx(rng);
  *kind = draw.kind;
  auto tx = client.Begin();
  absl::Status s = Run(tx, d, draw);
  if (!s.ok()) return s;
  return tx.Commit();
}

template <typename Tx>
absl::Status Tatp::Run(Tx& tx, const Directory& d, const TatpDraw& draw) {
  using namespace tatp_internal;
  const int type = draw.type;
  switch (draw.kind) {
    case TatpTx::kGetSubscriberData: {
      absl::StatusOr<std::string> r = tx.Read(d.subscriber, sizeof(TatpSubscriberRow));
      if (!r.ok()) return r.status();
      break;
    }
    case TatpTx::kGetNewDestination: {
      if (d.special_facility[type].is_null()) break;  // not found
      absl::StatusOr<std::string> sf = tx.Read(d.special_facility[type], sizeof(TatpSpecialFacilityRow));
      if (!sf.ok()) return sf.status();
      if (!From<TatpSpecialFacilityRow>(*sf).is_active) break;
      absl::StatusOr<std::string> cf = tx.Read(d.call_forwarding[type], sizeof(TatpCallForwardingRows));
      if (!cf.ok()) return cf.status();
      break;
    }
    case TatpTx::kGetAccessData: {
      if (d.access_info[type].is_null()) break;
      absl::StatusOr<std::string> r = tx.Read(d.access_info[type], sizeof(TatpAccessInfoRow));
      if (!r.ok()) return r.status();
      break;
    }
    case TatpTx::kUpdateSubscriberData: {
      if (d.special_facility[type].is_null()) break;
      absl::StatusOr<std::string> sub = tx.Read(d.subscriber, sizeof(TatpSubscriberRow));
      if (!sub.ok()) return sub.status();
      absl::StatusOr<std::string> sf = tx.Read(d.special_facility[type], sizeof(TatpSpecialFacilityRow));
      if (!sf.ok()) return sf.status();
      auto srow = From<TatpSubscriberRow>(*sub);
      srow.bits ^= 1;
      auto frow = From<TatpSpecialFacilityRow>(*sf);
      frow.data_a = static_cast<uint8_t>(draw.value);
      absl::Status s = tx.Write(d.subscriber, Bytes(srow));
      if (s.ok()) s = tx.Write(d.special_facility[type], Bytes(frow));
      if (!s.ok()) return s;
      break;
    }
    case TatpTx::kUpdateLocation: {
      absl::StatusOr<std::string> sub = tx.Read(d.subscriber, sizeof(TatpSubscriberRow));
      if (!sub.ok()) return sub.status();
      auto srow = From<TatpSubscriberRow>(*sub);
      srow.vlr_location = static_cast<uint32_t>(draw.value);
      absl::Status s = tx.Write(d.subscriber, Bytes(srow));
      if (!s.ok()) return s;
      break;
    }
    case TatpTx::kInsertCallForwarding:
    case TatpTx::kDeleteCallForwarding: {
      if (d.special_facility[type].is_null()) break;
      absl::StatusOr<std::string> sf = tx.Read(d.special_facility[type], sizeof(TatpSpecialFacilityRow));
      if (!sf.ok()) return sf.status();
      absl::StatusOr<std::string> cf = tx.Read(d.call_forwarding[type], sizeof(TatpCallForwardingRows));
      if (!cf.ok()) return cf.status();
      auto rows = From<TatpCallForwardingRows>(*cf);
      const int slot = draw.slot;
      const bool insert = draw.kind == TatpTx::kInsertCallForwarding;
      if (static_cast<bool>(rows.rows[slot].present) == insert) break;  // already there / not there
      rows.rows[slot].present = insert;
      rows.rows[slot].end_time = static_cast<uint8_t>(8 * slot + 1 + draw.value % 8);
      absl::Status s = tx.Write(d.call_forwarding[type], Bytes(rows));
      if (!s.ok()) return s;
      break;
    }
  }
  return absl::OkStatus();
}

}  // namespace dctk::farm::workload

#endif  // DCTK_FARM_WORKLOAD_INTERNAL_TATP_IMPL_H_
