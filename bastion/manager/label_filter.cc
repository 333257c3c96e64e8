#include "bastion/manager/label_filter.h"

#include "absl/strings/str_cat.h"

namespace dctk::bastion {

absl::StatusOr<LabelFilter> LabelFilter::Parse(const std::vector<std::string>& terms) {
  LabelFilter f;
  for (const std::string& term : terms) {
    const size_t eq = term.find('=');
    const std::string key = term.substr(0, eq);
    if (key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("label filter '", term, "': expected KEY=VALUE or KEY"));
    }
    f.terms_.push_back(term);
    f.parsed_.push_back({key, eq == std::string::npos
                                  ? absl::nullopt
                                  : absl::optional<std::string>(term.substr(eq + 1))});
  }
  return f;
}

bool LabelFilter::Matches(const ContainerInfo& c) const {
  for (const auto& [key, value] : parsed_) {
    auto it = c.labels.find(key);
    if (it == c.labels.end() || (value && it->second != *value)) return false;
  }
  return true;
}

absl::StatusOr<std::vector<ContainerInfo>> LabelFilterSource::List() {
  absl::StatusOr<std::vector<ContainerInfo>> all = inner_->List();
  if (!all.ok()) return all.status();
  std::vector<ContainerInfo> out;
  for (ContainerInfo& c : *all) {
    if (filter_.Matches(c)) out.push_back(std::move(c));
  }
  return out;
}

}  // namespace dctk::bastion
