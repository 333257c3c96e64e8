#include "bastion/policy/policy.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::bastion {
namespace {

using ::testing::HasSubstr;

TEST(PortRangeTest, Parses) {
  struct Case {
    std::string text;
    PortRange want;
  };
  const Case cases[] = {
      {"tcp/80", {kTcp, 80, 80}},       {"udp/8000-8010", {kUdp, 8000, 8010}},
      {"TCP", {kTcp, 0, 65535}},        {"icmp", {kIcmp, 0, 65535}},
      {"any", {0, 0, 65535}},           {"tcp/0-65535", {kTcp, 0, 65535}},
  };
  for (const Case& c : cases) {
    absl::StatusOr<PortRange> got = ParsePortRange(c.text);
    ASSERT_TRUE(got.ok()) << c.text << ": " << got.status();
    EXPECT_EQ(*got, c.want) << c.text;
  }
}

TEST(PortRangeTest, Rejects) {
  for (const char* text : {"tpc/80", "tcp/", "tcp/65536", "tcp/90-80", "tcp/-1", "any/80",
                           "icmp/8", "tcp/8x", "", "/80", "tcp/1-2-3"}) {
    EXPECT_FALSE(ParsePortRange(text).ok()) << text;
  }
}

TEST(PortRangeTest, RoundTrips) {
  for (const char* text : {"tcp/80", "udp/8000-8010", "tcp", "icmp", "any"}) {
    EXPECT_EQ(PortRangeToString(*ParsePortRange(text)), text);
  }
}

TEST(PolicyTest, ParsesTheExample) {
  absl::StatusOr<Policy> p = LoadPolicyFile("bastion/policy/testdata/example.yaml");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_FALSE(p->audit);
  ASSERT_EQ(p->hosts.size(), 1u);
  EXPECT_EQ(p->hosts[0].name, "dns");
  EXPECT_EQ(p->hosts[0].addresses, std::vector<uint32_t>{Ipv4(192, 0, 2, 53)});
  ASSERT_EQ(p->services.size(), 3u);
  const Service& client = p->services[0];
  EXPECT_EQ(client.name, "client");
  EXPECT_EQ(client.select.labels.at("role"), "client");
  ASSERT_EQ(client.depends_on.size(), 2u);
  EXPECT_EQ(client.depends_on[0].kind, Peer::Kind::kService);
  EXPECT_EQ(client.depends_on[0].name, "web");
  EXPECT_EQ(client.depends_on[0].ports.size(), 2u);
  EXPECT_EQ(client.depends_on[0].except[0], (PortRange{kTcp, 8005, 8005}));
  EXPECT_EQ(client.depends_on[1].kind, Peer::Kind::kHost);
  EXPECT_EQ(client.depends_on[1].line, 14);
  const Service& web = p->services[1];
  EXPECT_EQ(web.select.names, std::vector<std::string>{"web-*"});
  ASSERT_EQ(web.accepts.size(), 1u);
  EXPECT_EQ(web.accepts[0].kind, Peer::Kind::kWorld);
  EXPECT_TRUE(p->services[2].depends_on.empty());
}

TEST(PolicyTest, ParsesTheDemoPolicy) {
  absl::StatusOr<Policy> p = LoadPolicyFile("bastion/policy/testdata/farm_demo.yaml");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->services.size(), 3u);
  EXPECT_EQ(p->services[1].depends_on[1].name, "replica");
}

TEST(PolicyTest, AuditAndServiceOrder) {
  // A service may depend on one defined later in the file.
  absl::StatusOr<Policy> p = ParsePolicy(R"(
version: 1
audit: yes
services:
  - name: a
    select: {names: [a]}
    depends_on: [{service: b, ports: [any]}]
  - name: b
    select: {names: [b]}
)",
                                         "t.yaml");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->audit);
  EXPECT_EQ(p->services[0].depends_on[0].ports[0], PortRange{});
}

// Each invalid policy must fail with the file, the line (and column) and the reason.
TEST(PolicyTest, RejectsWithFileLineAndReason) {
  struct Case {
    std::string name;
    std::string text;
    std::string want;  // substring of the error
  };
  const std::string head = "version: 1\nservices:\n";
  const Case cases[] = {
      {"empty", "", "p.yaml: empty policy"},
      {"no version", "services: []\n", "missing 'version: 1'"},
      {"bad version", "version: 2\nservices: []\n", "p.yaml:1:10: unsupported version"},
      {"unknown top key", "version: 1\nservice: []\n", "p.yaml:2:1: unknown key 'service'"},
      {"syntax", "version: 1\nservices: [\n", "p.yaml:3:1:"},
      {"tab indentation", "version: 1\nservices:\n\t- name: a\n", "p.yaml:3:"},
      {"no select", head + "  - name: a\n", "p.yaml:3:5: service 'a' has no select"},
      {"empty select", head + "  - name: a\n    select: {}\n",
       "p.yaml:4:13: select needs names or labels"},
      {"bad glob", head + "  - name: a\n    select: {names: ['a*b']}\n",
       "p.yaml:4:22: container name 'a*b'"},
      {"bad name", head + "  - name: 'a b'\n    select: {names: [a]}\n",
       "p.yaml:3:11: service name 'a b'"},
      {"duplicate service",
       head + "  - {name: a, select: {names: [a]}}\n  - {name: a, select: {names: [b]}}\n",
       "p.yaml:4:12: service 'a' defined twice"},
      {"undefined service",
       head + "  - name: a\n    select: {names: [a]}\n    depends_on:\n      - {service: b, "
              "ports: [tcp/1]}\n",
       "p.yaml:6:9: service 'a' depends on undefined service 'b'"},
      {"undefined host",
       head + "  - name: a\n    select: {names: [a]}\n    depends_on:\n      - {host: dns, "
              "ports: [udp/53]}\n",
       "p.yaml:6:9: service 'a' names undefined host 'dns'"},
      {"bad protocol",
       head + "  - name: a\n    select: {names: [a]}\n    depends_on:\n      - service: a\n"
              "        ports: [tcp/80, tpc/81]\n",
       "p.yaml:7:25: unknown protocol 'tpc'"},
      {"port too big",
       head + "  - name: a\n    select: {names: [a]}\n    depends_on:\n      - service: a\n"
              "        ports: [udp/70000]\n",
       "p.yaml:7:17: 'udp/70000': ports are numbers"},
      {"missing ports",
       head + "  - name: a\n    select: {names: [a]}\n    depends_on:\n      - service: a\n",
       "p.yaml:6:9: missing 'ports'"},
      {"two peer kinds",
       head + "  - name: a\n    select: {names: [a]}\n    depends_on:\n      - {service: a, "
              "world: true, ports: [any]}\n",
       "names exactly one of service, host, world"},
      {"service in accepts",
       head + "  - name: a\n    select: {names: [a]}\n    accepts:\n      - {service: a, "
              "ports: [any]}\n",
       "p.yaml:6:10: unknown key 'service' in accepts entry"},
      {"except of unlisted protocol",
       head + "  - name: a\n    select: {names: [a]}\n    depends_on:\n      - {service: a, "
              "ports: [tcp], except: [udp/53]}\n",
       "except 'udp/53' names no protocol listed in ports"},
      {"duplicate key", head + "  - name: a\n    name: b\n    select: {names: [a]}\n",
       "p.yaml:4:5: duplicate key 'name'"},
      {"bad address",
       "version: 1\nhosts:\n  - {name: h, addresses: [10.0.0.256]}\nservices: []\n",
       "p.yaml:3:27: '10.0.0.256' is not an IPv4 address"},
      {"gateway redefined",
       "version: 1\nhosts:\n  - {name: gateway, addresses: [10.0.0.1]}\nservices: []\n",
       "p.yaml:3:12: host 'gateway' defined twice (or built in)"},
      {"audit not bool", "version: 1\naudit: maybe\nservices: []\n",
       "p.yaml:2:8: audit must be true or false"},
      {"services not list", "version: 1\nservices: {a: 1}\n", "p.yaml:2:11: services must be a list"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Policy> p = ParsePolicy(c.text, "p.yaml");
    ASSERT_FALSE(p.ok()) << c.name;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(std::string(p.status().message()), HasSubstr(c.want)) << c.name;
  }
}

TEST(PolicyTest, MissingFileIsNotFound) {
  absl::StatusOr<Policy> p = LoadPolicyFile("/nonexistent/policy.yaml");
  EXPECT_EQ(p.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("/nonexistent/policy.yaml"));
}

}  // namespace
}  // namespace dctk::bastion
