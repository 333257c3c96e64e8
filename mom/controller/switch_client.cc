#include "mom/controller/switch_client.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace dctk::mom {
namespace {

constexpr auto kCallTimeout = std::chrono::seconds(10);

absl::Status FromGrpc(const grpc::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(what, ": ", s.error_message()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<SwitchClient>> SwitchClient::Connect(const std::string& target,
                                                                     absl::Duration timeout) {
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + timeout))) {
    return absl::UnavailableError(
        absl::StrCat("MOM switch at ", target, " did not answer within ", absl::FormatDuration(timeout)));
  }
  return std::unique_ptr<SwitchClient>(new SwitchClient(target, MomSwitch::NewStub(channel)));
}

absl::StatusOr<uint64_t> SwitchClient::Configure(const SwitchConfig& config) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
  ConfigureReply reply;
  absl::Status s = FromGrpc(stub_->Configure(&context, config, &reply),
                            absl::StrCat("Configure on ", target_));
  if (!s.ok()) return s;
  return reply.config_version();
}

absl::StatusOr<SwitchStats> SwitchClient::Stats(const StatsRequest& request) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
  SwitchStats stats;
  absl::Status s =
      FromGrpc(stub_->GetStats(&context, request, &stats), absl::StrCat("GetStats on ", target_));
  if (!s.ok()) return s;
  return stats;
}

absl::Status PushConfigs(const std::map<std::string, SwitchClient*>& switches,
                         const std::vector<SwitchConfig>& configs) {
  std::map<std::string, SwitchConfig> by_name;
  for (const SwitchConfig& c : configs) {
    if (!switches.contains(c.switch_name())) {
      return absl::NotFoundError(absl::StrCat("no switch named '", c.switch_name(), "' to configure"));
    }
    by_name[c.switch_name()].MergeFrom(c);
  }
  for (const auto& [name, client] : switches) {
    SwitchConfig config = by_name[name];
    config.set_switch_name(name);
    if (absl::StatusOr<uint64_t> v = client->Configure(config); !v.ok()) return v.status();
  }
  return absl::OkStatus();
}

}  // namespace dctk::mom
