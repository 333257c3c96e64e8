#include "speculative_paxos/kv_app.h"

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace dctk::spaxos {

std::string KvApp::Execute(uint64_t slot, absl::string_view op_bytes) {
  CHECK(undo_.empty() || undo_.back().slot < slot) << "slot " << slot << " executed out of order";
  KvOp op;
  KvResult result;
  if (!op.ParseFromArray(op_bytes.data(), op_bytes.size())) {
    // A malformed op is still a log entry: it executes as a no-op everywhere.
    undo_.push_back({slot, false, "", absl::nullopt});
    return result.SerializeAsString();
  }
  absl::optional<std::string> previous = Lookup(op.key());
  result.set_found(previous.has_value());
  if (previous) result.set_value(*previous);
  bool write = false;
  switch (op.type()) {
    case KvOp::GET:
      result.set_ok(previous.has_value());
      break;
    case KvOp::PUT:
      result.set_ok(true);
      write = true;
      break;
    case KvOp::CAS:
      write = op.expect_absent() ? !previous.has_value()
                                 : (previous.has_value() && *previous == op.expected());
      result.set_ok(write);
      break;
    default:
      break;
  }
  undo_.push_back({slot, write, write ? op.key() : std::string(), previous});
  if (write) data_[op.key()] = op.value();
  return result.SerializeAsString();
}

void KvApp::Rollback(uint64_t slot) {
  while (!undo_.empty() && undo_.back().slot > slot) {
    Undo& u = undo_.back();
    if (u.wrote) {
      if (u.previous) {
        data_[u.key] = *u.previous;
      } else {
        data_.erase(u.key);
      }
    }
    undo_.pop_back();
  }
}

void KvApp::Commit(uint64_t slot) {
  while (!undo_.empty() && undo_.front().slot <= slot) undo_.pop_front();
}

absl::StatusOr<std::string> KvApp::Snapshot(uint64_t slot) {
  std::map<std::string, std::string> data = data_;
  for (auto u = undo_.rbegin(); u != undo_.rend() && u->slot > slot; ++u) {
    if (!u->wrote) continue;
    if (u->previous) {
      data[u->key] = *u->previous;
    } else {
      data.erase(u->key);
    }
  }
  KvSnapshot snapshot;
  for (const auto& [key, value] : data) {
    snapshot.add_keys(key);
    snapshot.add_values(value);
  }
  return snapshot.SerializeAsString();
}

absl::Status KvApp::Restore(uint64_t slot, absl::string_view bytes) {
  KvSnapshot snapshot;
  if (!snapshot.ParseFromArray(bytes.data(), bytes.size()) ||
      snapshot.keys_size() != snapshot.values_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("KvApp::Restore: malformed snapshot at slot ", slot));
  }
  data_.clear();
  undo_.clear();
  for (int i = 0; i < snapshot.keys_size(); ++i) data_[snapshot.keys(i)] = snapshot.values(i);
  return absl::OkStatus();
}

absl::optional<std::string> KvApp::Lookup(const std::string& key) const {
  auto it = data_.find(key);
  if (it == data_.end()) return absl::nullopt;
  return it->second;
}

std::string KvApp::Get(const std::string& key) {
  KvOp op;
  op.set_type(KvOp::GET);
  op.set_key(key);
  return op.SerializeAsString();
}

std::string KvApp::Put(const std::string& key, const std::string& value) {
  KvOp op;
  op.set_type(KvOp::PUT);
  op.set_key(key);
  op.set_value(value);
  return op.SerializeAsString();
}

std::string KvApp::Cas(const std::string& key, absl::optional<std::string> expected,
                       const std::string& value) {
  KvOp op;
  op.set_type(KvOp::CAS);
  op.set_key(key);
  op.set_value(value);
  if (expected) {
    op.set_expected(*expected);
  } else {
    op.set_expect_absent(true);
  }
  return op.SerializeAsString();
}

KvResult KvApp::ParseResult(absl::string_view result) {
  KvResult r;
  r.ParseFromArray(result.data(), result.size());
  return r;
}

}  // namespace dctk::spaxos
