// Bank: the bank-transfer workload over FaRM transactions. Accounts are
// 8-byte balances; a transfer moves a random amount between two random
// accounts in one read-write transaction; an audit reads every account in a
// read-only transaction. The total balance never changes, and a ledger of the
// transfers reported committed must explain every final balance exactly (no
// lost or duplicated commit).
//
// A coordinator that must settle transfers whose outcome it did not learn
// (Commit returned Unknown across a failure) gives them a Journal: an 8-byte
// counter object it alone writes, incremented by every transfer of that
// coordinator in the same transaction, so the counter's value is the id of
// the coordinator's last committed transfer. Settle() reads it to decide the
// pending transfer; CheckJournal() at the end finds a transfer that committed
// without being counted, or was counted without committing.
//
// Example:
//   absl::StatusOr<Bank> bank = Bank::Create(client, /*accounts=*/16, /*initial=*/1000);
//   Bank::Ledger ledger;
//   absl::Status s = bank->Transfer(client, rng, &ledger);   // Aborted: retry
//   absl::StatusOr<uint64_t> total = bank->Audit(client);
//   absl::Status ok = bank->CheckLedger(client, ledger);
#ifndef DCTK_FARM_WORKLOAD_BANK_H_
#define DCTK_FARM_WORKLOAD_BANK_H_

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "farm/core/address.h"
#include "farm/tx/transaction.h"

namespace dctk::farm::workload {

class Bank {
 public:
  // Net change per account from transfers reported committed.
  struct Ledger {
    std::vector<int64_t> delta;
    uint64_t committed = 0;
    void Merge(const Ledger& o) {
      if (delta.size() < o.delta.size()) delta.resize(o.delta.size());
      for (size_t i = 0; i < o.delta.size(); ++i) delta[i] += o.delta[i];
      committed += o.committed;
    }
  };

  template <typename Client>
  static absl::StatusOr<Bank> Create(Client& client, int accounts, uint64_t initial) {
    Bank bank(initial);
    for (int i = 0; i < accounts; ++i) {
      auto tx = client.Begin();
      absl::StatusOr<GlobalAddress> a = tx.Alloc(8);
      if (!a.ok()) return a.status();
      absl::Status s = tx.Write(*a, Encode(initial));
      if (s.ok()) s = tx.Commit();
      if (!s.ok()) return s;
      bank.accounts_.push_back(*a);
    }
    return bank;
  }
  // An existing bank (addresses published by whoever created it).
  Bank(std::vector<GlobalAddress> accounts, uint64_t initial) : accounts_(std::move(accounts)), initial_(initial) {}

  // One coordinator's transfer counter and its transfer of unknown outcome.
  struct Journal {
    GlobalAddress counter;
    uint64_t committed = 0;  // this coordinator's transfers in the ledger
    bool pending = false;    // a transfer whose Commit returned Unknown
    int from = 0, to = 0;
    uint64_t amount = 0;
    uint64_t settled_committed = 0, settled_aborted = 0;  // pending ones decided by Settle
  };

  template <typename Client>
  static absl::StatusOr<Journal> CreateJournal(Client& client) {
    auto tx = client.Begin();
    absl::StatusOr<GlobalAddress> a = tx.Alloc(8);
    if (!a.ok()) return a.status();
    absl::Status s = tx.Write(*a, Encode(0));
    if (s.ok()) s = tx.Commit();
    if (!s.ok()) return s;
    Journal j;
    j.counter = *a;
    return j;
  }

  // What one transfer attempt moves; `id` is its journal id (the counter's
  // value if it commits; 0 without a journal). An attempt that does not
  // commit leaves its id to the next one.
  struct Move {
    int from = 0, to = 0;
    uint64_t amount = 0;
    uint64_t id = 0;
  };
  // Writes nothing more (Transfer's default `also`).
  struct NothingElse {
    template <typename Tx>
    absl::Status operator()(Tx&, const Move&) const {
      return absl::OkStatus();
    }
  };

  // A random transfer. With a journal, a pending transfer is settled first
  // (its error returned if it cannot be yet) and the counter is incremented in
  // the transfer's transaction; Unknown leaves the transfer pending.
  // `also(tx, move)` runs in the transfer's transaction before its commit
  // (e.g. a hashtable update that commits or aborts with the transfer); its
  // error ends the attempt.
  template <typename Client, typename Also = NothingElse>
  absl::Status Transfer(Client& client, std::mt19937_64& rng, Ledger* ledger, Journal* journal = nullptr,
                        const Also& also = Also()) const {
    if (journal != nullptr && journal->pending) {
      absl::Status s = Settle(client, journal, ledger);
      if (!s.ok()) return s;
    }
    const int n = static_cast<int>(accounts_.size());
    const int from = static_cast<int>(rng() % n);
    const int to = static_cast<int>((from + 1 + rng() % (n - 1)) % n);
    auto tx = client.Begin();
    absl::StatusOr<std::string> a = tx.Read(accounts_[from], 8);
    if (!a.ok()) return a.status();
    absl::StatusOr<std::string> b = tx.Read(accounts_[to], 8);
    if (!b.ok()) return b.status();
    const uint64_t amount = std::min<uint64_t>(Decode(*a), rng() % 100);
    absl::Status s = tx.Write(accounts_[from], Encode(Decode(*a) - amount));
    if (s.ok()) s = tx.Write(accounts_[to], Encode(Decode(*b) + amount));
    if (s.ok() && journal != nullptr) s = tx.Write(journal->counter, Encode(journal->committed + 1));
    if (s.ok()) s = also(tx, Move{from, to, amount, journal != nullptr ? journal->committed + 1 : 0});
    if (s.ok()) s = tx.Commit();
    if (s.ok()) {
      Apply(from, to, amount, ledger);
      if (journal != nullptr) ++journal->committed;
    } else if (journal != nullptr && absl::IsUnknown(s)) {
      journal->pending = true;
      journal->from = from;
      journal->to = to;
      journal->amount = amount;
    }
    return s;
  }

  // Decides the journal's pending transfer from its counter: committed iff
  // the counter holds its id. An error (e.g. the counter still locked while
  // recovery decides) leaves it pending.
  template <typename Client>
  absl::Status Settle(Client& client, Journal* journal, Ledger* ledger) const {
    absl::StatusOr<uint64_t> counter = ReadCounter(client, *journal);
    if (!counter.ok()) return counter.status();
    if (*counter == journal->committed + 1) {
      Apply(journal->from, journal->to, journal->amount, ledger);
      ++journal->committed;
      ++journal->settled_committed;
    } else if (*counter == journal->committed) {
      ++journal->settled_aborted;
    } else {
      return absl::DataLossError(absl::StrCat("journal at ", journal->counter.ToString(), " holds ", *counter,
                                              " but the coordinator counted ", journal->committed));
    }
    journal->pending = false;
    return absl::OkStatus();
  }

  // OK iff the counter equals the transfers this coordinator counted.
  template <typename Client>
  absl::Status CheckJournal(Client& client, const Journal& journal) const {
    absl::StatusOr<uint64_t> counter = ReadCounter(client, journal);
    if (!counter.ok()) return counter.status();
    if (*counter != journal.committed) {
      return absl::DataLossError(absl::StrCat("journal at ", journal.counter.ToString(), ": ", *counter,
                                              " transfers committed, ", journal.committed, " counted"));
    }
    return absl::OkStatus();
  }

  // The total over a consistent snapshot (read-only transaction).
  template <typename Client>
  absl::StatusOr<uint64_t> Audit(Client& client) const {
    absl::StatusOr<std::vector<uint64_t>> b = Balances(client);
    if (!b.ok()) return b.status();
    uint64_t sum = 0;
    for (uint64_t v : *b) sum += v;
    return sum;
  }

  template <typename Client>
  absl::StatusOr<std::vector<uint64_t>> Balances(Client& client) const {
    auto tx = client.Begin();
    std::vector<uint64_t> out;
    for (GlobalAddress a : accounts_) {
      absl::StatusOr<std::string> v = tx.Read(a, 8);
      if (!v.ok()) return v.status();
      out.push_back(Decode(*v));
    }
    absl::Status s = tx.Commit();
    if (!s.ok()) return s;
    return out;
  }

  // OK iff the total is intact and every balance equals initial + its ledger delta.
  template <typename Client>
  absl::Status CheckLedger(Client& client, const Ledger& ledger) const {
    absl::StatusOr<std::vector<uint64_t>> b = Balances(client);
    if (!b.ok()) return b.status();
    uint64_t sum = 0;
    for (size_t i = 0; i < b->size(); ++i) {
      sum += (*b)[i];
      const int64_t want = static_cast<int64_t>(initial_) + (i < ledger.delta.size() ? ledger.delta[i] : 0);
      if (static_cast<int64_t>((*b)[i]) != want) {
        return absl::DataLossError(absl::StrCat("account ", i, " at ", accounts_[i].ToString(), " holds ", (*b)[i],
                                                " but the committed transfers say ", want));
      }
    }
    if (sum != initial_ * accounts_.size()) {
      return absl::DataLossError(absl::StrCat("total balance ", sum, " != ", initial_ * accounts_.size()));
    }
    return absl::OkStatus();
  }

  const std::vector<GlobalAddress>& accounts() const { return accounts_; }
  uint64_t total() const { return initial_ * accounts_.size(); }

 private:
  explicit Bank(uint64_t initial) : initial_(initial) {}
  void Apply(int from, int to, uint64_t amount, Ledger* ledger) const {
    if (ledger->delta.size() < accounts_.size()) ledger->delta.resize(accounts_.size());
    ledger->delta[from] -= static_cast<int64_t>(amount);
    ledger->delta[to] += static_cast<int64_t>(amount);
    ++ledger->committed;
  }
  template <typename Client>
  static absl::StatusOr<uint64_t> ReadCounter(Client& client, const Journal& journal) {
    auto tx = client.Begin();
    absl::StatusOr<std::string> v = tx.Read(journal.counter, 8);
    if (!v.ok()) return v.status();
    absl::Status s = tx.Commit();
    if (!s.ok()) return s;
    return Decode(*v);
  }
  static std::string Encode(uint64_t v) { return std::string(reinterpret_cast<const char*>(&v), 8); }
  static uint64_t Decode(const std::string& s) {
    uint64_t v = 0;
    std::memcpy(&v, s.data(), std::min<size_t>(8, s.size()));
    return v;
  }

  std::vector<GlobalAddress> accounts_;
  uint64_t initial_;
};

}  // namespace dctk::farm::workload

#endif  // DCTK_FARM_WORKLOAD_BANK_H_
