// SimTransport: a deterministic, simulated network and clock for protocol tests.
//
// Everything (message deliveries, timers, posted callbacks) is an event in one
// queue ordered by (virtual time, sequence number), and every random choice
// comes from one RNG seeded in the constructor, so the same seed and the same
// test give the same run, event for event. Nothing sleeps: the Run* methods
// jump virtual time to the next event.
//
// Faults are an API. Filters see every message copy (each member's copy of a
// multicast separately) and can drop it or add delay; canned factories build
// drop / delay / duplicate / reorder / partition filters from the transport's
// seeded RNG, optionally limited to a type id, sender or destination. Crash()
// isolates an address (everything to or from it is dropped) until Restart();
// tests can also destroy a protocol object (it Unregisters and its Timeouts
// cancel) and register a new one at the same address.
//
// Not thread-safe except Post() and Stop(): drive it from the test's thread.
//
// Example:
//   SimTransport net(/*seed=*/42);
//   Replica a(&net, Address(0x0a000001, 1)), b(&net, Address(0x0a000002, 1));
//   net.AddFilter(1, net.DropWithProbability(0.1));
//   net.AddFilter(2, net.Partition({a.address()}, {b.address()}));
//   ASSERT_TRUE(net.RunUntil([&] { return a.committed() == 10; }, absl::Seconds(5)));
#ifndef DCTK_COMMON_TRANSPORT_SIM_TRANSPORT_H_
#define DCTK_COMMON_TRANSPORT_SIM_TRANSPORT_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/types/optional.h"
#include "common/transport/framing.h"
#include "common/transport/transport.h"

namespace dctk::transport {

// Why SimTransport did not deliver a message copy.
enum class SimDropReason : uint8_t {
  kFilter = 0,      // a filter returned false
  kCrashed = 1,     // sender or destination was Crash()ed
  kNoReceiver = 2,  // nothing registered at the destination when it arrived
  kNoMembers = 3,   // multicast to a group nobody (else) has joined
};
inline constexpr int kNumSimDropReasons = 4;

class SimTransport : public Transport {
 public:
  // Decides the fate of one message copy: false drops it; may add to
  // `*extra_delay` (on top of the default latency).
  using Filter = std::function<bool(const Address& from, const Address& to,
                                    const Envelope& msg, absl::Duration* extra_delay)>;

  // Which copies a canned filter applies to; unset fields match everything.
  struct Match {
    absl::optional<uint32_t> type_id;
    absl::optional<Address> from;
    absl::optional<Address> to;
    bool Matches(const Address& f, const Address& t, const Envelope& msg) const;
  };

  struct Stats {
    uint64_t sent = 0;        // SendRaw calls accepted
    uint64_t delivered = 0;   // ReceiveMessage calls
    uint64_t duplicated = 0;  // extra copies made by Duplicate filters
    std::array<uint64_t, kNumSimDropReasons> dropped{};
    MalformedCounts malformed{};  // only kBadPayload can happen here
    uint64_t total_dropped() const;
  };

  // Virtual time starts at kEpoch (2020-01-01T00:00:00Z).
  static const absl::Time kEpoch;
  static constexpr absl::Duration kDefaultLatency = absl::Microseconds(50);

  explicit SimTransport(uint64_t seed, absl::Duration one_way_latency = kDefaultLatency);
  ~SimTransport() override;

  // Transport.
  absl::StatusOr<Address> Register(TransportReceiver* receiver, const Address& addr,
                                   const EndpointOptions& options = {}) override;
  void Unregister(TransportReceiver* receiver) override;
  absl::Status JoinGroup(TransportReceiver* receiver, const Address& group) override;
  absl::Status LeaveGroup(TransportReceiver* receiver, const Address& group) override;
  absl::Status SendRaw(TransportReceiver* sender, const Address& to, uint32_t type_id,
                       absl::string_view payload) override;
  TimerId Timer(absl::Duration delay, std::function<void()> cb) override;
  bool CancelTimer(TimerId id) override;
  absl::Time Now() const override { return now_; }
  void Post(std::function<void()> cb) override;
  // Runs events until Stop() or until no event is left.
  void Run() override;
  void Stop() override;

  // Runs every event due within `d` of now, then sets the clock to now + d.
  void RunFor(absl::Duration d);
  // Runs events until `done()` (checked before each event) or until `limit` of
  // virtual time has passed; returns done().
  bool RunUntil(std::function<bool()> done, absl::Duration limit);
  // Runs until no message or posted callback is pending. Timers due before the
  // last message fire in order; later ones stay pending (so periodic timers do
  // not keep it running forever).
  void RunUntilIdle();

  void set_default_latency(absl::Duration d) { latency_ = d; }
  absl::Duration default_latency() const { return latency_; }

  // Filters run in ascending id order on every copy; AddFilter replaces an
  // existing id.
  void AddFilter(int id, Filter f);
  void RemoveFilter(int id);

  // Canned filters. They draw from this transport's RNG and must not outlive it.
  Filter DropWithProbability(double p, Match match = {});
  Filter DropAll(Match match = {}) { return DropWithProbability(1.0, match); }
  Filter Delay(absl::Duration d, Match match = {});
  // Uniform extra delay in [lo, hi].
  Filter RandomDelay(absl::Duration lo, absl::Duration hi, Match match = {});
  // With probability p, one more copy is delivered, up to `spread` later.
  Filter Duplicate(double p, absl::Duration spread = absl::Microseconds(100),
                   Match match = {});
  // With probability p, holds the copy back by a uniform delay in (0, max_extra],
  // so messages sent after it overtake it.
  Filter Reorder(double p, absl::Duration max_extra, Match match = {});
  // Drops every copy between an address in `a` and one in `b` (both ways).
  Filter Partition(std::vector<Address> a, std::vector<Address> b);

  // Drops everything sent from or delivered to `addr` until Restart(addr).
  void Crash(const Address& addr);
  void Restart(const Address& addr);
  bool IsCrashed(const Address& addr) const { return crashed_.contains(addr); }

  const Stats& stats() const { return stats_; }
  // Uniform in [0, 1), from the seeded RNG (also for tests' own choices).
  double RandomUnit();
  // Uniform in [0, n), n > 0.
  uint64_t RandomBelow(uint64_t n);

 private:
  enum class EventKind : uint8_t { kMessage, kTimer, kPost };
  struct Event {
    absl::Time at;
    uint64_t seq;
    EventKind kind;
    TimerId timer;  // kTimer, kPost: key into timers_
    Address from, to;
    uint32_t type_id;
    std::string payload;
  };
  struct Later {
    bool operator()(const Event& a, const Event& b) const {
      return a.at != b.at ? a.at > b.at : a.seq > b.seq;
    }
  };
  struct Endpoint {
    Address addr;
    EndpointOptions options;
  };

  // Filters and schedules one copy of a message from `from` to `to`.
  void SendCopy(const Address& from, const Address& to, uint32_t type_id,
                absl::string_view payload);
  void Push(Event e);
  // Pops and runs the earliest event; false if the queue is empty.
  bool Step();
  void Deliver(Event& e);
  void DrainPosts();
  bool Drop(SimDropReason reason) {
    ++stats_.dropped[static_cast<int>(reason)];
    return false;
  }

  absl::Time now_ = kEpoch;
  absl::Duration latency_;
  std::mt19937_64 rng_;
  uint64_t next_seq_ = 0;
  TimerId next_timer_ = 1;
  std::vector<Event> queue_;  // binary heap under Later
  size_t pending_messages_ = 0;  // message and post events in queue_
  absl::flat_hash_map<TimerId, std::function<void()>> timers_;

  absl::flat_hash_map<TransportReceiver*, Endpoint> endpoints_;
  absl::flat_hash_map<Address, TransportReceiver*> receivers_;
  std::map<Address, std::set<Address>> groups_;  // ordered: deterministic fan-out
  absl::flat_hash_set<Address> crashed_;
  std::map<int, Filter> filters_;
  int duplicates_requested_ = 0;  // set by Duplicate filters during SendCopy
  absl::Duration duplicate_spread_;

  std::atomic<bool> stop_{false};
  // std::mutex, not absl::Mutex: Debian's absl is not TSAN-instrumented, so
  // --config=tsan would not see absl::Mutex's synchronization.
  std::mutex posts_mu_;
  std::vector<std::function<void()>> posts_;  // guarded by posts_mu_
  std::atomic<bool> has_posts_{false};

  Stats stats_;
};

}  // namespace dctk::transport

#endif  // DCTK_COMMON_TRANSPORT_SIM_TRANSPORT_H_
