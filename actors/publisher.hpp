#pragma once

#include <deque>
#include <memory>

#include <caf/typed_response_promise.hpp>

#include "actors/interfaces.hpp"
#include "actors/stage_health.hpp"
#include "infra/metrics.hpp"
#include "infra/ports.hpp"

namespace vw {

// A batch published and waiting for the broker's confirms.
struct unconfirmed_batch {
  uint64_t last; // sequence number of its last message
  caf::typed_response_promise<caf::ok_atom> promise;
};

struct publisher_state {
  std::shared_ptr<vote_sink> sink;
  std::shared_ptr<metrics> stats;
  stage_health health{"publisher", "RabbitMQ (publishing)"};
  std::deque<unconfirmed_batch> unconfirmed; // in publishing order
  bool polling = false;                      // a poll is in the mailbox
  static inline const char* name = "publisher";
};

// Publishes decided ballots (valid to aggregation, others to review) and
// answers each batch once the broker confirmed every message of it. Spawned
// detached: it blocks on the AMQP socket while confirms are due.
publisher_actor::behavior_type publisher(publisher_actor::stateful_pointer<publisher_state> self,
                                         std::shared_ptr<vote_sink> sink,
                                         std::shared_ptr<metrics> stats);

} // namespace vw
