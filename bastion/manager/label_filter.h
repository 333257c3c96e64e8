// Label filters: which containers a bastiond manages ("KEY=VALUE" or "KEY", all must
// match), so several runs or tenants on one host each manage only their own containers.
//
// DockerSource filters on the runtime's side (the Docker API `label` filter);
// LabelFilterSource applies the same filter to any other source (dctk namespace
// containers).
//
// Example:
//   absl::StatusOr<LabelFilter> f = LabelFilter::Parse({"dctk=1a2b"});
//   auto source = std::make_unique<LabelFilterSource>(std::move(inner), *f);
#ifndef DCTK_BASTION_MANAGER_LABEL_FILTER_H_
#define DCTK_BASTION_MANAGER_LABEL_FILTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/optional.h"
#include "bastion/manager/container_source.h"

namespace dctk::bastion {

class LabelFilter {
 public:
  // Each term "KEY=VALUE" (the label has that value) or "KEY" (the label is set); an
  // error names a term with an empty key.
  static absl::StatusOr<LabelFilter> Parse(const std::vector<std::string>& terms);
  bool Matches(const ContainerInfo& c) const;
  const std::vector<std::string>& terms() const { return terms_; }

 private:
  std::vector<std::string> terms_;
  std::vector<std::pair<std::string, absl::optional<std::string>>> parsed_;
};

// Lists `inner`'s containers that match `filter`.
class LabelFilterSource : public ContainerSource {
 public:
  LabelFilterSource(std::unique_ptr<ContainerSource> inner, LabelFilter filter)
      : inner_(std::move(inner)), filter_(std::move(filter)) {}
  std::string name() const override { return inner_->name(); }
  absl::StatusOr<std::vector<ContainerInfo>> List() override;
  bool WaitForChange(absl::Duration timeout) override { return inner_->WaitForChange(timeout); }
  absl::StatusOr<std::string> HostNetworkCgroup(const std::string& runtime_id) const override {
    return inner_->HostNetworkCgroup(runtime_id);
  }

 private:
  std::unique_ptr<ContainerSource> inner_;
  LabelFilter filter_;
};

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_MANAGER_LABEL_FILTER_H_
