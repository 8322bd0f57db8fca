#pragma once

#include <memory>

#include "actors/interfaces.hpp"
#include "actors/stage_health.hpp"
#include "infra/metrics.hpp"
#include "infra/ports.hpp"

namespace vw {

struct validator_state {
  std::shared_ptr<voter_registry> registry;
  std::shared_ptr<metrics> stats;
  stage_health health{"validator", "Redis"};
  static inline const char* name = "validator";
};

// Marks ballots whose voter is not in valid_hashes as invalid.
validator_actor::behavior_type validator(validator_actor::stateful_pointer<validator_state> self,
                                         std::shared_ptr<voter_registry> registry,
                                         std::shared_ptr<metrics> stats);

} // namespace vw
