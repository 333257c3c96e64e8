// ShardBank: the bank workload (bank.h) with accounts grouped in shards, one
// region per shard, and transfers inside one shard: each is a
// single-machine transaction, which a client either coordinates itself
// (Transfer) or ships to the shard's primary (TransferShipped, procedure
// kShardTransfer, farm/client/ship.h), the way FaRM runs TATP. Both move the
// same amounts between the same accounts, so they can be compared in one run.
//
// Each client has a Journal per shard: a counter object in the shard's
// region, incremented by every transfer of that client in that shard in the
// same transaction, so a transfer of unknown outcome (Unknown: the shipped
// transaction's executing machine failed, or a commit's outcome was not
// learned) is settled from the counter (Settle) instead of being retried
// blindly; CheckLedger (bank.h) then finds any lost or duplicated commit.
//
// Example:
//   absl::StatusOr<ShardBank> bank = ShardBank::Create(tx_client, regions, /*per_shard=*/8, /*initial=*/1000);
//   absl::StatusOr<ShardBank::Journal> j = bank->CreateJournal(tx_client);
//   ShardBank::Move m = bank->Pick(rng);
//   absl::Status s = bank->TransferShipped(ship, m, &ledger, &*j);   // or Transfer(tx_client, m, ...)
//   absl::Status ok = bank->AsBank().CheckLedger(tx_client, ledger);
#ifndef DCTK_FARM_WORKLOAD_SHARD_BANK_H_
#define DCTK_FARM_WORKLOAD_SHARD_BANK_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "farm/client/ship.h"
#include "farm/core/address.h"
#include "farm/core/region_table.h"
#include "farm/tx/transaction.h"
#include "farm/workload/bank.h"

namespace dctk::farm::workload {

constexpr client::ProcedureId kShardTransfer = 10;

// One transfer: `amount` from account `from` to `to` (both in `shard`), and
// the journal counter set to `journal_id` (no journal: null address).
struct ShardTransferArgs {
  GlobalAddress from, to, journal;
  uint64_t amount = 0, journal_id = 0;
};
std::string Encode(const ShardTransferArgs& a);
absl::StatusOr<ShardTransferArgs> DecodeShardTransferArgs(absl::string_view bytes);

// The transfer's transaction body, wherever it runs: FailedPrecondition
// (nothing written) if `from` holds less than the amount.
template <typename Tx>
absl::Status RunShardTransfer(Tx& t, const ShardTransferArgs& a) {
  absl::StatusOr<std::string> from = t.Read(a.from, 8);
  if (!from.ok()) return from.status();
  absl::StatusOr<std::string> to = t.Read(a.to, 8);
  if (!to.ok()) return to.status();
  const uint64_t have = client::DecodeU64(*from);
  if (have < a.amount) {
    return absl::FailedPreconditionError(
        absl::StrCat("account ", a.from.ToString(), " holds ", have, ", less than ", a.amount));
  }
  absl::Status s = t.Write(a.from, client::EncodeU64(have - a.amount));
  if (s.ok()) s = t.Write(a.to, client::EncodeU64(client::DecodeU64(*to) + a.amount));
  if (s.ok() && !a.journal.is_null()) s = t.Write(a.journal, client::EncodeU64(a.journal_id));
  return s;
}

// Registers kShardTransfer (args: ShardTransferArgs; result: empty).
template <typename F>
absl::Status RegisterShardBankProcedures(client::ProcedureRegistry<F>& procedures) {
  return procedures.Register(kShardTransfer, "shard_transfer",
                             [](tx::Transaction<F>& t, absl::string_view args) -> absl::StatusOr<std::string> {
                               absl::StatusOr<ShardTransferArgs> a = DecodeShardTransferArgs(args);
                               if (!a.ok()) return a.status();
                               absl::Status s = RunShardTransfer(t, *a);
                               if (!s.ok()) return s;
                               return std::string();
                             });
}

class ShardBank {
 public:
  struct Move {
    int shard = 0, from = 0, to = 0;  // from / to: indexes in the shard
    uint64_t amount = 0;
  };
  // A client's transfer counters, one per shard, and its transfer of unknown outcome.
  struct Journal {
    std::vector<GlobalAddress> counters;
    std::vector<uint64_t> committed;
    bool pending = false;
    Move move;
    uint64_t settled_committed = 0, settled_aborted = 0;
  };

  // `per_shard` accounts in each of `regions` (allocated at each region's
  // primary by `client`, a coordinator).
  template <typename Client>
  static absl::StatusOr<ShardBank> Create(Client& client, const std::vector<RegionId>& regions, int per_shard,
                                          uint64_t initial) {
    if (regions.empty() || per_shard < 2) {
      return absl::InvalidArgumentError("ShardBank: needs a region and at least 2 accounts per shard");
    }
    ShardBank bank(initial, per_shard);
    for (RegionId r : regions) {
      auto t = client.Begin();
      for (int i = 0; i < per_shard; ++i) {
        absl::StatusOr<GlobalAddress> a = t.Alloc(8, GlobalAddress(r, 0));
        if (!a.ok()) return a.status();
        if (absl::Status s = t.Write(*a, client::EncodeU64(initial)); !s.ok()) return s;
        bank.accounts_.push_back(*a);
      }
      if (absl::Status s = t.Commit(); !s.ok()) return s;
    }
    return bank;
  }

  template <typename Client>
  absl::StatusOr<Journal> CreateJournal(Client& client) const {
    Journal j;
    auto t = client.Begin();
    for (int s = 0; s < shards(); ++s) {
      absl::StatusOr<GlobalAddress> a = t.Alloc(8, account(s, 0));
      if (!a.ok()) return a.status();
      if (absl::Status st = t.Write(*a, client::EncodeU64(0)); !st.ok()) return st;
      j.counters.push_back(*a);
      j.committed.push_back(0);
    }
    if (absl::Status s = t.Commit(); !s.ok()) return s;
    return j;
  }

  Move Pick(std::mt19937_64& rng) const {
    Move m;
    m.shard = static_cast<int>(rng() % shards());
    m.from = static_cast<int>(rng() % per_shard_);
    m.to = static_cast<int>((m.from + 1 + rng() % (per_shard_ - 1)) % per_shard_);
    m.amount = rng() % 10;
    return m;
  }

  // The transfer coordinated by `client` itself.
  template <typename Client>
  absl::Status Transfer(Client& client, const Move& m, Bank::Ledger* ledger, Journal* journal) const {
    if (absl::Status s = SettlePending(client, journal, ledger); !s.ok()) return s;
    auto t = client.Begin();
    absl::Status s = RunShardTransfer(t, Args(m, journal));
    if (s.ok()) {
      s = t.Commit();
    } else {
      t.Abort();
    }
    return Done(s, m, ledger, journal);
  }

  // The transfer shipped to the shard's primary: `ship(where, procedure,
  // args)` is client::Shipper::Ship or FarmClient::Ship. `client` (a
  // coordinator) reads a journal to settle a transfer of unknown outcome.
  template <typename Client, typename Ship>
  absl::Status TransferShipped(Client& client, Ship& ship, const Move& m, Bank::Ledger* ledger,
                               Journal* journal) const {
    if (absl::Status s = SettlePending(client, journal, ledger); !s.ok()) return s;
    absl::StatusOr<std::string> r = ship(account(m.shard, 0), kShardTransfer, Encode(Args(m, journal)));
    return Done(r.status(), m, ledger, journal);
  }

  // Decides the journal's pending transfer from its counter (an error, e.g.
  // the counter still locked while recovery runs, leaves it pending).
  template <typename Client>
  absl::Status SettlePending(Client& client, Journal* journal, Bank::Ledger* ledger) const {
    if (journal == nullptr || !journal->pending) return absl::OkStatus();
    const int s = journal->move.shard;
    absl::StatusOr<uint64_t> counter = ReadCounter(client, journal->counters[s]);
    if (!counter.ok()) return counter.status();
    if (*counter == journal->committed[s] + 1) {
      Apply(journal->move, ledger);
      ++journal->committed[s];
      ++journal->settled_committed;
    } else if (*counter == journal->committed[s]) {
      ++journal->settled_aborted;
    } else {
      return absl::DataLossError(absl::StrCat("journal at ", journal->counters[s].ToString(), " holds ", *counter,
                                              " but the client counted ", journal->committed[s]));
    }
    journal->pending = false;
    return absl::OkStatus();
  }

  // OK iff every journal counter equals the transfers its client counted.
  template <typename Client>
  absl::Status CheckJournal(Client& client, const Journal& journal) const {
    for (size_t s = 0; s < journal.counters.size(); ++s) {
      absl::StatusOr<uint64_t> counter = ReadCounter(client, journal.counters[s]);
      if (!counter.ok()) return counter.status();
      if (*counter != journal.committed[s]) {
        return absl::DataLossError(absl::StrCat("journal of shard ", s, " at ", journal.counters[s].ToString(), ": ",
                                                *counter, " transfers committed, ", journal.committed[s], " counted"));
      }
    }
    return absl::OkStatus();
  }

  // The accounts as a Bank: Audit, Balances, CheckLedger.
  Bank AsBank() const { return Bank(accounts_, initial_); }
  int shards() const { return static_cast<int>(accounts_.size()) / per_shard_; }
  GlobalAddress account(int shard, int i) const { return accounts_[shard * per_shard_ + i]; }

 private:
  ShardBank(uint64_t initial, int per_shard) : initial_(initial), per_shard_(per_shard) {}

  ShardTransferArgs Args(const Move& m, const Journal* journal) const {
    ShardTransferArgs a{account(m.shard, m.from), account(m.shard, m.to), GlobalAddress(), m.amount, 0};
    if (journal != nullptr) {
      a.journal = journal->counters[m.shard];
      a.journal_id = journal->committed[m.shard] + 1;
    }
    return a;
  }

  // Books a finished attempt: committed into the ledger; Unknown pending.
  absl::Status Done(absl::Status s, const Move& m, Bank::Ledger* ledger, Journal* journal) const {
    if (s.ok()) {
      Apply(m, ledger);
      if (journal != nullptr) ++journal->committed[m.shard];
    } else if (absl::IsUnknown(s) && journal != nullptr) {
      journal->pending = true;
      journal->move = m;
    }
    return s;
  }

  void Apply(const Move& m, Bank::Ledger* ledger) const {
    if (ledger->delta.size() < accounts_.size()) ledger->delta.resize(accounts_.size());
    ledger->delta[m.shard * per_shard_ + m.from] -= static_cast<int64_t>(m.amount);
    ledger->delta[m.shard * per_shard_ + m.to] += static_cast<int64_t>(m.amount);
    ++ledger->committed;
  }

  template <typename Client>
  static absl::StatusOr<uint64_t> ReadCounter(Client& client, GlobalAddress counter) {
    auto t = client.Begin();
    absl::StatusOr<std::string> v = t.Read(counter, 8);
    if (!v.ok()) return v.status();
    if (absl::Status s = t.Commit(); !s.ok()) return s;
    return client::DecodeU64(*v);
  }

  std::vector<GlobalAddress> accounts_;  // shard s: [s * per_shard_, (s + 1) * per_shard_)
  uint64_t initial_;
  int per_shard_;
};

}  // namespace dctk::farm::workload

#endif  // DCTK_FARM_WORKLOAD_SHARD_BANK_H_
