// Table-driven tests of MergeLogs from testdata/merge_cases.txt (format there).
#include "speculative_paxos/merge.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "glog/logging.h"
#include "gtest/gtest.h"
#include "speculative_paxos/log.h"

namespace dctk::spaxos {
namespace {

struct Case {
  std::string name;
  MergeInput input;
  std::vector<std::string> prefix;
  bool expect_error = false;
  std::vector<std::string> expect;
  int64_t confirmed = -1;
  int64_t voted = -1;
};

uint64_t ClientOf(const std::string& token) { return token[0] - 'a' + 1; }
uint64_t RequestOf(const std::string& token) {
  uint64_t r = 0;
  CHECK(absl::SimpleAtoi(token.substr(1), &r)) << token;
  return r;
}
std::string Token(const Entry& e) {
  return std::string(1, static_cast<char>('a' + e.client_id() - 1)) +
         std::to_string(e.request_id());
}

// Chains `tokens` after `hash`, numbering slots from `first`.
void AddEntries(const std::vector<std::string>& tokens, uint64_t first, std::string hash,
                google::protobuf::RepeatedPtrField<Entry>* out) {
  for (const std::string& t : tokens) {
    Entry* e = out->Add();
    e->set_slot(first++);
    e->set_client_id(ClientOf(t));
    e->set_request_id(RequestOf(t));
    e->set_op(t);
    hash = ChainHash(hash, e->client_id(), e->request_id(), t);
    e->set_hash(hash);
  }
}

std::vector<Case> LoadCases() {
  std::ifstream in("speculative_paxos/testdata/merge_cases.txt");
  CHECK(in) << "cannot open speculative_paxos/testdata/merge_cases.txt";
  std::vector<Case> cases;
  Case c;
  std::string prefix_hash;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
    const std::string& kw = words[0];
    std::vector<std::string> rest(words.begin() + 1, words.end());
    if (kw == "case") {
      c = Case{.name = rest.at(0)};
      prefix_hash.clear();
    } else if (kw == "f") {
      CHECK(absl::SimpleAtoi(rest.at(0), &c.input.f)) << line_no;
    } else if (kw == "prefix") {
      c.prefix = rest;
      google::protobuf::RepeatedPtrField<Entry> entries;
      AddEntries(rest, 1, "", &entries);
      c.input.base = rest.size();
      c.input.base_hash = prefix_hash = entries.empty() ? "" : entries.rbegin()->hash();
      std::vector<std::string> prefix = rest;
      c.input.prefix_latest = [prefix](uint64_t client) {
        uint64_t latest = 0;
        for (const std::string& t : prefix) {
          if (ClientOf(t) == client) latest = std::max(latest, RequestOf(t));
        }
        return latest;
      };
    } else if (kw == "report") {
      LogReport r;
      r.set_base(c.input.base);
      r.set_covers_base(true);
      r.set_base_hash(prefix_hash);
      size_t i = 0;
      for (; i < rest.size() && rest[i] != ":"; ++i) {
        std::pair<std::string, std::string> kv = absl::StrSplit(rest[i], '=');
        uint64_t n = 0;
        if (kv.first == "replica") {
          CHECK(absl::SimpleAtoi(kv.second, &n)) << line_no;
          r.set_replica(n);
        } else if (kv.first == "stamp") {
          std::pair<std::string, std::string> ve = absl::StrSplit(kv.second, '.');
          uint64_t v = 0, e = 0;
          CHECK(absl::SimpleAtoi(ve.first, &v) && absl::SimpleAtoi(ve.second, &e)) << line_no;
          r.mutable_log_stamp()->set_view(v);
          r.mutable_log_stamp()->set_epoch(e);
        } else if (kv.first == "sync") {
          CHECK(absl::SimpleAtoi(kv.second, &n)) << line_no;
          r.set_sync_point(n);
        } else if (kv.first == "commit") {
          CHECK(absl::SimpleAtoi(kv.second, &n)) << line_no;
          r.set_commit_point(n);
        } else if (kv.first == "short") {
          r.set_covers_base(false);
          r.clear_base_hash();
        } else if (kv.first == "diverged") {
          r.set_base_hash("diverged");
        } else {
          LOG(FATAL) << "line " << line_no << ": unknown report field " << rest[i];
        }
      }
      CHECK(i < rest.size()) << "line " << line_no << ": report without ':'";
      std::vector<std::string> tokens(rest.begin() + i + 1, rest.end());
      if (r.covers_base()) {
        AddEntries(tokens, c.input.base + 1, r.base_hash(), r.mutable_entries());
      }
      c.input.reports.push_back(std::move(r));
    } else if (kw == "expect") {
      if (rest.size() == 1 && rest[0] == "error") {
        c.expect_error = true;
      } else {
        c.expect = rest;
      }
    } else if (kw == "confirmed") {
      CHECK(absl::SimpleAtoi(rest.at(0), &c.confirmed)) << line_no;
    } else if (kw == "voted") {
      CHECK(absl::SimpleAtoi(rest.at(0), &c.voted)) << line_no;
    } else if (kw == "end") {
      cases.push_back(std::move(c));
      c = Case{};
    } else {
      LOG(FATAL) << "line " << line_no << ": unknown keyword " << kw;
    }
  }
  return cases;
}

class MergeCaseTest : public testing::TestWithParam<Case> {};

TEST_P(MergeCaseTest, Merges) {
  const Case& c = GetParam();
  absl::StatusOr<MergeResult> merged = MergeLogs(c.input);
  if (c.expect_error) {
    EXPECT_FALSE(merged.ok()) << "merged into " << merged->entries.size() << " entries";
    return;
  }
  ASSERT_TRUE(merged.ok()) << merged.status();
  std::vector<std::string> got;
  std::string hash = c.input.base_hash;
  uint64_t slot = c.input.base;
  for (const Entry& e : merged->entries) {
    got.push_back(Token(e));
    EXPECT_EQ(e.slot(), ++slot);
    hash = ChainHash(hash, e.client_id(), e.request_id(), e.op());
    EXPECT_EQ(e.hash(), hash) << "hash chain broken at slot " << e.slot();
  }
  EXPECT_EQ(absl::StrJoin(got, " "), absl::StrJoin(c.expect, " "));
  if (c.confirmed >= 0) {
    EXPECT_EQ(merged->confirmed_end, c.confirmed);
  }
  if (c.voted >= 0) {
    EXPECT_EQ(merged->voted_end, c.voted);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, MergeCaseTest, testing::ValuesIn(LoadCases()),
                         [](const testing::TestParamInfo<Case>& info) { return info.param.name; });

}  // namespace
}  // namespace dctk::spaxos
