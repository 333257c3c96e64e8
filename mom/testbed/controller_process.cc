#include "mom/testbed/controller_process.h"

#include <signal.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"

namespace dctk::mom {

absl::Status ControllerProcess::Start(const std::string& binary, const std::string& fabric_path,
                                      const std::vector<std::string>& flags) {
  if (child_ != nullptr && child_->running()) {
    return absl::FailedPreconditionError("mom_controller already started");
  }
  if (access(binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(
        absl::StrCat("mom_controller binary '", binary, "' is not executable"));
  }
  std::vector<std::string> args = {binary, "--fabric=" + fabric_path};
  args.insert(args.end(), flags.begin(), flags.end());
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Start(std::move(args), {.out = ChildOutput::Pipe(), .stop_signal = SIGTERM});
  if (!child.ok()) return child.status();
  child_ = *std::move(child);
  return absl::OkStatus();
}

std::string ControllerProcess::NextLine(int guard_ms) {
  if (child_ == nullptr) return "";
  return child_->ReadLine(absl::Milliseconds(guard_ms)).value_or("");
}

void ControllerProcess::Stop() { child_.reset(); }

}  // namespace dctk::mom
