#include "bastion/cni/cni.h"

#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::bastion::cni {
namespace {

using ::testing::HasSubstr;

std::function<const char*(const char*)> Env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

const std::map<std::string, std::string> kAddEnv = {{"CNI_COMMAND", "ADD"},
                                                    {"CNI_CONTAINERID", "c0ffee"},
                                                    {"CNI_NETNS", "/run/netns/web-1"},
                                                    {"CNI_IFNAME", "eth0"},
                                                    {"CNI_PATH", "/opt/cni/bin"}};

// What the bridge plugin hands on: the bridge, the host veth, the container interface.
constexpr char kConfig[] = R"({
  "cniVersion": "1.0.0", "name": "dctk", "type": "bastion-cni",
  "containersDir": "/tmp/c", "timeoutMs": 2500, "labels": {"tier": "web"},
  "prevResult": {
    "cniVersion": "1.0.0",
    "interfaces": [
      {"name": "cni0", "mac": "aa:bb:cc:00:00:01"},
      {"name": "veth1234", "mac": "aa:bb:cc:00:00:02"},
      {"name": "eth0", "mac": "02:00:0A:59:00:05", "sandbox": "/run/netns/web-1"}],
    "ips": [{"address": "fd00::5/64", "interface": 2},
            {"address": "10.89.0.5/24", "gateway": "10.89.0.1", "interface": 2}],
    "routes": [{"dst": "0.0.0.0/0"}], "dns": {}
  }})";

bool Port(const std::string& name) { return name.rfind("veth", 0) == 0; }

TEST(ParseEnv, ReadsAddEnvironmentAndArgs) {
  auto vars = kAddEnv;
  vars["CNI_ARGS"] = "IgnoreUnknown=1;BASTION_NAME=web-1;BASTION_LABEL_role=web";
  absl::StatusOr<CniEnv> env = ParseEnv(Env(vars));
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->command, Command::kAdd);
  EXPECT_EQ(env->container_id, "c0ffee");
  EXPECT_EQ(env->netns, "/run/netns/web-1");
  EXPECT_EQ(env->ifname, "eth0");
  EXPECT_EQ(env->args.at("BASTION_NAME"), "web-1");
  EXPECT_EQ(env->args.at("IgnoreUnknown"), "1");
}

TEST(ParseEnv, VersionNeedsOnlyTheCommand) {
  absl::StatusOr<CniEnv> env = ParseEnv(Env({{"CNI_COMMAND", "VERSION"}}));
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->command, Command::kVersion);
}

TEST(ParseEnv, DelToleratesMissingNetns) {
  auto vars = kAddEnv;
  vars["CNI_COMMAND"] = "DEL";
  vars.erase("CNI_NETNS");
  EXPECT_TRUE(ParseEnv(Env(vars)).ok());
  vars["CNI_COMMAND"] = "CHECK";
  absl::StatusOr<CniEnv> env = ParseEnv(Env(vars));
  ASSERT_FALSE(env.ok());
  EXPECT_THAT(env.status().message(), HasSubstr("CNI_NETNS"));
  EXPECT_EQ(CniCode(env.status()), kInvalidEnvironment);
}

TEST(ParseEnv, RejectsBadValues) {
  struct Case {
    const char* var;
    const char* value;
    const char* message;
  };
  for (const Case& c :
       {Case{"CNI_COMMAND", "UP", "CNI_COMMAND"}, Case{"CNI_CONTAINERID", "", "CNI_CONTAINERID"},
        Case{"CNI_CONTAINERID", "../etc/x", "CNI_CONTAINERID"},
        Case{"CNI_IFNAME", "", "CNI_IFNAME"}, Case{"CNI_ARGS", "A=1;junk", "CNI_ARGS"}}) {
    auto vars = kAddEnv;
    vars[c.var] = c.value;
    absl::StatusOr<CniEnv> env = ParseEnv(Env(vars));
    ASSERT_FALSE(env.ok()) << c.var << "=" << c.value;
    EXPECT_THAT(env.status().message(), HasSubstr(c.message));
    EXPECT_EQ(CniCode(env.status()), kInvalidEnvironment);
  }
}

TEST(ParseConfig, ReadsBastionFieldsAndPrevResult) {
  absl::StatusOr<CniConfig> config = ParseConfig(kConfig);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->cni_version, "1.0.0");
  EXPECT_EQ(config->name, "dctk");
  EXPECT_EQ(config->containers_dir, "/tmp/c");
  EXPECT_EQ(config->timeout, absl::Milliseconds(2500));
  EXPECT_EQ(config->labels.at("tier"), "web");
  EXPECT_EQ(config->prev_result["ips"].size(), 2u);
}

TEST(ParseConfig, Defaults) {
  absl::StatusOr<CniConfig> config = ParseConfig(R"({"cniVersion": "0.4.0", "name": "n"})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->containers_dir, kDefaultContainersDir);
  EXPECT_EQ(config->timeout, absl::Seconds(10));
  EXPECT_TRUE(config->prev_result.is_null());
}

TEST(ParseConfig, RejectsBadInputWithSpecCodes) {
  struct Case {
    const char* text;
    int code;
    const char* message;
  };
  for (const Case& c :
       {Case{"{not json", kDecodingFailure, "not a JSON object"},
        Case{R"({"name": "n"})", kInvalidConfig, "cniVersion"},
        Case{R"({"cniVersion": "9.9.9"})", kIncompatibleVersion, "9.9.9"},
        Case{R"({"cniVersion": "1.0.0", "timeoutMs": -1})", kInvalidConfig, "timeoutMs"},
        Case{R"({"cniVersion": "1.0.0", "labels": {"a": 1}})", kInvalidConfig, "labels.a"},
        Case{R"({"cniVersion": "1.0.0", "prevResult": 3})", kInvalidConfig, "prevResult"}}) {
    absl::StatusOr<CniConfig> config = ParseConfig(c.text);
    ASSERT_FALSE(config.ok()) << c.text;
    EXPECT_EQ(CniCode(config.status()), c.code) << c.text;
    EXPECT_THAT(config.status().message(), HasSubstr(c.message));
  }
}

TEST(FindAttachment, TakesContainerInterfaceAddressAndHostVeth) {
  auto vars = kAddEnv;
  vars["CNI_ARGS"] = "K8S_POD_NAME=web-1;BASTION_LABEL_role=frontend";
  absl::StatusOr<Registration> a = FindAttachment(*ParseEnv(Env(vars)), *ParseConfig(kConfig), Port);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->name, "web-1");
  EXPECT_EQ(a->file_name, "c0ffee.json");
  EXPECT_EQ(a->netns, "web-1");
  EXPECT_EQ(a->host_veth, "veth1234");  // the bridge cni0 is no bridge port
  EXPECT_EQ(a->ip, "10.89.0.5");        // the IPv6 address is skipped
  EXPECT_EQ(a->mac, "02:00:0a:59:00:05");
  EXPECT_EQ(a->gateway, "10.89.0.1");
  EXPECT_EQ(a->labels, (std::map<std::string, std::string>{{"role", "frontend"}, {"tier", "web"}}));

  absl::StatusOr<Registration> back = ParseRegistration(RegistrationJson(*a));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(RegistrationJson(*back), RegistrationJson(*a));
}

TEST(FindAttachment, NameDefaultsToContainerId) {
  absl::StatusOr<Registration> a =
      FindAttachment(*ParseEnv(Env(kAddEnv)), *ParseConfig(kConfig), Port);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->name, "c0ffee");
}

TEST(FindAttachment, ExplainsWhatIsMissing) {
  const CniEnv env = *ParseEnv(Env(kAddEnv));
  absl::StatusOr<Registration> a =
      FindAttachment(env, *ParseConfig(R"({"cniVersion": "1.0.0"})"), Port);
  ASSERT_FALSE(a.ok());
  EXPECT_THAT(a.status().message(), HasSubstr("no prevResult"));

  a = FindAttachment(env, *ParseConfig(kConfig), [](const std::string&) { return false; });
  ASSERT_FALSE(a.ok());
  EXPECT_THAT(a.status().message(), HasSubstr("bridge port"));

  CniEnv other = env;
  other.ifname = "net1";
  a = FindAttachment(other, *ParseConfig(kConfig), Port);
  ASSERT_FALSE(a.ok());
  EXPECT_THAT(a.status().message(), HasSubstr("no interface 'net1'"));

  absl::StatusOr<CniConfig> v6only = ParseConfig(R"({"cniVersion": "1.0.0", "prevResult": {
      "interfaces": [{"name": "veth1"}, {"name": "eth0", "mac": "02:00:00:00:00:01",
                      "sandbox": "/x"}],
      "ips": [{"address": "fd00::5/64", "interface": 1}]}})");
  ASSERT_TRUE(v6only.ok()) << v6only.status();
  a = FindAttachment(env, *v6only, Port);
  ASSERT_FALSE(a.ok());
  EXPECT_THAT(a.status().message(), HasSubstr("no IPv4 address"));
  EXPECT_EQ(CniCode(a.status()), kInvalidConfig);
}

TEST(ErrorJson, HasCodeMsgDetails) {
  nlohmann::json j = nlohmann::json::parse(
      ErrorJson(WithCniCode(absl::InvalidArgumentError("CNI_IFNAME: missing"), kInvalidEnvironment),
                "0.4.0"));
  EXPECT_EQ(j["cniVersion"], "0.4.0");
  EXPECT_EQ(j["code"], kInvalidEnvironment);
  EXPECT_EQ(j["msg"], "CNI_IFNAME: missing");
  EXPECT_EQ(j["details"], "INVALID_ARGUMENT");

  j = nlohmann::json::parse(ErrorJson(absl::UnavailableError("bastiond did not attach"), ""));
  EXPECT_EQ(j["code"], kTryAgainLater);
  EXPECT_EQ(j["cniVersion"], "1.0.0");
  j = nlohmann::json::parse(ErrorJson(absl::InternalError("x"), "1.0.0"));
  EXPECT_EQ(j["code"], kPluginError);
}

TEST(VersionJson, ListsSupportedVersions) {
  nlohmann::json j = nlohmann::json::parse(VersionJson());
  EXPECT_EQ(j["cniVersion"], "1.0.0");
  EXPECT_THAT(j["supportedVersions"].get<std::vector<std::string>>(), ::testing::Contains("0.4.0"));
  EXPECT_TRUE(SupportedVersion("1.0.0"));
  EXPECT_FALSE(SupportedVersion("0.2.0"));
}

}  // namespace
}  // namespace dctk::bastion::cni
