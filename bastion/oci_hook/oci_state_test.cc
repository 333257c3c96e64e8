#include "bastion/oci_hook/oci_state.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::bastion::oci_hook {
namespace {

using ::testing::HasSubstr;

// What runc wrote to the hook at createRuntime for a podman container (trimmed).
constexpr char kCreating[] = R"({
  "ociVersion": "1.0.2-dev",
  "id": "516a7bfca0030ee8b230e0f86369c02c3e70c5329509becfe1dca00ea1bb4db7",
  "status": "creating",
  "pid": 30402,
  "bundle": "/var/lib/containers/storage/overlay-containers/516a7bfca0030ee8b230e0f86369c02c3e70c5329509becfe1dca00ea1bb4db7/userdata",
  "annotations": {
    "bastion.name": "web",
    "bastion.label.role": "server",
    "bastion.label.tier": "front",
    "bastion.label.": "ignored",
    "io.container.manager": "libpod"
  }
})";

TEST(ParseOciState, ReadsTheRuntimeState) {
  absl::StatusOr<OciState> s = ParseOciState(kCreating);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->oci_version, "1.0.2-dev");
  EXPECT_EQ(s->id, "516a7bfca0030ee8b230e0f86369c02c3e70c5329509becfe1dca00ea1bb4db7");
  EXPECT_EQ(s->status, "creating");
  EXPECT_EQ(s->pid, 30402);
  EXPECT_THAT(s->bundle, HasSubstr("/userdata"));
  EXPECT_EQ(s->annotations.at("io.container.manager"), "libpod");
  EXPECT_EQ(*ActionFor(*s), HookAction::kRegister);
}

TEST(ParseOciState, StoppedWithoutPidOrAnnotationsUnregisters) {
  absl::StatusOr<OciState> s = ParseOciState(R"({"ociVersion": "1.0.2", "id": "c1",
      "status": "stopped", "bundle": "/b"})");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->pid, 0);
  EXPECT_TRUE(s->annotations.empty());
  EXPECT_EQ(*ActionFor(*s), HookAction::kUnregister);
}

TEST(ParseOciState, NamesTheBadField) {
  struct Case {
    const char* text;
    const char* error;
  };
  for (const Case& c : std::vector<Case>{
           {"not json", "not a JSON object"},
           {"[1]", "not a JSON object"},
           {R"({"status": "creating", "pid": 1})", "id: missing"},
           {R"({"id": 7, "status": "creating"})", "id: not a string"},
           {R"({"id": "../etc", "status": "creating"})", "id: '../etc' has a character"},
           {R"({"id": "c1", "pid": 1})", "status: missing"},
           {R"({"id": "c1", "status": "creating", "pid": "12"})", "pid: not a process id"},
           {R"({"id": "c1", "status": "creating", "pid": -1})", "pid: not a process id"},
           {R"({"id": "c1", "status": "creating", "annotations": []})",
            "annotations: not an object"},
           {R"({"id": "c1", "status": "creating", "annotations": {"a": 1}})",
            "annotations.a: not a string"},
       }) {
    absl::StatusOr<OciState> s = ParseOciState(c.text);
    ASSERT_FALSE(s.ok()) << c.text;
    EXPECT_TRUE(absl::IsInvalidArgument(s.status())) << c.text;
    EXPECT_THAT(s.status().message(), HasSubstr("OCI state on stdin: ")) << c.text;
    EXPECT_THAT(s.status().message(), HasSubstr(c.error)) << c.text;
  }
}

TEST(ActionFor, RefusesStagesItDoesNotServe) {
  OciState s{.id = "c1", .status = "creating", .pid = 0};
  EXPECT_THAT(ActionFor(s).status().message(), HasSubstr("no pid"));
  s = {.id = "c1", .status = "running", .pid = 12};
  EXPECT_THAT(ActionFor(s).status().message(), HasSubstr("status 'running'"));
  s = {.id = "c1", .status = "created", .pid = 12};
  EXPECT_EQ(*ActionFor(s), HookAction::kRegister);
}

TEST(ParseHookArgs, DefaultsAndFlags) {
  const char* none[] = {"bastion-oci-hook"};
  absl::StatusOr<HookOptions> o = ParseHookArgs(1, none);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->containers_dir, "/run/dctk/containers");
  EXPECT_EQ(o->timeout, absl::Seconds(10));
  EXPECT_EQ(o->ifname, "eth0");
  const char* all[] = {"hook", "--containers_dir=/tmp/x", "--timeout_ms=250", "--ifname=net1"};
  o = ParseHookArgs(4, all);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->containers_dir, "/tmp/x");
  EXPECT_EQ(o->timeout, absl::Milliseconds(250));
  EXPECT_EQ(o->ifname, "net1");
  for (const char* bad : {"--timeout_ms=-1", "--timeout_ms=soon", "--containers_dir=",
                          "--ifname=", "--label=a=b", "extra"}) {
    const char* argv[] = {"hook", bad};
    absl::StatusOr<HookOptions> r = ParseHookArgs(2, argv);
    EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << bad;
  }
  const char* unknown[] = {"hook", "--label=a=b"};
  EXPECT_THAT(ParseHookArgs(2, unknown).status().message(),
              HasSubstr("unknown argument '--label=a=b'"));
}

TEST(ContainerIdentity, AnnotationsThenStorageNameThenShortId) {
  OciState s = *ParseOciState(kCreating);
  Identity who = ContainerIdentity(s, "podman-name");
  EXPECT_EQ(who.name, "web");
  EXPECT_EQ(who.labels, (std::map<std::string, std::string>{{"role", "server"}, {"tier", "front"}}));
  s.annotations.erase("bastion.name");
  EXPECT_EQ(ContainerIdentity(s, "podman-name").name, "podman-name");
  EXPECT_EQ(ContainerIdentity(s, "").name, "516a7bfca003");
}

TEST(StorageName, FindsTheContainersFirstName) {
  constexpr char kContainersJson[] = R"([
    {"id": "aaa", "names": ["other"]},
    {"id": "516a", "names": ["web-1", "alias"], "metadata": "{}"}])";
  EXPECT_EQ(StorageName(kContainersJson, "516a"), "web-1");
  EXPECT_EQ(StorageName(kContainersJson, "bbb"), "");
  EXPECT_EQ(StorageName(R"([{"id": "516a", "names": []}])", "516a"), "");
  EXPECT_EQ(StorageName("", "516a"), "");
  EXPECT_EQ(StorageName(R"({"id": "516a"})", "516a"), "");
  EXPECT_EQ(StorageFileFor("/var/lib/containers/storage/overlay-containers/516a/userdata"),
            "/var/lib/containers/storage/overlay-containers/containers.json");
  EXPECT_EQ(StorageFileFor("/x/y/userdata/"), "/x/containers.json");
  EXPECT_EQ(StorageFileFor("nodir"), "");
}

TEST(DefaultGateway, ReadsProcNetRoute) {
  constexpr char kRoute[] =
      "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
      "eth0\t0001590A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
      "eth0\t00000000\t0101590A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
  EXPECT_EQ(DefaultGateway(kRoute), "10.89.1.1");
  EXPECT_EQ(DefaultGateway("Iface\tDestination\tGateway\n"
                           "eth0\t0001590A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"),
            "");
  EXPECT_EQ(DefaultGateway(""), "");
}

}  // namespace
}  // namespace dctk::bastion::oci_hook
