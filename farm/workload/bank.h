// Bank: the bank-transfer workload over FaRM transactions. Accounts are
// 8-byte balances; a transfer moves a random amount between two random
// accounts in one read-write transaction; an audit reads every account in a
// read-only transaction. The total balance never changes, and a ledger of the
// transfers reported committed must explain every final balance exactly (no
// lost or duplicated commit).
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

  template <typename Client>
  absl::Status Transfer(Client& client, std::mt19937_64& rng, Ledger* ledger) const {
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
    if (s.ok()) s = tx.Commit();
    if (s.ok()) {
      if (ledger->delta.size() < accounts_.size()) ledger->delta.resize(accounts_.size());
      ledger->delta[from] -= static_cast<int64_t>(amount);
      ledger->delta[to] += static_cast<int64_t>(amount);
      ++ledger->committed;
    }
    return s;
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
