// A participant's memory of transaction outcomes (participant.h): per
// coordinator stream, from its truncation watermark up.
#include <cstring>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "farm/tx/participant.h"

namespace dctk::farm::tx {

void Participant::Remember(TxId tx, Outcome o) {
  Stream& s = streams_[TxStream(tx)];
  // Below the watermark: its coordinator knows, and no recovery asks (while
  // one runs, it may: kept until it ends).
  if (s.watermark != 0 && TxBefore(tx, s.watermark) && !Recovering()) return;
  s.outcomes.emplace(tx, o);
}

void Participant::Truncated(TxId watermark) {
  if (watermark == 0) return;
  Stream& s = streams_[TxStream(watermark)];
  if (s.watermark != 0 && !TxBefore(s.watermark, watermark)) return;  // a late message
  s.watermark = watermark;
  if (Recovering()) return;
  absl::erase_if(s.outcomes, [&](const auto& o) { return TxBefore(o.first, watermark); });
}

void Participant::ForgetFinished() {
  if (Recovering()) return;
  // A coordinator removed by the configuration keeps what it had not
  // finished: removed while alive, it may still ask OUTCOME of a commit that
  // recovery decided (so at most its in-flight transactions stay).
  for (auto& [stream, s] : streams_) {
    if (s.watermark == 0) continue;
    absl::erase_if(s.outcomes, [&](const auto& o) { return TxBefore(o.first, s.watermark); });
  }
}

std::string Participant::WatermarkRecord(TxId watermark) {
  if (watermark == 0) return std::string();
  return std::string(reinterpret_cast<const char*>(&watermark), sizeof(watermark));
}

absl::Status Participant::ReplayWatermark(const LogRecord& rec) {
  if (rec.payload.empty()) return absl::OkStatus();  // none told (or a log of an older farmd)
  TxId watermark = 0;
  if (rec.payload.size() == sizeof(watermark)) {
    std::memcpy(&watermark, rec.payload.data(), sizeof(watermark));
  }
  if (watermark == 0 || TxStream(watermark) != TxStream(rec.tx) || TxBefore(rec.tx, watermark)) {
    return absl::DataLossError(absl::StrCat("machine ", self_, ": log record ", rec.lsn, " (",
                                            LogTypeName(rec.type), " of transaction ", rec.tx,
                                            "): malformed truncation watermark (",
                                            rec.payload.size(), " bytes)"));
  }
  Truncated(watermark);
  return absl::OkStatus();
}

Outcome Participant::KnownHere(TxId tx) const {
  if (auto it = locked_.find(tx); it != locked_.end() && it->second.committed) {
    return Outcome::kCommitted;
  }
  auto s = streams_.find(TxStream(tx));
  if (s == streams_.end()) return Outcome::kUnknown;
  if (auto it = s->second.outcomes.find(tx); it != s->second.outcomes.end()) return it->second;
  if (s->second.watermark != 0 && TxBefore(tx, s->second.watermark)) return Outcome::kFinished;
  return Outcome::kUnknown;
}

Outcome Participant::Known(TxId tx) const {
  absl::ReaderMutexLock l(&mu_);
  return KnownHere(tx);
}

bool Participant::Decided(TxId tx) const { return KnownHere(tx) != Outcome::kUnknown; }

absl::Status Participant::RefuseDecided(TxId tx, const char* what) const {
  const Outcome o = KnownHere(tx);
  if (o == Outcome::kUnknown) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      what, " refused by machine ", self_, ": transaction ", tx,
      o == Outcome::kCommitted ? " already committed here"
      : o == Outcome::kAborted ? " already aborted here"
                               : " is below its coordinator's truncation point (finished)"));
}

size_t Participant::remembered_outcomes() const {
  absl::ReaderMutexLock l(&mu_);
  size_t n = 0;
  for (const auto& [stream, s] : streams_) n += s.outcomes.size();
  return n;
}

}  // namespace dctk::farm::tx
