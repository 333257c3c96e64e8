// ReorderingTransport: fault injection on a real transport - a decorator
// that, at the receiver, holds back each message of the chosen types with
// probability `rate` for a random time in (0, max_hold], so messages that
// arrive after it overtake it. It is SimTransport's `Reorder` filter for
// processes on UdpTransport (where no netem qdisc exists to do it in the
// kernel): a replica wraps its transport in one to see client requests in a
// different order than the other replicas, each replica with its own seed.
//
// Messages of other types, and everything else (sends, timers, the loop),
// pass through unchanged (ForwardingTransport). A held message is copied
// (the only allocation, only for held messages) and delivered from a timer
// on the wrapped transport's loop; unregistering a receiver or destroying
// the decorator drops the messages it still holds. `stats().overtaken`
// counts the held messages actually reordered: a matching message that
// arrived after it was handed on before it (a hold during which nothing
// arrives reorders nothing), among all its receivers (a replica has one).
// Loop thread only, like the transport it wraps.
//
// Example (a replica whose client requests are reordered at 0.1%):
//   absl::StatusOr<std::unique_ptr<ReorderingTransport>> net = ReorderingTransport::Create(
//       udp.get(), {.rate = 0.001, .seed = 7, .type_ids = {TypeId<Request>()}});
//   Replica replica(net->get(), config, index, &app);   // registers through it
//   udp->Run();
//   (*net)->stats().held ...
#ifndef DCTK_COMMON_TRANSPORT_REORDERING_TRANSPORT_H_
#define DCTK_COMMON_TRANSPORT_REORDERING_TRANSPORT_H_

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/transport/forwarding_transport.h"

namespace dctk::transport {

struct ReorderOptions {
  double rate = 0;                                   // share of matching messages held, [0, 1]
  absl::Duration max_hold = absl::Microseconds(50);  // a held message waits (0, max_hold]
  uint64_t seed = 1;                                 // same seed, same messages held
  std::vector<uint32_t> type_ids;                    // message types that may be held
};

class ReorderingTransport : public ForwardingTransport {
 public:
  struct Stats {
    uint64_t matched = 0;    // delivered messages of the chosen types
    uint64_t held = 0;       // of which held back
    uint64_t overtaken = 0;  // held ones a later-arriving matching message overtook
  };

  // InvalidArgument for a rate outside [0, 1], a max_hold not above zero or
  // no type ids.
  static absl::StatusOr<std::unique_ptr<ReorderingTransport>> Create(Transport* inner,
                                                                     ReorderOptions options);
  ~ReorderingTransport() override;

  void Unregister(TransportReceiver* receiver) override;

  const Stats& stats() const { return stats_; }

 protected:
  void Deliver(TransportReceiver* to, const Address& from, const Envelope& msg) override;

 private:
  struct Held {
    TimerId timer;
    TransportReceiver* to;
    Address from;
    uint32_t type_id;
    std::string payload;
    uint64_t arrival;  // its number among matching messages (stats_.matched)
  };

  ReorderingTransport(Transport* inner, ReorderOptions options)
      : ForwardingTransport(inner), options_(std::move(options)), rng_(options_.seed) {}
  bool Matches(uint32_t type_id) const;
  // Uniform in [0, 1), from the top 53 bits (as SimTransport, no std:: distribution).
  double RandomUnit() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }
  void Release(uint64_t key);

  const ReorderOptions options_;
  std::mt19937_64 rng_;
  Stats stats_;
  // The highest arrival number among the matching messages handed on so far
  // (any receiver): a held one released below it was overtaken.
  uint64_t newest_forwarded_ = 0;
  uint64_t next_key_ = 0;
  absl::flat_hash_map<uint64_t, Held> held_;
};

}  // namespace dctk::transport

#endif  // DCTK_COMMON_TRANSPORT_REORDERING_TRANSPORT_H_
