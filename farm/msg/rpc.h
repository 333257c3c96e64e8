// RpcEndpoint: FaRM-style RPC over message rings, one endpoint per thread per
// machine. Each pair of endpoints is joined by two rings (one each way, see
// WireRpc). A request carries a handler id and a call id; the callee's Poll()
// runs the handler and sends the response on the reverse ring. Call() sends
// and then polls (serving incoming requests meanwhile, so two endpoints
// calling each other make progress) until the response arrives or a deadline.
//
// Function shipping: CallAt(addr, ...) runs the handler on the machine that is
// primary for the object at `addr` (from the region table), so a function can
// operate on an object where it lives instead of moving the object.
//
// Idle waiting: on a fabric with doorbells (fabric::DoorbellFabric: the net
// fabric) the endpoint attaches one doorbell to its inboxes and to the words
// its peers write ring heads into, so Call() and an idle Poll() loop sleep
// until a write lands there instead of spinning; elsewhere they poll.
//
// Example:
//   RpcEndpoint<ShmFabric> a(*fa, qa.get(), 1), b(*fb, qb.get(), 2);
//   WireRpc(a, *fa, b, *fb, 64 << 10);
//   b.Register(kEcho, [](fabric::MachineId, absl::Span<const uint8_t> req) {
//     return std::string(req.begin(), req.end());
//   });
//   // thread of b: while (...) b.Poll();   // sleeps when idle (net fabric)
//   absl::StatusOr<std::string> reply = a.Call(2, kEcho, bytes, absl::Seconds(1));
#ifndef DCTK_FARM_MSG_RPC_H_
#define DCTK_FARM_MSG_RPC_H_

#include <sched.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "farm/core/region_table.h"
#include "farm/fabric/doorbell.h"
#include "farm/fabric/fabric.h"
#include "farm/msg/ring_receiver.h"
#include "farm/msg/ring_sender.h"

namespace dctk::farm::msg {

using RpcHandler =
    std::function<std::string(fabric::MachineId from, absl::Span<const uint8_t> request)>;

template <typename F>
  requires fabric::Fabric<F>
class RpcEndpoint {
 public:
  RpcEndpoint(F& fabric, typename F::Queue* queue, fabric::MachineId self)
      : fabric_(fabric), queue_(queue), self_(self) {}

  fabric::MachineId machine() const { return self_; }
  uint64_t bad_frames() const { return bad_frames_; }
  // Calls that ended because their `give_up` predicate said so.
  uint64_t given_up() const { return given_up_; }
  // Responses that arrived after their Call stopped waiting (dropped).
  uint64_t late_responses() const { return late_responses_; }

  // Control path: messages from `peer` arrive in `inbox` (this machine's
  // registered memory); this endpoint writes its head for that ring to
  // `inbox_head_at_peer`. Messages to `peer` go to `outbox` (peer memory),
  // whose head the peer writes into `outbox_head` (this machine's memory).
  absl::Status AddPeer(fabric::MachineId peer, uint8_t* inbox, uint64_t inbox_size,
                       fabric::RemoteAddress inbox_head_at_peer, fabric::RemoteAddress outbox,
                       uint64_t outbox_size, const uint64_t* outbox_head) {
    auto rx = RingReceiver<F>::Create(fabric_, queue_, inbox, inbox_size, inbox_head_at_peer);
    if (!rx.ok()) return rx.status();
    auto tx = RingSender<F>::Create(fabric_, queue_, outbox, outbox_size, outbox_head);
    if (!tx.ok()) return tx.status();
    if constexpr (fabric::DoorbellFabric<F>) {
      if (!bell_checked_) {
        absl::StatusOr<fabric::Doorbell*> bell = fabric_.NewDoorbell();
        bell_ = bell.ok() ? *bell : nullptr;  // not ok: the fabric's waiters spin
        bell_checked_ = true;
      }
      if (bell_ != nullptr) {
        absl::Status s = fabric_.AttachDoorbell(inbox, bell_);
        if (s.ok()) s = fabric_.AttachDoorbell(outbox_head, bell_);
        if (!s.ok()) return s;
      }
    }
    Peer& p = peers_[peer];
    p.rx = std::move(*rx);
    p.tx = std::move(*tx);
    return absl::OkStatus();
  }

  // Control path: forgets `peer`'s rings (a machine the configuration
  // dropped): they are no longer polled, a Call to `peer` is NotFound until
  // AddPeer wires it again, and requests from it received but not yet
  // handled are dropped. Deregistering the ring memory is the caller's.
  absl::Status RemovePeer(fabric::MachineId peer) {
    if (peers_.erase(peer) == 0) {
      return absl::NotFoundError(
          absl::StrCat("rpc: machine ", self_, " has no ring to machine ", peer));
    }
    std::erase_if(inbound_, [peer](const Request& r) { return r.from == peer; });
    return absl::OkStatus();
  }
  size_t peer_count() const { return peers_.size(); }
  bool HasPeer(fabric::MachineId peer) const { return peers_.contains(peer); }

  void Register(uint16_t handler, RpcHandler fn) { handlers_[handler] = std::move(fn); }

  // Runs after the handlers of the requests one poll found and before any of
  // their responses is sent (group commit: a server that logs each request
  // makes them all durable with one sync here, and no response precedes it).
  void set_before_responses(std::function<void()> fn) { before_responses_ = std::move(fn); }

  // Fault injection, called from inside a handler: the response to the
  // request being handled is not sent, as if the network lost it (the caller
  // times out). Counted in dropped_responses().
  void DropResponse() { drop_response_ = true; }
  uint64_t dropped_responses() const { return dropped_responses_; }

  // Call() gives up the CPU between polls that found nothing (off by default).
  // Where there are fewer cores than polling threads, the callee's thread
  // then runs sooner; with a core each, spinning is faster.
  void set_yield_while_waiting(bool yield) { yield_while_waiting_ = yield; }

  // Collects responses and serves requests that have arrived; returns how
  // many messages were handled. Handlers run here, outside the ring's Poll,
  // and their replies are sent (after set_before_responses' hook) before
  // Poll returns.
  //
  // Adaptive where the endpoint has a doorbell: after `idle_polls`
  // consecutive Polls that handled nothing, a Poll that finds nothing sleeps
  // until something is written into this endpoint's rings (or `idle_wait`
  // passes) and looks again. So a server thread's poll loop spins only
  // briefly after its last message, then stops taking CPU from the threads
  // that move the data (see set_idle_wait).
  absl::StatusOr<int> Poll() {
    const uint32_t seen = bell_ != nullptr ? bell_->epoch() : 0;
    absl::StatusOr<int> n = PollOnce();
    if (!n.ok() || *n > 0 || bell_ == nullptr) {
      idle_ = 0;
      return n;
    }
    if (++idle_ < idle_polls_) return n;
    idle_ = idle_polls_;  // stays idle until something is handled
    bell_->Wait(seen, idle_wait_);
    n = PollOnce();
    if (n.ok() && *n > 0) idle_ = 0;
    return n;
  }

  // How Poll() waits when idle: after `idle_polls` empty Polls in a row, each
  // empty Poll sleeps up to `idle_wait` (0: Poll never sleeps). Defaults: 16
  // polls, 1 ms (the longest a caller that also has other duties may be held).
  void set_idle_wait(uint32_t idle_polls, absl::Duration idle_wait) {
    idle_polls_ = idle_polls;
    idle_wait_ = idle_wait;
  }

  // Whether Call() and an idle Poll() sleep on a doorbell (else they poll).
  bool has_doorbell() const { return bell_ != nullptr; }

  // Sends `request` to `peer`'s `handler` and waits for the response,
  // serving incoming requests meanwhile. DeadlineExceeded when no response
  // came within `timeout`, or, with `give_up`, as soon as `give_up()` says
  // the answer is no longer worth waiting for: it is asked at every poll that
  // found nothing (at least every kGiveUpCheck while the endpoint sleeps on
  // its doorbell), so it must be cheap (e.g. a coordinator whose
  // configuration changed: farm/tx TxClientOptions::give_up_on_new_config).
  // A response that arrives after the caller stopped waiting (timeout or
  // give-up) is dropped and counted in late_responses().
  absl::StatusOr<std::string> Call(fabric::MachineId peer, uint16_t handler,
                                   absl::Span<const uint8_t> request, absl::Duration timeout,
                                   const std::function<bool()>& give_up = nullptr) {
    const PendingCall call = Start(peer, handler, request, timeout);
    absl::StatusOr<std::string> reply;
    Await(absl::MakeConstSpan(&call, 1), absl::MakeSpan(&reply, 1), give_up);
    return reply;
  }

  // Several calls in flight at once (FaRM's coordinator sends a commit
  // phase's messages to all its machines, then waits for every reply): each
  // request leaves in order, then every response is awaited, each with Call's
  // semantics (its own deadline, `give_up` for all, late responses dropped
  // and counted). replies[i] answers calls[i]; a call that could not be sent
  // (NotFound: no ring to that peer) gets its error and the others still go.
  struct Outgoing {
    fabric::MachineId peer;
    uint16_t handler;
    absl::Span<const uint8_t> request;
  };
  std::vector<absl::StatusOr<std::string>> CallAll(absl::Span<const Outgoing> calls,
                                                   absl::Duration timeout,
                                                   const std::function<bool()>& give_up = nullptr) {
    std::vector<PendingCall> pending;
    pending.reserve(calls.size());
    for (const Outgoing& c : calls) pending.push_back(Start(c.peer, c.handler, c.request, timeout));
    std::vector<absl::StatusOr<std::string>> replies(calls.size());
    Await(pending, absl::MakeSpan(replies), give_up);
    return replies;
  }

  // CallAll in two halves, for a caller with work between them (a
  // coordinator runs its own machine's part of the phase while the others'
  // messages are out, and may stop sending midway: fault injection). Start
  // sends one request and returns at once; Await waits for the responses of
  // calls Start returned. Every started call must be awaited: its response
  // is kept until then.
  struct PendingCall {
    fabric::MachineId peer = 0;
    uint16_t handler = 0;
    uint64_t call = 0;  // 0: not sent, see `unsent`
    absl::Time deadline;
    absl::Status unsent;
  };
  PendingCall Start(fabric::MachineId peer, uint16_t handler, absl::Span<const uint8_t> request,
                    absl::Duration timeout) {
    PendingCall p{peer, handler, 0, absl::Now() + timeout, absl::OkStatus()};
    auto it = peers_.find(peer);
    if (it == peers_.end()) {
      p.unsent = absl::NotFoundError(
          absl::StrCat("rpc: machine ", self_, " has no ring to machine ", peer));
      return p;
    }
    const uint64_t call = next_call_++;
    p.unsent = SendFramed(it->second, kRequest, handler, call, request, p.deadline);
    if (p.unsent.ok()) p.call = call;
    return p;
  }
  void Await(absl::Span<const PendingCall> calls, absl::Span<absl::StatusOr<std::string>> replies,
             const std::function<bool()>& give_up = nullptr) {
    absl::InlinedVector<bool, 8> done(calls.size(), false);
    size_t left = calls.size();
    auto finish = [&](size_t i, absl::StatusOr<std::string> r) {
      replies[i] = std::move(r);
      done[i] = true;
      --left;
    };
    for (size_t i = 0; i < calls.size(); ++i) {
      if (calls[i].call == 0) finish(i, calls[i].unsent);
    }
    while (left > 0) {
      for (size_t i = 0; i < calls.size(); ++i) {
        if (done[i]) continue;
        if (auto r = responses_.find(calls[i].call); r != responses_.end()) {
          finish(i, std::move(r->second));
          responses_.erase(r);
        }
      }
      if (left == 0) return;
      const uint32_t seen = bell_ != nullptr ? bell_->epoch() : 0;
      absl::StatusOr<int> n = PollOnce();
      if (!n.ok()) {
        Abandon(calls, done, [&](size_t i) { finish(i, n.status()); });
        return;
      }
      if (*n != 0) continue;
      const absl::Time now = absl::Now();
      absl::Time next = absl::InfiniteFuture();  // the earliest deadline still waited for
      for (size_t i = 0; i < calls.size(); ++i) {
        if (done[i]) continue;
        if (now <= calls[i].deadline) {
          next = std::min(next, calls[i].deadline);
          continue;
        }
        abandoned_.insert(calls[i].call);
        finish(i, absl::DeadlineExceededError(absl::StrCat("rpc ", calls[i].handler,
                                                           " from machine ", self_, " to machine ",
                                                           calls[i].peer, ": no response")));
      }
      if (left == 0) return;
      if (give_up && give_up()) {
        Abandon(calls, done, [&](size_t i) {
          ++given_up_;
          finish(i, absl::DeadlineExceededError(absl::StrCat(
                        "rpc ", calls[i].handler, " from machine ", self_, " to machine ",
                        calls[i].peer, ": no response, caller gave up waiting")));
        });
        return;
      }
      if (bell_ != nullptr) {
        bell_->Wait(seen, give_up ? std::min(next - now, kGiveUpCheck) : next - now);
      } else if (yield_while_waiting_) {
        sched_yield();
      }
    }
  }

  // Function shipping: Call on the primary of `addr`'s region.
  absl::StatusOr<std::string> CallAt(RegionTable::Cache& regions, GlobalAddress addr, uint16_t handler,
                                     absl::Span<const uint8_t> request, absl::Duration timeout) {
    absl::StatusOr<const RegionInfo*> info = regions.Lookup(addr.region());
    if (!info.ok()) return info.status();
    return Call((*info)->primary().machine, handler, request, timeout);
  }

 private:
  static constexpr uint8_t kRequest = 1;
  static constexpr uint8_t kResponse = 2;
  static constexpr uint8_t kNoHandler = 3;
  // Frame: [kind:1][pad:1][handler:2][pad:4][call:8][payload]
  static constexpr size_t kFrame = 16;
  // Longest doorbell sleep of a Call with a give_up predicate (nothing rings
  // the bell when the predicate's answer changes).
  static constexpr absl::Duration kGiveUpCheck = absl::Milliseconds(1);

  struct Peer {
    std::unique_ptr<RingReceiver<F>> rx;
    std::unique_ptr<RingSender<F>> tx;
  };
  struct Request {
    fabric::MachineId from;
    uint16_t handler;
    uint64_t call;
    std::string body;
  };
  struct Response {
    fabric::MachineId to;
    uint8_t kind;
    uint16_t handler;
    uint64_t call;
    std::string body;
  };

  // Stops waiting for every call of `calls` not done yet: its late response
  // will be dropped; `end(i)` settles call i.
  template <typename End>
  void Abandon(absl::Span<const PendingCall> calls, const absl::InlinedVector<bool, 8>& done,
               End end) {
    for (size_t i = 0; i < calls.size(); ++i) {
      if (done[i]) continue;
      abandoned_.insert(calls[i].call);
      end(i);
    }
  }

  // One pass over the inboxes, then the handlers of what arrived.
  absl::StatusOr<int> PollOnce() {
    int total = 0;
    for (auto& [peer, p] : peers_) {
      const fabric::MachineId from = peer;
      auto n = p.rx->Poll([&](absl::Span<const uint8_t> m) { Receive(from, m); }, 32);
      if (!n.ok()) return n.status();
      total += *n;
    }
    // Without a before_responses hook each response leaves right after its
    // handler; with one, after every handler of this pass and the hook.
    const bool batch = static_cast<bool>(before_responses_);
    std::vector<Response> out;  // local: SendFramed may poll (and serve) again
    while (!inbound_.empty()) {
      Request r = std::move(inbound_.front());
      inbound_.pop_front();
      auto h = handlers_.find(r.handler);
      const uint8_t kind = h == handlers_.end() ? kNoHandler : kResponse;
      drop_response_ = false;
      std::string reply = h == handlers_.end() ? std::string() : h->second(r.from, AsBytes(r.body));
      if (drop_response_) {
        drop_response_ = false;
        ++dropped_responses_;
        continue;
      }
      out.push_back({r.from, kind, r.handler, r.call, std::move(reply)});
      if (!batch) {
        if (absl::Status s = SendResponse(out.back()); !s.ok()) return s;
        out.clear();
      }
    }
    if (out.empty()) return total;
    before_responses_();
    for (const Response& r : out) {
      if (absl::Status s = SendResponse(r); !s.ok()) return s;
    }
    return total;
  }

  absl::Status SendResponse(const Response& r) {
    auto p = peers_.find(r.to);
    if (p == peers_.end())
      return absl::OkStatus();  // removed meanwhile (its requests are dropped too)
    return SendFramed(p->second, r.kind, r.handler, r.call, AsBytes(r.body),
                      absl::Now() + absl::Seconds(5));
  }

  absl::Status SendFramed(Peer& p, uint8_t kind, uint16_t handler, uint64_t call,
                          absl::Span<const uint8_t> payload, absl::Time deadline) {
    frame_.assign(kFrame + payload.size(), 0);
    frame_[0] = kind;
    std::memcpy(&frame_[2], &handler, 2);
    std::memcpy(&frame_[8], &call, 8);
    if (!payload.empty()) std::memcpy(&frame_[kFrame], payload.data(), payload.size());
    while (true) {
      const uint32_t seen = bell_ != nullptr ? bell_->epoch() : 0;
      absl::Status s = p.tx->Send(frame_);
      if (!absl::IsResourceExhausted(s)) return s;
      const absl::Time now = absl::Now();
      if (now > deadline) return s;
      // Ring full: keep serving our own inboxes so the peer can drain its;
      // the peer's head report rings the bell.
      std::vector<uint8_t> keep = frame_;
      absl::StatusOr<int> n = PollOnce();
      frame_ = std::move(keep);
      if (!n.ok()) return n.status();
      if (*n == 0 && bell_ != nullptr) bell_->Wait(seen, std::min(deadline - now, absl::Milliseconds(1)));
    }
  }

  static absl::Span<const uint8_t> AsBytes(const std::string& s) {
    return absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }

  // Runs inside the ring's Poll: only records what arrived.
  void Receive(fabric::MachineId from, absl::Span<const uint8_t> m) {
    if (m.size() < kFrame) {
      ++bad_frames_;
      return;
    }
    uint16_t handler;
    uint64_t call;
    std::memcpy(&handler, &m[2], 2);
    std::memcpy(&call, &m[8], 8);
    const absl::Span<const uint8_t> body = m.subspan(kFrame);
    if (m[0] != kRequest && !abandoned_.empty() && abandoned_.erase(call) > 0) {
      ++late_responses_;
      return;
    }
    switch (m[0]) {
      case kRequest:
        inbound_.push_back({from, handler, call, std::string(body.begin(), body.end())});
        break;
      case kResponse:
        responses_[call] = std::string(body.begin(), body.end());
        break;
      case kNoHandler:
        responses_[call] = absl::UnimplementedError(
            absl::StrCat("rpc: machine ", from, " has no handler ", handler));
        break;
      default:
        ++bad_frames_;
    }
  }


  F& fabric_;
  typename F::Queue* queue_;
  const fabric::MachineId self_;
  uint64_t next_call_ = 1;
  absl::flat_hash_map<fabric::MachineId, Peer> peers_;
  absl::flat_hash_map<uint16_t, RpcHandler> handlers_;
  absl::flat_hash_map<uint64_t, absl::StatusOr<std::string>> responses_;
  // Calls whose caller stopped waiting; their late responses are dropped. A
  // call whose response never comes (its peer died) stays listed.
  absl::flat_hash_set<uint64_t> abandoned_;
  uint64_t late_responses_ = 0;
  std::deque<Request> inbound_;
  std::function<void()> before_responses_;
  uint64_t bad_frames_ = 0;  // malformed messages dropped (counted, not fatal)
  bool drop_response_ = false;     // set by DropResponse() inside a handler
  uint64_t dropped_responses_ = 0;
  uint64_t given_up_ = 0;
  bool yield_while_waiting_ = false;
  fabric::Doorbell* bell_ = nullptr;  // owned by the fabric
  bool bell_checked_ = false;
  uint32_t idle_ = 0;  // Polls in a row that handled nothing
  uint32_t idle_polls_ = 16;
  absl::Duration idle_wait_ = absl::Milliseconds(1);
  std::vector<uint8_t> frame_;
};

// Joins two endpoints (on machines connected both ways) with a ring each way
// of `ring_size` bytes, registered on the receiving machine.
template <typename F>
absl::Status WireRpc(RpcEndpoint<F>& a, F& fa, RpcEndpoint<F>& b, F& fb, uint64_t ring_size) {
  auto a_inbox = fa.Register(ring_size);
  auto b_inbox = fb.Register(ring_size);
  auto a_heads = fa.Register(4096);
  auto b_heads = fb.Register(4096);
  for (const auto* r : {&a_inbox, &b_inbox, &a_heads, &b_heads}) {
    if (!r->ok()) return r->status();
  }
  // a -> b ring lives in b_inbox; its head word lives in a_heads.
  // b -> a ring lives in a_inbox; its head word lives in b_heads.
  absl::Status s = a.AddPeer(b.machine(), static_cast<uint8_t*>(a_inbox->base), ring_size,
                             {b.machine(), b_heads->key, 0}, {b.machine(), b_inbox->key, 0}, ring_size,
                             static_cast<const uint64_t*>(a_heads->base));
  if (!s.ok()) return s;
  return b.AddPeer(a.machine(), static_cast<uint8_t*>(b_inbox->base), ring_size,
                   {a.machine(), a_heads->key, 0}, {a.machine(), a_inbox->key, 0}, ring_size,
                   static_cast<const uint64_t*>(b_heads->base));
}

}  // namespace dctk::farm::msg

#endif  // DCTK_FARM_MSG_RPC_H_
