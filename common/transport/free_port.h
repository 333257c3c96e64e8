// FreeLoopbackUdpPort: a UDP port on 127.0.0.1 that was free a moment ago, for tests and
// benchmarks that must write every peer's address before the peers start (a replica group's
// configuration). Another process may take it in between; tests tolerate that by retrying
// or by being rare enough not to matter.
//
//   config.replicas.push_back(Address::Loopback(FreeLoopbackUdpPort()));
#ifndef DCTK_COMMON_TRANSPORT_FREE_PORT_H_
#define DCTK_COMMON_TRANSPORT_FREE_PORT_H_

#include <cstdint>

namespace dctk::transport {

uint16_t FreeLoopbackUdpPort();

}  // namespace dctk::transport

#endif  // DCTK_COMMON_TRANSPORT_FREE_PORT_H_
