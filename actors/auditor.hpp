#pragma once

#include <memory>

#include "actors/interfaces.hpp"
#include "actors/stage_health.hpp"
#include "infra/metrics.hpp"
#include "infra/ports.hpp"

namespace vw {

struct auditor_state {
  std::shared_ptr<audit_log> audit;
  std::shared_ptr<metrics> stats;
  stage_health health{"auditor", "PostgreSQL"};
  static inline const char* name = "auditor";
};

// Writes the audit rows of a batch in one transaction.
auditor_actor::behavior_type auditor(auditor_actor::stateful_pointer<auditor_state> self,
                                     std::shared_ptr<audit_log> audit,
                                     std::shared_ptr<metrics> stats);

} // namespace vw
