#include "common/transport/transport.h"

namespace dctk::transport {

uint32_t TypeIdOf(absl::string_view full_type_name) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (unsigned char c : full_type_name) {
    h = (h ^ c) * 16777619u;
  }
  return h;
}

}  // namespace dctk::transport
