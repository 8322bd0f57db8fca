#pragma once

#include <memory>

#include "actors/interfaces.hpp"
#include "actors/stage_health.hpp"
#include "infra/metrics.hpp"
#include "infra/ports.hpp"

namespace vw {

struct dedup_state {
  std::shared_ptr<claim_store> claims;
  std::shared_ptr<metrics> stats;
  stage_health health{"dedup", "Redis"};
  static inline const char* name = "dedup";
};

// Claims known voters in voted_hashes (one atomic script per batch): the
// first claim is valid, any later one a duplicate.
dedup_actor::behavior_type dedup(dedup_actor::stateful_pointer<dedup_state> self,
                                 std::shared_ptr<claim_store> claims,
                                 std::shared_ptr<metrics> stats);

} // namespace vw
