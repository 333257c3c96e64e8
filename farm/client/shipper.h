// Shipper: the client side of transaction shipping (ship.h). Ship(where,
// procedure, args) sends the request to a ship worker of the primary of
// `where`'s region (the locality hint) over the client coordinator's
// endpoint, and returns the procedure's result once the transaction
// committed there.
//
// Outcomes, as for a transaction the client coordinates itself:
//   OK                  committed exactly once; the procedure's result
//   Aborted             a conflict (retry: Ship again, a new request)
//   Unavailable /       not committed: the configuration changed or a machine
//   DeadlineExceeded    was unreachable (Refresh and retry)
//   Unknown             the outcome could not be learned in outcome_timeout,
//                       or the transaction committed (recovery decided it
//                       after the executing machine failed) but its result
//                       was lost with that machine
//   other codes         the procedure's own error (nothing committed)
// A request reported Unknown because no decision came in time may still be
// running at its ship worker (a commit waiting for a slow backup). The
// client's truncation watermark (ship.h) stays at the oldest such request,
// so the participants accept its late messages and it commits or aborts
// like any transaction; the Shipper tries to learn its outcome again at
// later Ships (at most once per `timeout` each: the same resend or
// question as below), and Outcome(id) returns it once learned.
// With the coordinator's TxClientOptions::give_up_on_new_config (on in
// FarmClient), a call stops waiting as soon as the configuration changes
// (counted in gave_up) and the request is settled as below at once, instead
// of after the call's timeout.
// When the reply does not come, the same request (same id) is sent again
// while the executing machine is in the configuration: the machine answers
// a request it ran from its remembered replies, so a retry never commits
// twice. A resend refused because the machine is now in a later
// configuration than the request's, without a remembered reply, does not
// prove the first copy never ran: the machine may have restarted since
// (a whole-cluster restart brings it back under its id, its remembered
// replies were in memory) and the request committed before the crash. Then,
// as once the configuration no longer lists that machine (it failed and the
// CM removed it), every storage machine is asked for the outcome of the
// request's TxId (a restarted participant knows the commits of its log and
// checkpoint): committed (some participant knows), aborted, or "not
// committed" when every one has recovered into a newer configuration than
// the one the request named and knows nothing of it (a shipped transaction
// runs only in the configuration it names, so no record of it can appear
// after that recovery).
//
// Example:
//   Shipper<ShmFabric> ship(client->tx(), &table, &config, hooks);
//   absl::StatusOr<std::string> r = ship.Ship(account, kTransfer, args);
//   if (absl::IsUnknown(r.status())) {
//     const tx::TxId id = ship.last_request();
//     ...  // later: ship.Outcome(id) is the outcome once learned
//   }
#ifndef DCTK_FARM_CLIENT_SHIPPER_H_
#define DCTK_FARM_CLIENT_SHIPPER_H_

#include <algorithm>
#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "farm/client/ship.h"
#include "farm/core/region_table.h"
#include "farm/fabric/fabric.h"
#include "farm/tx/participant.h"
#include "farm/tx/transaction.h"
#include "farm/tx/wire.h"

namespace dctk::farm::client {

struct ShipperOptions {
  absl::Duration timeout = absl::Seconds(2);          // one shipped call
  absl::Duration outcome_timeout = absl::Seconds(10);  // learning the outcome after a lost reply
};

// What the Shipper needs from its environment (FarmClient, or a test cluster).
struct ShipperHooks {
  // Learns the current configuration (the table and config the Shipper reads).
  std::function<absl::Status()> refresh;
  // The storage machines of the current configuration.
  std::function<std::vector<fabric::MachineId>()> machines;
  // How many ship workers `machine` runs (0: it runs no shipped transactions).
  std::function<int(fabric::MachineId)> workers;
};

struct ShipperStats {
  uint64_t shipped = 0, committed = 0, aborted = 0, failed = 0;
  uint64_t resent = 0;         // requests sent again after a lost reply
  uint64_t remembered = 0;     // answered from the machine's remembered replies
  uint64_t outcome_asked = 0;  // outcome learned from the participants
  uint64_t forgotten = 0;      // resends a machine in a later configuration did not remember (restarted)
  uint64_t unknown = 0;
  uint64_t gave_up = 0;  // calls that stopped waiting because the configuration changed
  // Unknown requests whose outcome was learned later (counted again under it).
  uint64_t settled_late = 0;
};

// Request ids of a new Shipper start at its creation time in microseconds
// (40 bits), so a client restarted under the same machine id does not reuse
// the ids the machines remember (it issues fewer than one per microsecond).
inline uint64_t FirstShipSequence() {
  return static_cast<uint64_t>(absl::ToUnixMicros(absl::Now())) & ((uint64_t{1} << 40) - 1);
}

template <typename F>
  requires fabric::Fabric<F>
class Shipper {
 public:
  Shipper(tx::TxClient<F>& coordinator, const RegionTable* table, const std::atomic<uint64_t>* config,
          ShipperHooks hooks, ShipperOptions o = {})
      : coordinator_(coordinator), cache_(table), config_(config), hooks_(std::move(hooks)), o_(o),
        seq_(FirstShipSequence()) {}

  absl::StatusOr<std::string> Ship(GlobalAddress where, ProcedureId procedure, absl::string_view args) {
    ++stats_.shipped;
    absl::StatusOr<const RegionInfo*> info = cache_.Lookup(where.region());
    if (!info.ok()) return info.status();
    const fabric::MachineId target = (*info)->primary().machine;
    const int workers = hooks_.workers(target);
    if (workers <= 0) {
      ++stats_.failed;
      return absl::FailedPreconditionError(
          absl::StrCat("Ship to ", where.ToString(), ": machine ", target, " runs no shipped transactions"));
    }
    SettleUndecided();
    Request q;
    q.seq = ++seq_;
    q.req = ShipRequest{config_->load(std::memory_order_acquire),
                        tx::MakeTxId(coordinator_.machine(), kShippedTxSlot, q.seq),
                        procedure,
                        std::string(args),
                        {}};
    last_ = q.req.id;
    q.req.watermark = {undecided_.empty() ? q.req.id : undecided_.begin()->second.req.id,
                       coordinator_.incarnation()};
    q.bytes = Encode(q.req);
    q.target = target;
    q.worker = ShipEndpointId(target, static_cast<uint32_t>(q.req.id % workers));
    absl::StatusOr<std::string> r = Send(q.worker, q.bytes);
    if (r.ok()) return Finish(*r);
    if (absl::IsNotFound(r.status())) {
      // No ring to that worker: never sent.
      ++stats_.failed;
      return absl::UnavailableError(absl::StrCat("Ship to machine ", target, ": ", r.status().message()));
    }
    q.why = r.status();
    return Settle(std::move(q));
  }

  // The id of the last request Ship sent (what Outcome takes).
  tx::TxId last_request() const { return last_; }

  // The outcome of request `id`, which Ship reported Unknown without a
  // decision: as Ship would have returned it (OK and the result, Aborted,
  // Unavailable: not committed, Unknown: committed but the result lost),
  // once learned (asked again now if not yet); Unknown while undecided.
  // NotFound for any other id, or once its outcome was returned.
  absl::StatusOr<std::string> Outcome(tx::TxId id) {
    auto undecided = [&] {
      return std::find_if(undecided_.begin(), undecided_.end(),
                          [&](const auto& u) { return u.second.req.id == id; });
    };
    if (auto it = undecided(); it != undecided_.end()) {
      it->second.retry_at = absl::InfinitePast();
      SettleUndecided();
    }
    auto settled = std::find_if(settled_.begin(), settled_.end(),
                                [&](const auto& o) { return o.second.first == id; });
    if (settled != settled_.end()) {
      absl::StatusOr<std::string> out = std::move(settled->second.second);
      settled_.erase(settled);
      return out;
    }
    if (auto it = undecided(); it != undecided_.end()) {
      return absl::UnknownError(absl::StrCat("shipped transaction ", id, ": still undecided (",
                                             it->second.why.message(), ")"));
    }
    return absl::NotFoundError(absl::StrCat("shipped transaction ", id,
                                            " is not one this Shipper gave up on "
                                            "(or its outcome was returned already)"));
  }

  const ShipperStats& stats() const { return stats_; }

 private:
  // A request sent, and what is known of its fate.
  struct Request {
    // This Shipper's sequence (ids compare on a 40-bit circle; these do not wrap).
    uint64_t seq = 0;
    ShipRequest req;
    std::string bytes;
    fabric::MachineId target = 0;
    uint32_t worker = 0;
    absl::Status why;        // why its reply did not come
    bool forgotten = false;  // the machine answered a resend without remembering the request
    absl::Time retry_at;     // undecided: when to try again
  };

  absl::StatusOr<std::string> Send(uint32_t endpoint, const std::string& bytes) {
    return Call(endpoint, kShipHandler, bytes);
  }

  // One call over the coordinator's endpoint; with give_up_on_new_config it
  // ends when the configuration moves past the one it started in.
  absl::StatusOr<std::string> Call(uint32_t endpoint, uint16_t handler, const std::string& bytes) {
    std::function<bool()> give_up;
    if (coordinator_.options().give_up_on_new_config) {
      give_up = [this, c = config_->load(std::memory_order_acquire)] {
        return config_->load(std::memory_order_acquire) != c;
      };
    }
    const uint64_t given_up = coordinator_.endpoint().given_up();
    absl::StatusOr<std::string> r = coordinator_.endpoint().Call(
        endpoint, handler,
        absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()),
        o_.timeout, give_up);
    if (coordinator_.endpoint().given_up() != given_up) ++stats_.gave_up;
    return r;
  }

  absl::StatusOr<std::string> Finish(const std::string& bytes) {
    absl::StatusOr<ShipReply> reply = DecodeShipReply(bytes);
    if (!reply.ok()) {
      ++stats_.failed;
      return reply.status();
    }
    if (reply->remembered) ++stats_.remembered;
    const absl::Status s(static_cast<absl::StatusCode>(reply->code), reply->message);
    if (s.ok()) {
      ++stats_.committed;
      return std::move(reply->result);
    }
    ++(absl::IsAborted(s) ? stats_.aborted : absl::IsUnknown(s) ? stats_.unknown : stats_.failed);
    return s;
  }

  // The reply to `q` did not come: learn what happened to it. Without a
  // decision by outcome_timeout it is Unknown, and undecided: it may still
  // run, so the watermark stays at it until a later try learns its outcome.
  absl::StatusOr<std::string> Settle(Request q) {
    const absl::Time deadline = absl::Now() + o_.outcome_timeout;
    while (absl::Now() < deadline) {
      if (absl::optional<absl::StatusOr<std::string>> out = TrySettle(q)) return *std::move(out);
      absl::SleepFor(absl::Milliseconds(5));  // unreachable now, or recovery runs elsewhere: again
    }
    ++stats_.unknown;
    absl::Status unknown = absl::UnknownError(
        absl::StrCat("shipped transaction ", q.req.id, " to machine ", q.target,
                     ": outcome unknown (no decision within ",
                     absl::FormatDuration(o_.outcome_timeout), ") after: ", q.why.message()));
    q.retry_at = absl::Now() + o_.timeout;
    undecided_.emplace(q.seq, std::move(q));
    return unknown;
  }

  // One try at learning q's outcome: a resend while its machine is a member
  // and remembers it, else the participants' answers (nullopt: undecided).
  absl::optional<absl::StatusOr<std::string>> TrySettle(Request& q) {
    if (hooks_.refresh) hooks_.refresh().IgnoreError();  // a CM unreachable now: try again later
    const std::vector<fabric::MachineId> machines = hooks_.machines();
    if (!q.forgotten && std::find(machines.begin(), machines.end(), q.target) != machines.end()) {
      // Still a member: the same request again. It queues behind the first
      // copy on the same ring, so the machine has run (and remembered) or
      // refused that one by the time it reads this one.
      ++stats_.resent;
      absl::StatusOr<std::string> r = Send(q.worker, q.bytes);
      if (!r.ok()) {
        q.why = r.status();
        return absl::nullopt;  // unreachable (e.g. dead: until the CM removes it), or still running
                               // it
      }
      if (!RefusedInLaterConfiguration(*r, q.req)) return Finish(*r);
      q.forgotten = true;
      ++stats_.forgotten;
      q.why = absl::UnavailableError(absl::StrCat("machine ", q.target,
                                                  " is in a later configuration and does not "
                                                  "remember the request (restarted?)"));
    }
    absl::optional<absl::Status> decided = AskOutcome(q.req, machines);
    if (!decided) return absl::nullopt;
    ++stats_.outcome_asked;
    if (decided->ok()) {
      ++stats_.unknown;
      return absl::UnknownError(absl::StrCat("shipped transaction ", q.req.id,
                                             " committed (decided by recovery "
                                             "after machine ",
                                             q.target, " failed) but its result was lost"));
    }
    ++(absl::IsAborted(*decided) ? stats_.aborted : stats_.failed);
    return *decided;
  }

  // Tries again, once per `timeout` each, to learn the outcome of the
  // requests given up as Unknown; a learned one is settled.
  void SettleUndecided() {
    const absl::Time now = absl::Now();
    for (auto it = undecided_.begin(); it != undecided_.end();) {
      if (now < it->second.retry_at) {
        ++it;
        continue;
      }
      absl::optional<absl::StatusOr<std::string>> out = TrySettle(it->second);
      if (!out) {
        it->second.retry_at = absl::Now() + o_.timeout;
        ++it;
        continue;
      }
      ++stats_.settled_late;
      settled_.emplace(it->first, std::make_pair(it->second.req.id, *std::move(out)));
      while (settled_.size() > kSettledKept) settled_.erase(settled_.begin());
      it = undecided_.erase(it);
    }
  }

  // A reply refusing the request, not from remembered replies, by a machine
  // in a later configuration than the request's.
  static bool RefusedInLaterConfiguration(const std::string& bytes, const ShipRequest& req) {
    absl::StatusOr<ShipReply> reply = DecodeShipReply(bytes);
    return reply.ok() && !reply->remembered && reply->code == static_cast<int>(absl::StatusCode::kUnavailable) &&
           reply->config > req.config;
  }

  // OK: committed; Aborted: aborted by recovery; Unavailable: never
  // committed and never will; nullopt: not decided yet.
  absl::optional<absl::Status> AskOutcome(const ShipRequest& req, const std::vector<fabric::MachineId>& machines) {
    if (machines.empty()) return absl::nullopt;
    const std::string ask = tx::Encode(tx::TxRequest{req.config, req.id});
    bool all_past = true;
    for (fabric::MachineId m : machines) {
      absl::StatusOr<std::string> r = Call(m, tx::kOutcome, ask);
      absl::StatusOr<tx::Reply> reply = r.ok() ? tx::DecodeReply(*r) : absl::StatusOr<tx::Reply>(r.status());
      if (!reply.ok() || !tx::StatusOf(*reply).ok()) {
        all_past = false;
        continue;
      }
      if (reply->value == static_cast<uint64_t>(tx::Outcome::kCommitted)) return absl::OkStatus();
      if (reply->value == static_cast<uint64_t>(tx::Outcome::kAborted)) {
        return absl::AbortedError(absl::StrCat("shipped transaction ", req.id, " aborted by recovery"));
      }
      if (reply->aux <= req.config) all_past = false;  // still in (or recovering from) the request's configuration
    }
    if (!all_past) return absl::nullopt;
    return absl::UnavailableError(absl::StrCat("shipped transaction ", req.id, " did not commit: its machine failed "
                                               "and no participant holds a record of it"));
  }

  tx::TxClient<F>& coordinator_;
  RegionTable::Cache cache_;
  const std::atomic<uint64_t>* config_;
  const ShipperHooks hooks_;
  const ShipperOptions o_;
  uint64_t seq_;
  tx::TxId last_ = 0;
  // Requests given up as Unknown without a decision, by sequence (the
  // oldest is the watermark), and the outcomes learned of them since, until
  // Outcome returns them (the oldest go beyond kSettledKept).
  absl::btree_map<uint64_t, Request> undecided_;
  static constexpr size_t kSettledKept = 1 << 12;
  absl::btree_map<uint64_t, std::pair<tx::TxId, absl::StatusOr<std::string>>> settled_;
  ShipperStats stats_;
};

}  // namespace dctk::farm::client

#endif  // DCTK_FARM_CLIENT_SHIPPER_H_
