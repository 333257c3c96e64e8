// ControllerProcess: mom_controller (the MOM control plane) as a child
// process of a test or tool, configuring a Testbed's switches from a fabric
// file the way a deployment does; its stdout (one line per configuration it
// pushed) read line by line. The process is stopped (SIGTERM, then reaped)
// when the object goes, also when a test assertion failed, and killed by the
// kernel if its parent dies first.
//
// Example:
//   ControllerProcess controller;
//   CHECK_OK(controller.Start("mom/controller/mom_controller", "/tmp/f.conf",
//                             {"--interval_ms=100"}));
//   std::string line = controller.NextLine();  // "mom_controller configured: ..."
#ifndef DCTK_MOM_TESTBED_CONTROLLER_PROCESS_H_
#define DCTK_MOM_TESTBED_CONTROLLER_PROCESS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/process/child_process.h"

namespace dctk::mom {

class ControllerProcess {
 public:
  ControllerProcess() = default;
  ~ControllerProcess() { Stop(); }
  ControllerProcess(const ControllerProcess&) = delete;
  ControllerProcess& operator=(const ControllerProcess&) = delete;

  // Starts `binary --fabric=fabric_path flags...`; its stderr stays ours.
  absl::Status Start(const std::string& binary, const std::string& fabric_path,
                     const std::vector<std::string>& flags = {});
  // The next line it prints, or "" if none comes within `guard_ms` (0: only
  // what is already there; a line begun but not finished is kept for the next call).
  std::string NextLine(int guard_ms = 30000);
  // Stops it (SIGTERM) and waits for it; nothing if not running.
  void Stop();

 private:
  std::unique_ptr<ChildProcess> child_;
};

}  // namespace dctk::mom

#endif  // DCTK_MOM_TESTBED_CONTROLLER_PROCESS_H_
