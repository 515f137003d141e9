#include "cluster/cluster_backend.h"

namespace weft::cluster {

std::string_view SessionStateName(SessionState state) {
  switch (state) {
    case SessionState::kConnected:
      return "connected";
    case SessionState::kDisconnected:
      return "disconnected";
    case SessionState::kExpired:
      return "expired";
    case SessionState::kRejoined:
      return "rejoined";
  }
  WEFT_ASSERT(false);
  return "";
}

}  // namespace weft::cluster
