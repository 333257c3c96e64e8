#include "common/process/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace dctk {
namespace {

// What the child does with one output stream between fork and exec: nothing,
// dup2 a pipe's write end, or open a file (only async-signal-safe calls).
struct Redirect {
  ChildOutput::Kind kind = ChildOutput::Kind::kInherit;
  int pipe[2] = {-1, -1};
  const char* path = nullptr;
  int flags = 0;
};

absl::Status MakeRedirect(const ChildOutput& output, const std::string& program, Redirect* r) {
  r->kind = output.kind;
  if (output.kind == ChildOutput::Kind::kPipe && pipe2(r->pipe, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe for ", program, ": ", strerror(errno)));
  }
  if (output.kind == ChildOutput::Kind::kFile) {
    r->path = output.path.c_str();
    r->flags = O_WRONLY | O_CREAT | (output.append ? O_APPEND : O_TRUNC);
  }
  return absl::OkStatus();
}

// In the child: false if the stream could not be set up.
bool ApplyRedirect(const Redirect& r, int target) {
  switch (r.kind) {
    case ChildOutput::Kind::kInherit:
      return true;
    case ChildOutput::Kind::kPipe:
      return dup2(r.pipe[1], target) == target;
    case ChildOutput::Kind::kFile: {
      const int fd = open(r.path, r.flags, 0644);
      return fd >= 0 && dup2(fd, target) == target;
    }
  }
  return false;
}

void ClosePipe(Redirect& r) {
  for (int& fd : r.pipe) {
    if (fd >= 0) close(fd);
    fd = -1;
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(std::vector<std::string> args,
                                                                  ChildOptions options) {
  if (args.empty()) return absl::InvalidArgumentError("no program to start");
  const std::string& program = args[0];
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  Redirect out, err;
  absl::Status s = MakeRedirect(options.out, program, &out);
  if (s.ok()) s = MakeRedirect(options.err, program, &err);
  // The child writes errno here if it cannot exec; exec closes it (CLOEXEC).
  int failed[2] = {-1, -1};
  if (s.ok() && pipe2(failed, O_CLOEXEC) != 0) {
    s = absl::InternalError(absl::StrCat("pipe for ", program, ": ", strerror(errno)));
  }
  if (!s.ok()) {
    ClosePipe(out);
    ClosePipe(err);
    return s;
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    if (options.death_signal != 0) {
      prctl(PR_SET_PDEATHSIG, options.death_signal);
      if (getppid() != parent) _exit(0);  // the parent died before prctl
    }
    if (options.own_process_group) setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (ApplyRedirect(out, STDOUT_FILENO) && ApplyRedirect(err, STDERR_FILENO)) {
      execv(argv[0], argv.data());
    }
    const int error = errno;
    (void)!write(failed[1], &error, sizeof(error));
    _exit(127);
  }
  const int fork_error = errno;
  close(failed[1]);
  if (out.pipe[1] >= 0) close(out.pipe[1]);
  if (err.pipe[1] >= 0) close(err.pipe[1]);
  out.pipe[1] = err.pipe[1] = -1;
  if (pid < 0) {
    close(failed[0]);
    ClosePipe(out);
    ClosePipe(err);
    return absl::InternalError(absl::StrCat("fork for ", program, ": ", strerror(fork_error)));
  }
  int exec_error = 0;
  ssize_t n;
  do {
    n = read(failed[0], &exec_error, sizeof(exec_error));
  } while (n < 0 && errno == EINTR);
  close(failed[0]);
  if (n == sizeof(exec_error)) {
    waitpid(pid, nullptr, 0);
    ClosePipe(out);
    ClosePipe(err);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot run ", program, ": ", strerror(exec_error)));
  }
  std::unique_ptr<ChildProcess> child(new ChildProcess());
  child->pid_ = pid;
  child->own_group_ = options.own_process_group;
  child->stop_signal_ = options.stop_signal;
  child->out_.fd = out.pipe[0];
  child->err_.fd = err.pipe[0];
  return child;
}

ChildProcess::~ChildProcess() {
  Kill(stop_signal_);
  if (out_.fd >= 0) close(out_.fd);
  if (err_.fd >= 0) close(err_.fd);
}

absl::StatusOr<std::string> ChildProcess::ReadLine(absl::Duration timeout) {
  return ReadLineFrom(out_, timeout);
}

absl::StatusOr<std::string> ChildProcess::ReadErrLine(absl::Duration timeout) {
  return ReadLineFrom(err_, timeout);
}

absl::StatusOr<std::string> ChildProcess::ReadToEnd(absl::Duration timeout) {
  if (out_.fd < 0) return absl::FailedPreconditionError("the child's output is not piped");
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    const absl::Status s = ReadMore(out_, deadline);
    if (absl::IsOutOfRange(s)) return std::exchange(out_.buffer, std::string());
    if (!s.ok()) {
      return absl::DeadlineExceededError(absl::StrCat("output of child ", pid_, " did not end in ",
                                                      absl::FormatDuration(timeout), "; have: '",
                                                      out_.buffer, "'"));
    }
  }
}

absl::StatusOr<std::string> ChildProcess::ReadLineFrom(Stream& stream, absl::Duration timeout) {
  if (stream.fd < 0) return absl::FailedPreconditionError("the child's output is not piped");
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    if (const size_t nl = stream.buffer.find('\n'); nl != std::string::npos) {
      std::string line = stream.buffer.substr(0, nl);
      stream.buffer.erase(0, nl + 1);
      return line;
    }
    const absl::Status s = ReadMore(stream, deadline);
    if (absl::IsDeadlineExceeded(s)) {
      return absl::DeadlineExceededError(
          absl::StrCat("no line from child ", pid_, "; have: '", stream.buffer, "'"));
    }
    if (!s.ok()) {
      return absl::OutOfRangeError(
          absl::StrCat("output of child ", pid_, " ended; have: '", stream.buffer, "'"));
    }
  }
}

absl::Status ChildProcess::ReadMore(Stream& stream, absl::Time deadline) {
  for (;;) {
    int ms = -1;
    if (deadline != absl::InfiniteFuture()) {
      const absl::Duration left = std::max(deadline - absl::Now(), absl::ZeroDuration());
      ms = static_cast<int>(absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))));
    }
    pollfd p{.fd = stream.fd, .events = POLLIN, .revents = 0};
    const int ready = poll(&p, 1, ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) return absl::DeadlineExceededError("no data");
    char chunk[4096];
    const ssize_t n = read(stream.fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::OutOfRangeError("end of stream");
    stream.buffer.append(chunk, n);
    return absl::OkStatus();
  }
}

bool ChildProcess::Signal(int sig) {
  if (pid_ <= 0) return false;
  return kill(own_group_ ? -pid_ : pid_, sig) == 0 || kill(pid_, sig) == 0;
}

bool ChildProcess::Pause() {
  if (!Signal(SIGSTOP)) return false;
  int status = 0;
  for (;;) {
    const pid_t r = waitpid(pid_, &status, WUNTRACED);
    if (r == pid_ && WIFSTOPPED(status)) return true;
    if (r < 0 && errno == EINTR) continue;
    if (r == pid_) Reaped(status);
    return false;
  }
}

int ChildProcess::Kill(int sig) {
  if (!Signal(sig)) return -1;
  return Wait();
}

int ChildProcess::Reaped(int status) {
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int ChildProcess::Wait() {
  if (pid_ <= 0) return -1;
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) {
      pid_ = -1;
      return -1;
    }
  }
  return Reaped(status);
}

absl::StatusOr<int> ChildProcess::Wait(absl::Duration timeout) {
  if (pid_ <= 0) return -1;
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) return Reaped(status);
    if (r < 0 && errno != EINTR) {
      pid_ = -1;
      return -1;
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("child ", pid_, " did not exit within ", absl::FormatDuration(timeout)));
    }
    // Reaping has no fd to wait on; a short poll keeps the bounded wait cheap.
    poll(nullptr, 0, 10);
  }
}

}  // namespace dctk
