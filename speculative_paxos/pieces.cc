#include "speculative_paxos/pieces.h"

#include <algorithm>
#include <utility>

#include "common/transport/framing.h"
#include "google/protobuf/io/coded_stream.h"
#include "speculative_paxos/log.h"

namespace dctk::spaxos {

size_t PayloadBudget(int max_datagram) {
  const size_t d = static_cast<size_t>(std::max(max_datagram, 0));
  return d > transport::kFrameHeaderSize ? d - transport::kFrameHeaderSize : 1;
}

size_t EntryBytes(const Entry& e) {
  const size_t len = e.ByteSizeLong();
  // Tag (field numbers < 16: one byte) and length prefix.
  return 1 + google::protobuf::io::CodedOutputStream::VarintSize64(len) + len;
}

bool PieceAssembler::AddEntries(std::string header, uint64_t base, uint64_t end,
                                google::protobuf::RepeatedPtrField<Entry>* entries) {
  if (end < base) return false;
  if (!active_ || header != header_) {
    Clear();
    active_ = true;
    header_ = std::move(header);
    base_ = base;
    end_ = end;
  }
  for (Entry& e : *entries) {
    if (e.slot() > base_ && e.slot() <= end_) entries_.try_emplace(e.slot(), std::move(e));
  }
  return entries_.size() == end_ - base_;
}

uint64_t PieceAssembler::FirstMissing() const {
  if (empty()) return 0;
  uint64_t next = base_ + 1;
  for (const auto& [slot, e] : entries_) {
    if (slot != next) break;
    ++next;
  }
  return next;
}

bool PieceAssembler::Take(absl::string_view base_hash,
                          google::protobuf::RepeatedPtrField<Entry>* out) {
  if (empty() || entries_.size() != end_ - base_) return false;
  std::string prev(base_hash);
  for (const auto& [slot, e] : entries_) {
    if (ChainHash(prev, e.client_id(), e.request_id(), e.op()) != e.hash()) {
      Clear();
      return false;
    }
    prev = e.hash();
  }
  out->Clear();
  out->Reserve(static_cast<int>(entries_.size()));
  for (auto& [slot, e] : entries_) *out->Add() = std::move(e);
  Clear();
  return true;
}

void PieceAssembler::Clear() {
  active_ = false;
  header_.clear();
  base_ = end_ = 0;
  entries_.clear();
}

}  // namespace dctk::spaxos
