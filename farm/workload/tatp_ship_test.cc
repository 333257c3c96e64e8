#include "farm/workload/tatp_ship.h"

#include <array>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "farm/client/ship_cluster.h"
#include "farm/fabric/shm_fabric.h"
#include "gtest/gtest.h"

namespace dctk::farm::workload {
namespace {

using fabric::ShmFabric;
using Cluster = client::ShipCluster<ShmFabric>;

std::unique_ptr<Cluster> MakeCluster() {
  client::ShipClusterOptions o;
  o.cluster.machines = 3;
  o.cluster.replicas = 2;
  auto procedures = std::make_shared<client::ProcedureRegistry<ShmFabric>>();
  EXPECT_TRUE(RegisterTatpProcedures(*procedures).ok());
  auto c = Cluster::Create(o, procedures, [](fabric::MachineId id) { return ShmFabric::Create({.machine_id = id}); });
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? std::move(*c) : nullptr;
}

TEST(TatpShipTest, ArgsRoundTripAndBadArgsAreRefused) {
  Tatp::Directory d;
  d.subscriber = GlobalAddress(2, 64);
  d.access_info[1] = GlobalAddress(2, 128);
  d.call_forwarding[3] = GlobalAddress(2, 640);
  const TatpDraw draw{TatpTx::kDeleteCallForwarding, 3, 2, 12345};
  Tatp::Directory back;
  TatpDraw dback;
  ASSERT_TRUE(DecodeTatpArgs(EncodeTatpArgs(d, draw), &back, &dback).ok());
  EXPECT_EQ(back.subscriber, d.subscriber);
  EXPECT_EQ(back.access_info[1], d.access_info[1]);
  EXPECT_TRUE(back.access_info[0].is_null());
  EXPECT_EQ(back.call_forwarding[3], d.call_forwarding[3]);
  EXPECT_EQ(dback.kind, draw.kind);
  EXPECT_EQ(dback.slot, 2);
  EXPECT_EQ(dback.value, 12345u);
  EXPECT_TRUE(absl::IsInvalidArgument(DecodeTatpArgs("x", &back, &dback)));
  std::string bad = EncodeTatpArgs(d, draw);
  bad[8 * 13] = 9;  // kind 9
  EXPECT_TRUE(absl::IsInvalidArgument(DecodeTatpArgs(bad, &back, &dback)));
}

TEST(TatpShipTest, TheMixShippedToEachSubscribersPrimary) {
  auto c = MakeCluster();
  std::vector<tx::TxClient<ShmFabric>*> loaders = {&c->cluster().client(1), &c->cluster().client(2),
                                                   &c->cluster().client(3)};
  absl::StatusOr<Tatp> tatp = Tatp::Load(loaders, 300, 7);
  ASSERT_TRUE(tatp.ok()) << tatp.status();
  auto ship = [&](GlobalAddress w, client::ProcedureId p, absl::string_view a) { return c->shipper(0).Ship(w, p, a); };
  std::mt19937_64 rng(3);
  std::array<int, kTatpTxKinds> ok{};
  for (int i = 0; i < 600; ++i) {
    TatpTx kind;
    absl::Status s = RunOneShipped(*tatp, c->client(0), ship, rng, &kind, /*ship_read_only=*/i % 2 == 0);
    ASSERT_TRUE(s.ok()) << s;  // one client: no conflicts
    ++ok[static_cast<int>(kind)];
  }
  for (int k = 0; k < kTatpTxKinds; ++k) EXPECT_GT(ok[k], 0) << TatpTxName(static_cast<TatpTx>(k));
  uint64_t ran = 0;
  for (fabric::MachineId m : {1u, 2u, 3u}) ran += c->server(m).stats().committed;
  EXPECT_EQ(ran, c->shipper(0).stats().committed);
  EXPECT_GT(ran, 300u);  // every read-write one and half the read-only ones
  EXPECT_EQ(c->client(0).stats().rpc_calls, 0u);  // the client sent no protocol message itself

  // A shipped UPDATE_LOCATION's write is what the client reads afterwards.
  const Tatp::Directory& d = tatp->directory(17);
  const TatpDraw draw{TatpTx::kUpdateLocation, 0, 0, 0xabcdef};
  ASSERT_TRUE(c->shipper(0).Ship(d.subscriber, kTatpTx, EncodeTatpArgs(d, draw)).ok());
  auto t = c->client(0).Begin();
  absl::StatusOr<std::string> row = t.Read(d.subscriber, sizeof(TatpSubscriberRow));
  ASSERT_TRUE(row.ok()) << row.status();
  TatpSubscriberRow r;
  std::memcpy(&r, row->data(), sizeof(r));
  EXPECT_EQ(r.vlr_location, 0xabcdefu);
  EXPECT_EQ(r.s_id, 17u);
}

}  // namespace
}  // namespace dctk::farm::workload
