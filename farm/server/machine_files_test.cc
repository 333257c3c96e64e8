#include "farm/server/machine_files.h"

#include <sys/stat.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace dctk::farm::server {
namespace {

std::string Dir(const std::string& name) {
  const std::string d = absl::StrCat(getenv("TEST_TMPDIR"), "/", name);
  mkdir(d.c_str(), 0755);
  return d;
}

bool Exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

TEST(MachineFilesTest, StateRoundTripAndDamage) {
  const std::string d = Dir("state");
  const std::string path = d + "/m1.state";
  absl::StatusOr<absl::optional<MachineState>> none = ReadMachineState(path);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  MachineState s;
  s.set_id(1001);
  s.mutable_config()->set_id(7);
  ASSERT_TRUE(WriteMachineState(path, s, /*sync=*/true).ok());
  absl::StatusOr<absl::optional<MachineState>> back = ReadMachineState(path);
  ASSERT_TRUE(back.ok() && back->has_value());
  EXPECT_EQ((*back)->id(), 1001u);
  EXPECT_EQ((*back)->config().id(), 7u);
  std::ofstream(path, std::ios::trunc) << "\xff\xff garbage";
  absl::StatusOr<absl::optional<MachineState>> bad = ReadMachineState(path);
  EXPECT_TRUE(absl::IsDataLoss(bad.status()));
  EXPECT_NE(bad.status().message().find(path), std::string::npos) << bad.status();
}

TEST(MachineFilesTest, DiscardDeletesOnlyThisMachinesFiles) {
  const std::string d = Dir("discard");
  const MachinePaths paths{d + "/m1.txlog", d + "/m1.ckpt", d + "/m1.state"};
  for (const std::string& f : {paths.log + ".00000000000000000001", paths.log + ".00000000000000000500",
                               paths.checkpoint, paths.state, d + "/m2.txlog.00000000000000000001",
                               d + "/m1.txlogs"}) {
    std::ofstream(f) << "x";
  }
  absl::StatusOr<int> n = DiscardMachineFiles(paths);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 4);
  EXPECT_FALSE(Exists(paths.checkpoint));
  EXPECT_TRUE(Exists(d + "/m2.txlog.00000000000000000001"));
  EXPECT_TRUE(Exists(d + "/m1.txlogs"));
}

TEST(MachineFilesTest, ReadRestoreInputsNamesADamagedCheckpoint) {
  const std::string d = Dir("damaged");
  const MachinePaths paths{d + "/m1.txlog", d + "/m1.ckpt", d + "/m1.state"};
  {
    absl::StatusOr<std::unique_ptr<tx::TxLog>> log = tx::TxLog::Open(paths.log, tx::FsyncPolicy::kNever);
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE((*log)->Append(tx::LogType::kAbort, 5, "").ok());
  }
  absl::StatusOr<RestoreInputs> in = ReadRestoreInputs(paths);
  ASSERT_TRUE(in.ok()) << in.status();
  EXPECT_FALSE(in->checkpoint.has_value());
  EXPECT_EQ(in->records.size(), 1u);
  std::ofstream(paths.checkpoint) << "FARMCKP1 cut short";
  in = ReadRestoreInputs(paths);
  ASSERT_TRUE(absl::IsDataLoss(in.status())) << in.status();
  EXPECT_NE(in.status().message().find(paths.checkpoint), std::string::npos) << in.status();
}

TEST(MachineFilesTest, NextIncarnationSkipsKnownIds) {
  cm::Configuration c;
  EXPECT_EQ(*NextIncarnation(2, 3, c), 2u);
  c.add_failed(2);
  c.add_machines()->set_id(5);
  EXPECT_EQ(*NextIncarnation(2, 3, c), 8u);
  EXPECT_FALSE(NextIncarnation(0, 3, c).ok());
  EXPECT_FALSE(NextIncarnation(4, 3, c).ok());
  EXPECT_FALSE(IsStorageMember(2, c));
  EXPECT_TRUE(IsStorageMember(5, c));
  for (uint32_t id = 8; id < kFirstClientId; id += 3) c.add_failed(id);
  EXPECT_TRUE(absl::IsResourceExhausted(NextIncarnation(2, 3, c).status()));
}

}  // namespace
}  // namespace dctk::farm::server
