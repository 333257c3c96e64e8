#include "speculative_paxos/lincheck.h"

#include <cstdint>
#include <map>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/types/optional.h"

namespace dctk::spaxos {
namespace {

using Value = absl::optional<std::string>;

// Applies `op` to the register; returns the result the store must give.
KvResult Apply(const KvOp& op, Value* value) {
  KvResult r;
  r.set_found(value->has_value());
  if (*value) r.set_value(**value);
  switch (op.type()) {
    case KvOp::GET:
      r.set_ok(value->has_value());
      break;
    case KvOp::PUT:
      r.set_ok(true);
      *value = op.value();
      break;
    case KvOp::CAS: {
      const bool swap =
          op.expect_absent() ? !value->has_value() : (*value && **value == op.expected());
      r.set_ok(swap);
      if (swap) *value = op.value();
      break;
    }
    default:
      break;
  }
  return r;
}

bool SameResult(const KvResult& a, const KvResult& b) {
  return a.ok() == b.ok() && a.found() == b.found() && a.value() == b.value();
}

class KeySearch {
 public:
  explicit KeySearch(std::vector<const KvEvent*> ops) : ops_(std::move(ops)) {
    for (size_t i = 0; i < ops_.size(); ++i) {
      if (ops_[i]->completed()) must_ |= uint64_t{1} << i;
    }
  }

  bool Run() { return Search(0, absl::nullopt); }

 private:
  bool Search(uint64_t done, const Value& value) {
    if ((done & must_) == must_) return true;
    if (!seen_.insert({done, value ? "1" + *value : "0"}).second) return false;
    // An op may go next only if it was invoked before every remaining op's
    // response (otherwise that op finished before this one began).
    absl::Time horizon = absl::InfiniteFuture();
    for (size_t i = 0; i < ops_.size(); ++i) {
      if (!(done >> i & 1)) horizon = std::min(horizon, ops_[i]->response);
    }
    for (size_t i = 0; i < ops_.size(); ++i) {
      if ((done >> i & 1) || ops_[i]->invoke > horizon) continue;
      Value next = value;
      KvResult expect = Apply(ops_[i]->op, &next);
      if (ops_[i]->completed() && !SameResult(expect, ops_[i]->result)) continue;
      if (Search(done | uint64_t{1} << i, next)) return true;
    }
    return false;
  }

  std::vector<const KvEvent*> ops_;
  uint64_t must_ = 0;
  absl::flat_hash_set<std::pair<uint64_t, std::string>> seen_;
};

}  // namespace

absl::Status CheckLinearizable(const KvHistory& history) {
  std::map<std::string, std::vector<const KvEvent*>> by_key;
  for (const KvEvent& e : history) by_key[e.op.key()].push_back(&e);
  for (const auto& [key, ops] : by_key) {
    if (ops.size() > 64) {
      return absl::InvalidArgumentError(
          absl::StrCat("key '", key, "' has ", ops.size(), " operations; the checker takes 64"));
    }
    if (!KeySearch(ops).Run()) {
      std::string detail;
      for (const KvEvent* e : ops) {
        absl::StrAppend(&detail, "\n  client ", e->client, " ", KvOp::Type_Name(e->op.type()),
                        " value=", e->op.value(), " expected=", e->op.expected(),
                        " [", absl::FormatTime(e->invoke), ", ",
                        e->completed() ? absl::FormatTime(e->response) : "pending", "] -> ok=",
                        e->result.ok(), " found=", e->result.found(), " value=",
                        e->result.value());
      }
      return absl::FailedPreconditionError(
          absl::StrCat("history of key '", key, "' is not linearizable:", detail));
    }
  }
  return absl::OkStatus();
}

}  // namespace dctk::spaxos
