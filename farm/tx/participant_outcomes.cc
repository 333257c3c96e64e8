// A participant's memory of transaction outcomes (participant.h): per
// coordinator stream, from its truncation watermark up.
#include <cstring>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "farm/tx/participant.h"

namespace dctk::farm::tx {

void Participant::Remember(TxId tx, Outcome o) {
  if (Retired(TxCoordinator(tx))) return;  // a removed coordinator's late ABORT, say
  Stream& s = streams_[TxStream(tx)];
  // Below the watermark: its coordinator knows, and no recovery asks (while
  // one runs, it may: kept until it ends).
  if (s.watermark != 0 && TxBefore(tx, s.watermark) && !Recovering()) return;
  s.outcomes.emplace(tx, o);
}

bool Participant::Truncated(const Watermark& w) {
  if (w.tx == 0 || Retired(TxCoordinator(w.tx))) return true;
  Stream& s = streams_[TxStream(w.tx)];
  if (w.incarnation != 0 && w.incarnation != s.incarnation) {
    if (w.incarnation < s.incarnation) return false;  // a late message of a replaced process
    if (s.incarnation != 0 || s.watermark != 0) {
      // A new process under this machine and slot (s.incarnation 0: one
      // from before incarnations were told). Its sequences start afresh, so
      // its predecessor's watermark says nothing about them; what the
      // predecessor left was decided by the recovery that removed it (its
      // outcomes are kept while a recovery runs).
      s.watermark = 0;
      if (!Recovering()) s.outcomes.clear();
    }
    s.incarnation = w.incarnation;
  }
  if (s.watermark != 0 && !TxBefore(s.watermark, w.tx)) return true;  // a late message
  s.watermark = w.tx;
  if (Recovering()) return true;
  absl::erase_if(s.outcomes, [&](const auto& o) { return TxBefore(o.first, w.tx); });
  return true;
}

absl::Status Participant::Replaced(TxId tx, const Watermark& w, const char* what) const {
  auto s = streams_.find(TxStream(tx));
  return absl::FailedPreconditionError(absl::StrCat(
      what, " refused by machine ", self_, ": transaction ", tx, " is of incarnation ",
      w.incarnation, " of coordinator ", TxCoordinator(tx), " (slot ", TxStream(tx) & 0xff,
      "), which incarnation ", s == streams_.end() ? 0 : s->second.incarnation, " replaced"));
}

bool Participant::Retired(fabric::MachineId coordinator) const {
  return removed_in_ != 0 && removed_in_ == config_ && !Recovering() &&
         removed_.contains(coordinator);
}

void Participant::ForgetFinished() {
  if (Recovering()) return;
  // A coordinator the configuration removed has nothing in flight any more
  // (recovery decided it): its stream goes whole, and OUTCOME of one of its
  // transactions says it was removed (QueryOutcome).
  absl::erase_if(streams_, [&](const auto& e) { return Retired(e.first >> 8); });
  for (auto& [stream, s] : streams_) {
    if (s.watermark == 0) continue;
    absl::erase_if(s.outcomes, [&](const auto& o) { return TxBefore(o.first, s.watermark); });
  }
}

std::string Participant::WatermarkRecord(const Watermark& w) {
  if (w.tx == 0) return std::string();
  std::string out(reinterpret_cast<const char*>(&w.tx), sizeof(w.tx));
  if (w.incarnation != 0)
    out.append(reinterpret_cast<const char*>(&w.incarnation), sizeof(w.incarnation));
  return out;
}

absl::Status Participant::ReplayWatermark(const LogRecord& rec) {
  if (rec.payload.empty()) return absl::OkStatus();  // none told (or a log of an older farmd)
  // 8 bytes (a log of a farmd before incarnations), or 16 with the incarnation.
  Watermark w;
  const size_t n = rec.payload.size();
  if (n == sizeof(w.tx) || n == sizeof(w.tx) + sizeof(w.incarnation)) {
    std::memcpy(&w.tx, rec.payload.data(), sizeof(w.tx));
  }
  if (n == sizeof(w.tx) + sizeof(w.incarnation)) {
    std::memcpy(&w.incarnation, rec.payload.data() + sizeof(w.tx), sizeof(w.incarnation));
    if (w.incarnation == 0) w.tx = 0;
  }
  if (w.tx == 0 || TxStream(w.tx) != TxStream(rec.tx) || TxBefore(rec.tx, w.tx)) {
    return absl::DataLossError(absl::StrCat("machine ", self_, ": log record ", rec.lsn, " (",
                                            LogTypeName(rec.type), " of transaction ", rec.tx,
                                            "): malformed truncation watermark (",
                                            rec.payload.size(), " bytes)"));
  }
  Truncated(w);
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
