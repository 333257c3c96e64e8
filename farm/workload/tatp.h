// TATP (the Telecom Application Transaction Processing benchmark, the one
// FaRM reports) over FaRM transactions. Tables, one object per row:
//   Subscriber (s_id)                    bit/hex/byte fields, msc and vlr location
//   AccessInfo (s_id, ai_type 1..4)      1-4 per subscriber
//   SpecialFacility (s_id, sf_type 1..4) 1-4 per subscriber, is_active, data_a
//   CallForwarding (s_id, sf_type)       one object per special facility holding
//                                        its 3 possible rows (start_time 0/8/16)
// A subscriber's rows are allocated near its Subscriber object (locality
// hint), on the machine that loads it. Row addresses are kept in a directory
// on the client, so a transaction costs exactly its object reads and its
// commit. This is the baseline of tatp_kv.h, where the tables live in FaRM's
// hashtable, as in the paper.
//
// The standard mix, 80% read-only: GET_SUBSCRIBER_DATA 35%,
// GET_NEW_DESTINATION 10%, GET_ACCESS_DATA 35%, UPDATE_SUBSCRIBER_DATA 2%,
// UPDATE_LOCATION 14%, INSERT_CALL_FORWARDING 2%, DELETE_CALL_FORWARDING 2%.
// Subscribers are chosen with the specification's NURand (TatpNuRand). A row
// the mix asks for that does not exist is a successful "not found".
//
// Example:
//   absl::StatusOr<Tatp> tatp = Tatp::Load(loaders, /*subscribers=*/1000, /*seed=*/1);
//   TatpTx kind;
//   absl::Status s = tatp->RunOne(client, rng, &kind);   // Aborted: retry
#ifndef DCTK_FARM_WORKLOAD_TATP_H_
#define DCTK_FARM_WORKLOAD_TATP_H_

#include <array>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "farm/core/address.h"

namespace dctk::farm::workload {

enum class TatpTx : uint8_t {
  kGetSubscriberData,
  kGetNewDestination,
  kGetAccessData,
  kUpdateSubscriberData,
  kUpdateLocation,
  kInsertCallForwarding,
  kDeleteCallForwarding,
};
inline constexpr int kTatpTxKinds = 7;
inline const char* TatpTxName(TatpTx t);
inline bool IsReadOnly(TatpTx t) { return t <= TatpTx::kGetAccessData; }

struct TatpSubscriberRow {
  uint64_t s_id;
  char sub_nbr[16];
  uint16_t bits;
  uint8_t hex[5];
  uint8_t byte2[10];
  uint8_t pad;
  uint32_t msc_location;
  uint32_t vlr_location;
};
struct TatpAccessInfoRow {
  uint8_t data1, data2;
  char data3[3];
  char data4[5];
};
struct TatpSpecialFacilityRow {
  uint8_t is_active, error_cntrl, data_a;
  char data_b[5];
};
struct TatpCallForwardingRows {
  struct Row {
    uint8_t present;
    uint8_t end_time;
    char numberx[15];
    char pad[7];
  };
  Row rows[3];  // start_time 0, 8, 16
};

// TATP's non-uniform subscriber choice: s_id = (rand(0, A) | rand(1, P)) % P + 1.
// The specification fixes A = 65535 for 1M subscribers, 1048575 for 10M and
// 2097151 for 20M; TatpNuRandA keeps those and, below 1M, scales A with P in
// the 1M ratio (A + 1 = the power of two nearest above P x 65536 / 1M), so
// small populations are as skewed as the specification's smallest.
inline uint64_t TatpNuRandA(uint64_t subscribers) {
  if (subscribers >= 20'000'000) return 2'097'151;
  if (subscribers >= 10'000'000) return 1'048'575;
  if (subscribers >= 1'000'000) return 65'535;
  uint64_t a = 1;
  while (a < subscribers * 65536 / 1'000'000) a <<= 1;
  return a - 1;
}
// A subscriber id in 1..p.
inline uint64_t TatpNuRand(std::mt19937_64& rng, uint64_t a, uint64_t p) {
  const uint64_t x = rng() % (a + 1);
  const uint64_t y = 1 + rng() % p;
  return (x | y) % p + 1;
}
// A transaction type drawn from the specification's mix (35 / 10 / 35 / 2 / 14 /
// 2 / 2 %: GET_SUBSCRIBER_DATA, GET_NEW_DESTINATION, GET_ACCESS_DATA,
// UPDATE_SUBSCRIBER_DATA, UPDATE_LOCATION, INSERT_ / DELETE_CALL_FORWARDING).
inline TatpTx TatpPickTx(std::mt19937_64& rng) {
  const int pick = static_cast<int>(rng() % 100);
  return pick < 35   ? TatpTx::kGetSubscriberData
         : pick < 45 ? TatpTx::kGetNewDestination
         : pick < 80 ? TatpTx::kGetAccessData
         : pick < 82 ? TatpTx::kUpdateSubscriberData
         : pick < 96 ? TatpTx::kUpdateLocation
         : pick < 98 ? TatpTx::kInsertCallForwarding
                     : TatpTx::kDeleteCallForwarding;
}

// What one transaction of the mix draws besides its subscriber, so that the
// same transaction can run wherever it is coordinated (tatp_ship.h ships it).
struct TatpDraw {
  TatpTx kind = TatpTx::kGetSubscriberData;
  int type = 0;        // ai_type / sf_type - 1
  int slot = 0;        // Call_Forwarding start_time / 8
  uint64_t value = 0;  // new data_a, vlr_location, end_time
};
inline TatpDraw TatpDrawTx(std::mt19937_64& rng) {
  TatpDraw d;
  d.kind = TatpPickTx(rng);
  d.type = static_cast<int>(rng() % 4);
  d.slot = static_cast<int>(rng() % 3);
  d.value = rng();
  return d;
}

class Tatp {
 public:
  struct Directory {
    GlobalAddress subscriber;
    std::array<GlobalAddress, 4> access_info;       // null: no such row
    std::array<GlobalAddress, 4> special_facility;
    std::array<GlobalAddress, 4> call_forwarding;   // one per special facility
  };

  // Loads `subscribers` subscribers, each through the loader of machine
  // s % loaders.size(), in parallel (one thread per loader).
  template <typename Client>
  static absl::StatusOr<Tatp> Load(const std::vector<Client*>& loaders, int subscribers, uint64_t seed);

  // One transaction of the mix on `client`; *kind says which.
  template <typename Client>
  absl::Status RunOne(Client& client, std::mt19937_64& rng, TatpTx* kind) const;
  // The subscriber of the next transaction (NURand).
  const Directory& PickSubscriber(std::mt19937_64& rng) const {
    return dir_[TatpNuRand(rng, nurand_a_, dir_.size()) - 1];
  }
  // The reads and writes of transaction `draw` of subscriber `d` in `tx`,
  // which the caller commits.
  template <typename Tx>
  static absl::Status Run(Tx& tx, const Directory& d, const TatpDraw& draw);

  int subscribers() const { return static_cast<int>(dir_.size()); }
  const Directory& directory(int s) const { return dir_[s]; }
  // NURand's A (default: TatpNuRandA(subscribers)).
  void set_nurand_a(uint64_t a) { nurand_a_ = a; }

 private:
  template <typename Client>
  static absl::Status LoadOne(Client& client, uint64_t s_id, std::mt19937_64& rng, Directory* d);

  std::vector<Directory> dir_;
  uint64_t nurand_a_ = 0;
};

}  // namespace dctk::farm::workload

#include "farm/workload/internal/tatp_impl.h"

#endif  // DCTK_FARM_WORKLOAD_TATP_H_
