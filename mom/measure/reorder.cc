#include "mom/measure/reorder.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_format.h"
#include "glog/logging.h"

namespace dctk::mom {
namespace {

// Number of inversions in `p` (pairs i < j with p[i] > p[j]), by merge sort.
uint64_t CountInversions(std::vector<int32_t> p) {
  std::vector<int32_t> tmp(p.size());
  uint64_t inversions = 0;
  for (size_t width = 1; width < p.size(); width *= 2) {
    for (size_t lo = 0; lo < p.size(); lo += 2 * width) {
      const size_t mid = std::min(lo + width, p.size());
      const size_t hi = std::min(lo + 2 * width, p.size());
      size_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi) {
        if (p[j] < p[i]) {
          inversions += mid - i;
          tmp[k++] = p[j++];
        } else {
          tmp[k++] = p[i++];
        }
      }
      while (i < mid) tmp[k++] = p[i++];
      while (j < hi) tmp[k++] = p[j++];
    }
    p.swap(tmp);
  }
  return inversions;
}

}  // namespace

std::string ReorderReport::ToString() const {
  return absl::StrFormat(
      "messages=%d reordered=%d reorder_rate=%.6f incomplete=%d duplicates=%d "
      "pair_inversion_rate=%.6g",
      messages, reordered, reorder_rate(), incomplete, duplicates, pair_inversion_rate());
}

ReorderMeter::ReorderMeter(int receivers) : order_(receivers), position_(receivers) {
  CHECK_GE(receivers, 1);
}

uint32_t ReorderMeter::IndexOf(MessageId msg) {
  auto [it, inserted] = index_.try_emplace(msg, static_cast<uint32_t>(index_.size()));
  return it->second;
}

void ReorderMeter::Record(int receiver, MessageId msg) {
  CHECK(receiver >= 0 && receiver < static_cast<int>(order_.size()))
      << "receiver " << receiver << " out of range";
  const uint32_t idx = IndexOf(msg);
  std::vector<int32_t>& pos = position_[receiver];
  if (pos.size() <= idx) pos.resize(idx + 1, -1);
  if (pos[idx] >= 0) {
    ++duplicates_;
    return;
  }
  pos[idx] = static_cast<int32_t>(order_[receiver].size());
  order_[receiver].push_back(idx);
}

ReorderReport ReorderMeter::Compute() const {
  ReorderReport report;
  report.duplicates = duplicates_;
  const size_t n = index_.size();
  const int receivers = static_cast<int>(order_.size());
  auto position = [&](int r, uint32_t idx) -> int32_t {
    return idx < position_[r].size() ? position_[r][idx] : -1;
  };

  std::vector<int> holders(n, 0);
  for (int r = 0; r < receivers; ++r) {
    for (uint32_t idx : order_[r]) ++holders[idx];
  }
  for (size_t i = 0; i < n; ++i) {
    if (holders[i] >= 2) ++report.messages;
    if (holders[i] < receivers) ++report.incomplete;
  }

  std::vector<bool> reordered(n, false);
  std::vector<int32_t> p;       // s's positions, in r's delivery order
  std::vector<uint32_t> ids;    // the message of each entry of p
  std::vector<int32_t> suffix_min;
  for (int r = 0; r < receivers; ++r) {
    for (int s = r + 1; s < receivers; ++s) {
      p.clear();
      ids.clear();
      for (uint32_t idx : order_[r]) {
        const int32_t q = position(s, idx);
        if (q < 0) continue;
        p.push_back(q);
        ids.push_back(idx);
      }
      const uint64_t m = p.size();
      report.compared_pairs += m * (m - 1) / 2;
      report.inverted_pairs += CountInversions(p);
      // A message is inverted with something iff an earlier one (in r's order)
      // comes later at s, or a later one comes earlier at s.
      suffix_min.assign(m + 1, std::numeric_limits<int32_t>::max());
      for (size_t i = m; i-- > 0;) suffix_min[i] = std::min(suffix_min[i + 1], p[i]);
      int32_t prefix_max = -1;
      for (size_t i = 0; i < m; ++i) {
        if (prefix_max > p[i] || suffix_min[i + 1] < p[i]) reordered[ids[i]] = true;
        prefix_max = std::max(prefix_max, p[i]);
      }
    }
  }
  for (size_t i = 0; i < n; ++i) report.reordered += reordered[i];
  return report;
}

}  // namespace dctk::mom
