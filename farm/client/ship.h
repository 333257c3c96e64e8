// Function shipping of whole transactions (FaRM SOSP'15, section 6: TATP
// ships each transaction to the primary of its subscriber's shard). A
// transaction procedure is registered under an id on every storage machine;
// a client ships (procedure id, argument bytes) to the primary of an address
// (the locality hint), where a ship worker runs the procedure as the
// transaction's coordinator (local reads, LOCK / COMMIT-PRIMARY by function
// call to the local participant; backups still get COMMIT-BACKUP before the
// commit is reported) and returns the procedure's result bytes.
//
// This header holds what both sides share: the procedure registry, the
// request/reply messages on the ship workers' rings, endpoint and request
// ids. The machine side is ship_server.h, the client side shipper.h.
//
// A request id is the shipped transaction's TxId ([client machine][slot
// 0xff][sequence]): the machine remembers the replies of the requests it ran
// under it (a retry gets the first reply, never a second commit), and a
// client whose executing machine failed asks the participants for the
// outcome of that TxId. A request also carries the client's truncation
// watermark for that stream: its lowest request not settled yet (one whose
// outcome it has not learned may still be running), so the participants
// never refuse a late message of a request the client gave up on.
//
// Example:
//   ProcedureRegistry<ShmFabric> procs;
//   procs.Register(kIncrement, "increment",
//                  [](tx::Transaction<ShmFabric>& t, absl::string_view args) ->
//                  absl::StatusOr<std::string> {
//                    GlobalAddress a = GlobalAddress::FromRaw(DecodeU64(args));
//                    absl::StatusOr<std::string> v = t.Read(a, 8);
//                    if (!v.ok()) return v.status();
//                    absl::Status s = t.Write(a, EncodeU64(DecodeU64(*v) + 1));
//                    if (!s.ok()) return s;
//                    return *v;
//                  });
#ifndef DCTK_FARM_CLIENT_SHIP_H_
#define DCTK_FARM_CLIENT_SHIP_H_

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "farm/fabric/fabric.h"
#include "farm/tx/transaction.h"
#include "farm/tx/wire.h"

namespace dctk::farm::client {

using ProcedureId = uint16_t;

// RPC handler id of a shipped transaction on a ship worker's endpoint.
constexpr uint16_t kShipHandler = 32;
// Control method (farm/server/control.h) that wires a client's rings to a
// machine's ship worker: WireShip -> WireShipReply (ship.proto).
constexpr uint16_t kWireShipMethod = 40;
// TxId slot of shipped transactions (a client's own coordinator uses 0).
constexpr uint32_t kShippedTxSlot = 0xff;

// Endpoint id of ship worker `worker` on `machine` (apart from participants,
// which use the machine id, and coordinators, tx::TxClient::EndpointId).
constexpr uint32_t ShipEndpointId(fabric::MachineId machine, uint32_t worker) {
  return (2u << 24) | (machine << 8) | (worker & 0xff);
}

// A procedure reads and writes through `t` and returns its result bytes; the
// ship worker commits `t` afterwards (an error aborts it and is the reply).
template <typename F>
using Procedure = std::function<absl::StatusOr<std::string>(tx::Transaction<F>& t, absl::string_view args)>;

template <typename F>
  requires fabric::Fabric<F>
class ProcedureRegistry {
 public:
  absl::Status Register(ProcedureId id, std::string name, Procedure<F> fn) {
    auto [it, fresh] = procedures_.try_emplace(id, Entry{std::move(name), std::move(fn)});
    if (!fresh) {
      return absl::AlreadyExistsError(absl::StrCat("procedure ", id, " is already registered (", it->second.name, ")"));
    }
    return absl::OkStatus();
  }
  const Procedure<F>* Find(ProcedureId id) const {
    auto it = procedures_.find(id);
    return it == procedures_.end() ? nullptr : &it->second.fn;
  }
  std::string Name(ProcedureId id) const {
    auto it = procedures_.find(id);
    return it == procedures_.end() ? absl::StrCat("#", id) : it->second.name;
  }

 private:
  struct Entry {
    std::string name;
    Procedure<F> fn;
  };
  absl::flat_hash_map<ProcedureId, Entry> procedures_;
};

struct ShipRequest {
  uint64_t config = 0;  // the client's configuration: the transaction runs in exactly this one
  tx::TxId id = 0;      // request id = the transaction's id
  ProcedureId procedure = 0;
  std::string args;
  // The client's truncation point for its shipped requests (its lowest one
  // not settled: at most id) and its incarnation, which the transaction's
  // messages carry (tx/wire.h).
  tx::Watermark watermark;
};

struct ShipReply {
  int code = 0;  // absl::StatusCode of the commit (or of the procedure)
  std::string message;
  std::string result;       // the procedure's result (committed transactions)
  uint64_t config = 0;      // the machine's configuration when it answered
  bool remembered = false;  // a retry: the reply of the first run
};

std::string Encode(const ShipRequest& r);
std::string Encode(const ShipReply& r);
absl::StatusOr<ShipRequest> DecodeShipRequest(absl::string_view bytes);
absl::StatusOr<ShipReply> DecodeShipReply(absl::string_view bytes);

inline std::string EncodeU64(uint64_t v) { return std::string(reinterpret_cast<const char*>(&v), 8); }
// The first 8 bytes of `s` (zero-extended).
inline uint64_t DecodeU64(absl::string_view s) {
  uint64_t v = 0;
  std::memcpy(&v, s.data(), std::min<size_t>(8, s.size()));
  return v;
}

}  // namespace dctk::farm::client

#endif  // DCTK_FARM_CLIENT_SHIP_H_
