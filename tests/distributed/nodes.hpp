#pragma once

// Helpers of the distributed suites: stage nodes and ingress nodes as separate
// worker processes on loopback, each with its own metrics port.
#include <string>
#include <vector>

#include "tests/integration/harness.hpp"

namespace dist {

using namespace it;

// A node that runs only the auditor and serves it on `node_port`.
inline env_map auditor_node(uint16_t node_port, env_map extra = {}) {
  env_map env{{"NODE_INGRESS", "false"},
              {"NODE_STAGES", "auditor"},
              {"NODE_LISTEN_HOST", "127.0.0.1"},
              {"NODE_LISTEN_PORT", std::to_string(node_port)}};
  for (auto& [k, v] : extra)
    env[k] = v;
  return env;
}

// An ingress node that uses the auditor served on `node_port`.
inline env_map ingress_node(uint16_t node_port, env_map extra = {}) {
  env_map env{{"REMOTE_AUDITOR", "127.0.0.1:" + std::to_string(node_port)},
              {"PREFETCH_COUNT", "100"},
              {"BACKOFF_INITIAL_MS", "100"},
              {"BACKOFF_MAX_MS", "1000"},
              {"STAGE_TIMEOUT_MS", "5000"}};
  for (auto& [k, v] : extra)
    env[k] = v;
  return env;
}

inline std::string vote(const std::string& hash, int candidate, int64_t at_s) {
  boost::json::object o;
  o["voter_hash"] = hash;
  o["candidate_id"] = candidate;
  o["vote_timestamp"] = iso_utc(at_s);
  return boost::json::serialize(o);
}

inline int64_t base_s() {
  return utc_us(2026, 3, 1, 8, 0, 0) / 1000000;
}

// Messages on both output queues.
inline int64_t outputs(suite_stack& s) {
  return std::max<int64_t>(0, s.amqp.count(s.aggregation_q))
         + std::max<int64_t>(0, s.amqp.count(s.review_q));
}

// Sum of validation_votes_processed_total over every outcome and node.
inline double decided(const std::vector<worker_process*>& nodes) {
  double sum = 0;
  for (auto* st : {"valid", "invalid", "duplicate", "malformed"}) {
    auto v = suite_stack::sum_metric(nodes, "validation_votes_processed_total", {{"status", st}});
    if (v < 0)
      return -1;
    sum += v;
  }
  return sum;
}

// Waits until the validation queue has `n` consumers.
inline bool consumers_are(suite_stack& s, uint32_t n, ms timeout = 20000ms) {
  return wait_until(
    [&] {
      auto info = s.amqp.inspect(s.validation_q);
      return info && info->consumers == n;
    },
    timeout, 50ms);
}

} // namespace dist
