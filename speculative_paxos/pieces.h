// Pieces: messages that carry log entries, split to a datagram byte budget
// and put back together.
//
// StartLog and LogReport carry as many entries as a log holds (thousands). As
// one datagram they exceed an Ethernet frame, and are lost wherever IP
// fragments are not forwarded (the MOM switch's DPDK af_packet ports drop
// datagrams larger than a frame; speculative_paxos/over_mom). SplitEntries
// cuts such a message into pieces: each is a copy of the message's other
// fields with a run of consecutive entries and fits the budget (an entry too
// large for the budget on its own still goes, alone in its piece).
// PieceAssembler collects the pieces of one message in any order (duplicates
// ignored; a piece of another message starts over) until it holds every slot
// from base+1 to end, checks that their hashes chain from the base hash, and
// hands the entries over in slot order. Pieces go in windows of kPieceWindow;
// a lost piece is asked for again by the protocol's own retries
// (replica_change.cc).
//
// Example:
//   for (const StartLog& piece : SplitEntries(start, PayloadBudget(config.max_datagram))) {
//     transport->Send(me, follower, piece);
//   }
//   ...  // at the follower, for each piece m:
//   if (assembler.Add(&m) && assembler.Take(m.base_hash(), m.mutable_entries())) {
//     Install(m);  // m is now the whole message
//   }
#ifndef DCTK_SPECULATIVE_PAXOS_PIECES_H_
#define DCTK_SPECULATIVE_PAXOS_PIECES_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "speculative_paxos/spaxos.pb.h"

namespace dctk::spaxos {

// Datagrams sent back to back to one replica in answer to one request (a
// window): at most 8 x 1400 bytes, so bursts stay well within a switch port's
// queue (the MOM switch holds 256 frames per port and band) and a lost piece
// costs one window, not a whole log. More than this goes on request.
inline constexpr size_t kPieceWindow = 8;

// Payload bytes (message) of a datagram of `max_datagram` bytes (our frame
// header included).
size_t PayloadBudget(int max_datagram);

// Bytes `e` adds to a message as one element of a repeated field.
size_t EntryBytes(const Entry& e);

// `whole` as pieces within `budget` payload bytes (see above); one piece
// (without entries) if it has none.
template <typename M>
std::vector<M> SplitEntries(M whole, size_t budget) {
  google::protobuf::RepeatedPtrField<Entry> entries;
  entries.Swap(whole.mutable_entries());
  const size_t header = whole.ByteSizeLong();
  std::vector<M> pieces;
  int i = 0;
  do {
    M& piece = pieces.emplace_back(whole);
    size_t bytes = header;
    while (i < entries.size()) {
      const size_t b = EntryBytes(entries[i]);
      if (piece.entries_size() > 0 && bytes + b > budget) break;
      bytes += b;
      piece.add_entries()->Swap(&entries[i]);
      ++i;
    }
  } while (i < entries.size());
  return pieces;
}

// Collects the pieces of one split message (StartLog, LogReport: messages
// with base(), end() and entries at slots base+1 .. end).
class PieceAssembler {
 public:
  // Moves the piece's entries in (the piece keeps its other fields). A piece
  // whose other fields differ from the collected ones belongs to another
  // message: what was collected is dropped. Entries outside (base, end] are
  // ignored. True once every slot is held.
  template <typename M>
  bool Add(M* piece) {
    google::protobuf::RepeatedPtrField<Entry> entries;
    entries.Swap(piece->mutable_entries());
    return AddEntries(piece->SerializeAsString(), piece->base(), piece->end(), &entries);
  }
  // Once complete: moves out the entries base+1 .. end in slot order if their
  // hashes chain from `base_hash`, and clears. If they do not (pieces of
  // different logs), clears and returns false.
  bool Take(absl::string_view base_hash, google::protobuf::RepeatedPtrField<Entry>* out);
  // The first slot not held (end + 1 when complete); 0 when empty.
  uint64_t FirstMissing() const;
  bool empty() const { return !active_; }
  void Clear();

 private:
  bool AddEntries(std::string header, uint64_t base, uint64_t end,
                  google::protobuf::RepeatedPtrField<Entry>* entries);

  bool active_ = false;
  std::string header_;  // the message without entries, serialized
  uint64_t base_ = 0, end_ = 0;
  std::map<uint64_t, Entry> entries_;
};

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_PIECES_H_
