// 8-byte counters as FaRM objects, for farmd tests and benchmarks: a client
// allocates one in a region, increments it in a read-write transaction and
// reads it in a read-only one.
//
// Example:
//   absl::StatusOr<GlobalAddress> a = NewCounter(client.tx(), region_id);
//   absl::Status s = IncrementCounter(client.tx(), *a);   // Aborted: retry
//   absl::StatusOr<uint64_t> n = ReadCounter(client.tx(), *a);
#ifndef DCTK_FARM_SERVER_COUNTERS_H_
#define DCTK_FARM_SERVER_COUNTERS_H_

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "farm/core/address.h"
#include "farm/tx/transaction.h"

namespace dctk::farm::server {

// A new counter holding 0 in `region`, committed.
template <typename F>
absl::StatusOr<GlobalAddress> NewCounter(tx::TxClient<F>& client, RegionId region) {
  auto t = client.Begin();
  absl::StatusOr<GlobalAddress> a = t.Alloc(8, GlobalAddress(region, 0));
  if (!a.ok()) return a.status();
  if (absl::Status s = t.Write(*a, std::string(8, '\0')); !s.ok()) return s;
  if (absl::Status s = t.Commit(); !s.ok()) return s;
  return *a;
}

// Adds 1 to the counter at `a` in one transaction.
template <typename F>
absl::Status IncrementCounter(tx::TxClient<F>& client, GlobalAddress a) {
  auto t = client.Begin();
  absl::StatusOr<std::string> v = t.Read(a, 8);
  if (!v.ok()) return v.status();
  uint64_t n = 0;
  memcpy(&n, v->data(), 8);
  ++n;
  absl::Status s = t.Write(a, std::string(reinterpret_cast<const char*>(&n), 8));
  return s.ok() ? t.Commit() : s;
}

// The counter at `a`, read in a read-only transaction.
template <typename F>
absl::StatusOr<uint64_t> ReadCounter(tx::TxClient<F>& client, GlobalAddress a) {
  auto t = client.Begin();
  absl::StatusOr<std::string> v = t.Read(a, 8);
  if (!v.ok()) return v.status();
  uint64_t n = 0;
  memcpy(&n, v->data(), 8);
  return n;
}

}  // namespace dctk::farm::server

#endif  // DCTK_FARM_SERVER_COUNTERS_H_
