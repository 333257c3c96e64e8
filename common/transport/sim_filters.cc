// SimTransport's canned fault-injection filters.
#include <algorithm>
#include <utility>

#include "common/transport/sim_transport.h"
#include "glog/logging.h"

namespace dctk::transport {

SimTransport::Filter SimTransport::DropWithProbability(double p, Match match) {
  return [this, p, match](const Address& from, const Address& to, const Envelope& msg,
                          absl::Duration*) {
    if (!match.Matches(from, to, msg)) return true;
    return RandomUnit() >= p;
  };
}

SimTransport::Filter SimTransport::Delay(absl::Duration d, Match match) {
  return [d, match](const Address& from, const Address& to, const Envelope& msg,
                    absl::Duration* extra) {
    if (match.Matches(from, to, msg)) *extra += d;
    return true;
  };
}

SimTransport::Filter SimTransport::RandomDelay(absl::Duration lo, absl::Duration hi,
                                               Match match) {
  CHECK_LE(lo, hi);
  return [this, lo, hi, match](const Address& from, const Address& to, const Envelope& msg,
                               absl::Duration* extra) {
    if (match.Matches(from, to, msg)) *extra += lo + (hi - lo) * RandomUnit();
    return true;
  };
}

SimTransport::Filter SimTransport::Duplicate(double p, absl::Duration spread, Match match) {
  return [this, p, spread, match](const Address& from, const Address& to,
                                  const Envelope& msg, absl::Duration*) {
    if (match.Matches(from, to, msg) && RandomUnit() < p) {
      ++duplicates_requested_;
      duplicate_spread_ = std::max(duplicate_spread_, spread);
    }
    return true;
  };
}

SimTransport::Filter SimTransport::Reorder(double p, absl::Duration max_extra, Match match) {
  return [this, p, max_extra, match](const Address& from, const Address& to,
                                     const Envelope& msg, absl::Duration* extra) {
    if (match.Matches(from, to, msg) && RandomUnit() < p) {
      // (1 - u) is in (0, 1]: a held-back copy is always actually delayed.
      *extra += max_extra * (1.0 - RandomUnit());
    }
    return true;
  };
}

SimTransport::Filter SimTransport::Partition(std::vector<Address> a, std::vector<Address> b) {
  absl::flat_hash_set<Address> side_a(a.begin(), a.end()), side_b(b.begin(), b.end());
  return [side_a = std::move(side_a), side_b = std::move(side_b)](
             const Address& from, const Address& to, const Envelope&, absl::Duration*) {
    bool across = (side_a.contains(from) && side_b.contains(to)) ||
                  (side_b.contains(from) && side_a.contains(to));
    return !across;
  };
}

}  // namespace dctk::transport
