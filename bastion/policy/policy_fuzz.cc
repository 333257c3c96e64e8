// libFuzzer entry for the policy parser: any input must parse or fail with a Status
// (never crash, hang or throw), and whatever parses must compile against a few
// containers. Built by policy_fuzz_test (seeded random corpus, g++) and, with clang,
// as a real libFuzzer binary (see README.md).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "bastion/policy/compiler.h"
#include "bastion/policy/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dctk::bastion;
  absl::StatusOr<Policy> policy =
      ParsePolicy(std::string(reinterpret_cast<const char*>(data), size), "fuzz.yaml");
  if (!policy.ok()) return 0;
  std::vector<ContainerInfo> containers;
  for (uint32_t id = 1; id <= 3; ++id) {
    ContainerInfo c;
    c.id = id;
    c.name = id == 1 ? "a" : id == 2 ? "web-1" : "db";
    c.labels = {{"role", c.name}};
    c.ip = Ipv4(10, 0, 0, static_cast<uint8_t>(id + 1));
    c.host_ifindex = static_cast<int>(id);
    c.gateway = Ipv4(10, 0, 0, 1);
    containers.push_back(c);
  }
  CompilePolicy(*policy, containers).IgnoreError();
  return 0;
}
