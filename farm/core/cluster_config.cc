#include "farm/core/cluster_config.h"

#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace dctk::farm {
namespace {

class ErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (first_.empty()) first_ = absl::StrCat("line ", line + 1, ":", column + 1, ": ", message);
  }
  const std::string& first() const { return first_; }

 private:
  std::string first_;
};

}  // namespace

absl::StatusOr<ClusterConfig> ParseClusterConfig(absl::string_view text, absl::string_view origin) {
  ClusterConfig config;
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), &config)) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": ", errors.first()));
  }
  return ValidateClusterConfig(std::move(config), origin);
}

absl::StatusOr<ClusterConfig> LoadClusterConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open cluster config ", path));
  std::stringstream text;
  text << in.rdbuf();
  return ParseClusterConfig(text.str(), path);
}

absl::StatusOr<ClusterConfig> ValidateClusterConfig(ClusterConfig c, absl::string_view origin) {
  auto bad = [&](absl::string_view field, absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": field ", field, ": ", why));
  };
  if (c.machines().empty()) return bad("machines", "at least one machine is needed");
  std::set<uint32_t> ids;
  for (int i = 0; i < c.machines_size(); ++i) {
    if (!ids.insert(c.machines(i).id()).second) {
      return bad(absl::StrCat("machines[", i, "].id"), absl::StrCat("duplicate id ", c.machines(i).id()));
    }
    if (c.machines(i).id() >= 256) {
      return bad(absl::StrCat("machines[", i, "].id"), "must be below 256 (fabric max_machines)");
    }
  }
  if (c.region_size() == 0) c.set_region_size(kDefaultRegionSize);
  if (c.region_size() > (uint64_t{1} << 32) || c.region_size() % kBlockSize != 0) {
    return bad("region_size", absl::StrCat(c.region_size(), " is not a multiple of 1 MiB up to 4 GiB"));
  }
  if (c.replicas() == 0) c.set_replicas(3);
  if (c.replicas() > static_cast<uint32_t>(c.machines_size())) {
    return bad("replicas", absl::StrCat(c.replicas(), " replicas need as many machines, have ",
                                        c.machines_size()));
  }
  if (c.virtual_nodes() == 0) c.set_virtual_nodes(64);
  if (c.fabric().empty()) c.set_fabric("auto");
  if (c.fabric() != "auto" && c.fabric() != "shm" && c.fabric() != "verbs") {
    return bad("fabric", absl::StrCat("'", c.fabric(), "' is not auto, shm or verbs"));
  }
  return c;
}

absl::StatusOr<PlacementRing> MakeRing(const ClusterConfig& config) {
  std::vector<fabric::MachineId> machines;
  for (const MachineConfig& m : config.machines()) machines.push_back(m.id());
  return PlacementRing::Create(std::move(machines), config.virtual_nodes());
}

}  // namespace dctk::farm
