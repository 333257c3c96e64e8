// TATP transactions shipped to the primary of their subscriber's rows, as
// FaRM runs TATP (SOSP'15, section 6): every row of a subscriber is
// allocated near its Subscriber row (tatp.h), so each transaction is a
// single-machine transaction there. Procedure kTatpTx runs Tatp::Run on the
// machine with the subscriber's directory entry and the transaction's draw
// as its arguments.
//
// RunOneShipped ships the read-write transactions (20% of the mix) and, with
// `ship_read_only`, the read-only ones too; otherwise those stay one-sided
// lock-free reads by the client, which need no message at all.
//
// Example:
//   RegisterTatpProcedures(*procedures);   // on every machine
//   absl::Status s = tatp.RunOneShipped(client, ship, rng, &kind, /*ship_read_only=*/false);
#ifndef DCTK_FARM_WORKLOAD_TATP_SHIP_H_
#define DCTK_FARM_WORKLOAD_TATP_SHIP_H_

#include <random>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "farm/client/ship.h"
#include "farm/tx/transaction.h"
#include "farm/workload/tatp.h"

namespace dctk::farm::workload {

constexpr client::ProcedureId kTatpTx = 20;

std::string EncodeTatpArgs(const Tatp::Directory& d, const TatpDraw& draw);
absl::Status DecodeTatpArgs(absl::string_view bytes, Tatp::Directory* d, TatpDraw* draw);

template <typename F>
absl::Status RegisterTatpProcedures(client::ProcedureRegistry<F>& procedures) {
  return procedures.Register(kTatpTx, "tatp",
                             [](tx::Transaction<F>& t, absl::string_view args) -> absl::StatusOr<std::string> {
                               Tatp::Directory d;
                               TatpDraw draw;
                               if (absl::Status s = DecodeTatpArgs(args, &d, &draw); !s.ok()) return s;
                               if (absl::Status s = Tatp::Run(t, d, draw); !s.ok()) return s;
                               return std::string();
                             });
}

// One transaction of the mix, shipped (`ship(where, procedure, args)`:
// client::Shipper::Ship or FarmClient::Ship) or, if read-only and not
// `ship_read_only`, run by `client` itself.
template <typename Client, typename Ship>
absl::Status RunOneShipped(const Tatp& tatp, Client& client, Ship& ship, std::mt19937_64& rng, TatpTx* kind,
                           bool ship_read_only) {
  const Tatp::Directory& d = tatp.PickSubscriber(rng);
  const TatpDraw draw = TatpDrawTx(rng);
  *kind = draw.kind;
  if (IsReadOnly(draw.kind) && !ship_read_only) {
    auto t = client.Begin();
    absl::Status s = Tatp::Run(t, d, draw);
    if (!s.ok()) return s;
    return t.Commit();
  }
  return ship(d.subscriber, kTatpTx, EncodeTatpArgs(d, draw)).status();
}

}  // namespace dctk::farm::workload

#endif  // DCTK_FARM_WORKLOAD_TATP_SHIP_H_
