#pragma once

#include <memory>

#include "actors/interfaces.hpp"
#include "actors/stage_health.hpp"
#include "infra/metrics.hpp"
#include "infra/ports.hpp"

namespace vw {

struct publisher_state {
  std::shared_ptr<vote_sink> sink;
  std::shared_ptr<metrics> stats;
  stage_health health{"publisher", "RabbitMQ (publishing)"};
  static inline const char* name = "publisher";
};

// Publishes decided ballots (valid to aggregation, others to review) and
// answers once the broker confirmed every message.
publisher_actor::behavior_type publisher(publisher_actor::stateful_pointer<publisher_state> self,
                                         std::shared_ptr<vote_sink> sink,
                                         std::shared_ptr<metrics> stats);

} // namespace vw
