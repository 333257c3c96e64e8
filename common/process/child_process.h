// ChildProcess: a program a test, tool or bench starts as a separate process
// (farmd, spaxos_replica, mom_switch, a shell command in a namespace). Its
// stdout and stderr are inherited, piped to the parent (read line by line) or
// written to a file; the kernel sends it `death_signal` if the parent dies
// first, so nothing outlives a crashed test; it is sent `stop_signal` and
// reaped when the ChildProcess is destroyed. The child starts with an empty
// signal mask (a tool may block SIGINT/SIGTERM in all its threads to handle
// them itself) and, with `own_process_group`, in its own process group so
// that signals reach what it starts too (`ip netns exec`'s child, `sh -c`).
//
// Example:
//   absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Start(
//       {"/bin/echo", "hi"}, {.out = ChildOutput::Pipe()});
//   (*child)->ReadLine(absl::Seconds(5));  // "hi"
//   (*child)->Wait();                      // 0
#ifndef DCTK_COMMON_PROCESS_CHILD_PROCESS_H_
#define DCTK_COMMON_PROCESS_CHILD_PROCESS_H_

#include <signal.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace dctk {

// Where a child's stdout or stderr goes.
struct ChildOutput {
  enum class Kind { kInherit, kPipe, kFile };
  Kind kind = Kind::kInherit;
  std::string path;    // kFile
  bool append = true;  // kFile: append, else truncate

  static ChildOutput Inherit() { return {}; }
  static ChildOutput Pipe() { return {.kind = Kind::kPipe}; }
  static ChildOutput File(std::string path, bool append = true) {
    return {.kind = Kind::kFile, .path = std::move(path), .append = append};
  }
};

struct ChildOptions {
  ChildOutput out;
  ChildOutput err;
  // Sent by the kernel when the parent dies first; 0: none.
  int death_signal = SIGKILL;
  // Sent at destruction if the child still runs (then reaped).
  int stop_signal = SIGKILL;
  // The child leads a new process group; Signal/Kill reach the whole group.
  bool own_process_group = false;

  // Stdout and stderr appended to the file at `path` (a test's per-process log).
  static ChildOptions LogTo(const std::string& path) {
    return {.out = ChildOutput::File(path), .err = ChildOutput::File(path)};
  }
};

class ChildProcess {
 public:
  // Runs args[0] (a path, not searched in PATH) with `args`. An error names
  // the program when it cannot be started (not executable, fork failed).
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(std::vector<std::string> args,
                                                             ChildOptions options = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // True until the child was reaped (Kill, Wait).
  bool running() const { return pid_ > 0; }

  // The next line (without '\n') the child wrote to its piped stdout / stderr.
  // DeadlineExceeded after `timeout` without a whole line, OutOfRange once the
  // stream ended; both carry what was read of the line so far.
  absl::StatusOr<std::string> ReadLine(absl::Duration timeout = absl::InfiniteDuration());
  absl::StatusOr<std::string> ReadErrLine(absl::Duration timeout = absl::InfiniteDuration());
  // The rest of the piped stdout, to its end (the child and whatever it
  // started closed it, normally by exiting): everything after the lines
  // ReadLine returned, a last line without '\n' included. DeadlineExceeded
  // after `timeout` with what was read so far (kept for the next call).
  absl::StatusOr<std::string> ReadToEnd(absl::Duration timeout = absl::InfiniteDuration());

  // Sends `sig` without waiting; false if the child was already reaped.
  bool Signal(int sig);
  // Sends SIGSTOP and waits until every thread of the child has stopped (so it
  // handles nothing more until SIGCONT); false if it exited instead.
  bool Pause();
  // Sends `sig` and reaps the child: its exit status as Wait() returns it.
  int Kill(int sig);
  // Waits for the child to exit: its exit code, 128 + the signal that killed
  // it, or -1 if it was already reaped.
  int Wait();
  // The same, giving up after `timeout` (DeadlineExceeded, the child still runs).
  absl::StatusOr<int> Wait(absl::Duration timeout);

 private:
  struct Stream {
    int fd = -1;
    std::string buffer;  // bytes read past the last line returned
  };
  ChildProcess() = default;
  absl::StatusOr<std::string> ReadLineFrom(Stream& stream, absl::Duration timeout);
  // Appends what `stream` has to its buffer, waiting for data until
  // `deadline`: OutOfRange once the stream ended, DeadlineExceeded.
  absl::Status ReadMore(Stream& stream, absl::Time deadline);
  int Reaped(int status);

  pid_t pid_ = -1;
  bool own_group_ = false;
  int stop_signal_ = SIGKILL;
  Stream out_;
  Stream err_;
};

}  // namespace dctk

#endif  // DCTK_COMMON_PROCESS_CHILD_PROCESS_H_
