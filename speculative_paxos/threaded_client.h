// ThreadedClient: a replicated service's client library for embedding in
// another process (e.g. a FaRM machine talking to its configuration manager).
//
// It owns a transport and runs the transport's event loop on its own thread,
// so the host process needs no event loop of its own. Calls are thread-safe:
// `Call` is asynchronous (the callback runs on the client's thread),
// `CallAndWait` blocks. Up to `concurrency` requests are in flight at once
// (one `Client` each); further calls wait in a queue. Every call has a
// timeout; a call that times out returns DeadlineExceeded and its outcome is
// unknown (the service may still execute it), as with any RPC. Leader changes
// are hidden: the Client resends, follows the newest stamp it hears of and, in
// leader mode, tries the next leader, all within the call's timeout.
//
// Example:
//   ThreadedClientOptions o;
//   o.client.replicas = {r0, r1, r2};
//   absl::StatusOr<std::unique_ptr<ThreadedClient>> c = ThreadedClient::Create(o);
//   absl::StatusOr<std::string> r = (*c)->CallAndWait(KvApp::Put("k", "v"), absl::Seconds(1));
//   (*c)->Call(KvApp::Get("k"), absl::Seconds(1),
//              [](absl::StatusOr<std::string> r) { ... runs on the client's thread ... });
#ifndef DCTK_SPECULATIVE_PAXOS_THREADED_CLIENT_H_
#define DCTK_SPECULATIVE_PAXOS_THREADED_CLIENT_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/transport/transport.h"
#include "speculative_paxos/client.h"

namespace dctk::spaxos {

struct ThreadedClientOptions {
  // Replicas, protocol mode, resend timeout, multicast group.
  ClientConfig client;
  // Where the client endpoints bind (each on its own port if port is 0).
  transport::Address bind = transport::Address::Loopback(0);
  // Requests in flight at once; more calls queue (1 to 256).
  int concurrency = 1;
  // Client ids are client_id_base + 0 .. concurrency-1 and must never be
  // reused against the same group (replicas drop requests of an id's older
  // incarnation as stale). 0: a random base (low 8 bits zero).
  uint64_t client_id_base = 0;
};

class ThreadedClient {
 public:
  using Callback = std::function<void(absl::StatusOr<std::string> result)>;

  // Runs on `transport` (which it owns) on a thread it starts.
  static absl::StatusOr<std::unique_ptr<ThreadedClient>> Create(
      ThreadedClientOptions options, std::unique_ptr<transport::Transport> transport);
  // Same, on a new UdpTransport.
  static absl::StatusOr<std::unique_ptr<ThreadedClient>> Create(ThreadedClientOptions options);

  // Stops the thread; pending calls get Cancelled.
  ~ThreadedClient();
  ThreadedClient(const ThreadedClient&) = delete;
  ThreadedClient& operator=(const ThreadedClient&) = delete;

  // Thread-safe. `done` runs once, on the client's thread, with the result,
  // DeadlineExceeded after `timeout`, or Cancelled if the client is destroyed.
  void Call(std::string op, absl::Duration timeout, Callback done);
  // Blocks until Call's result. Must not be called on the client's thread
  // (from a callback).
  absl::StatusOr<std::string> CallAndWait(std::string op, absl::Duration timeout);

  // Sum over the client endpoints, taken on the client's thread: from another
  // thread it waits for the loop to get to it (so, like CallAndWait, not
  // after the loop stopped). Thread-safe.
  ClientStats stats();

 private:
  struct PendingCall {
    uint64_t id;
    std::string op;
    Callback done;
    transport::TimerId timer = 0;
    int client = -1;  // index into clients_ once in flight
  };

  ThreadedClient(ThreadedClientOptions options, std::unique_ptr<transport::Transport> transport);
  absl::Status StartClients();

  // Loop thread only.
  void Enqueue(std::shared_ptr<PendingCall> call, absl::Duration timeout);
  void Dispatch();
  void OnTimeout(uint64_t call_id);
  void Finish(std::shared_ptr<PendingCall> call, absl::StatusOr<std::string> result);

  const ThreadedClientOptions options_;
  std::unique_ptr<transport::Transport> transport_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::vector<std::shared_ptr<PendingCall>> in_flight_;  // per client, or null
  std::deque<std::shared_ptr<PendingCall>> queue_;
  uint64_t next_call_ = 1;
  std::thread loop_;
};

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_THREADED_CLIENT_H_
