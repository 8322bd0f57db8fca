#pragma once

#include <chrono>
#include <memory>

#include "actors/interfaces.hpp"
#include "infra/log.hpp"
#include "infra/metrics.hpp"
#include "infra/ports.hpp"

namespace vw {

struct queue_monitor_state {
  std::shared_ptr<queue_probe> probe;
  std::shared_ptr<metrics> stats;
  std::chrono::milliseconds interval{1000};
  bool reachable = true;
  std::shared_ptr<spdlog::logger> log = stage_logger("queue_monitor");
  static inline const char* name = "queue_monitor";
};

// Asks the broker for the input queue's depth every interval and exports it
// as validation_queue_size. Spawned detached: it blocks on its own connection.
queue_monitor_actor::behavior_type
queue_monitor(queue_monitor_actor::stateful_pointer<queue_monitor_state> self,
              std::shared_ptr<queue_probe> probe, std::shared_ptr<metrics> stats,
              std::chrono::milliseconds interval);

} // namespace vw
