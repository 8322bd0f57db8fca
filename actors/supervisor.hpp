#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <caf/typed_response_promise.hpp>

#include "actors/consumer.hpp"
#include "actors/interfaces.hpp"
#include "actors/node.hpp"
#include "infra/backoff.hpp"
#include "infra/log.hpp"
#include "infra/metrics.hpp"
#include "infra/ports.hpp"

namespace vw {

// How to open each external system; the app wires the real ones, tests wire fakes.
struct infra_factory {
  std::function<std::shared_ptr<delivery_source>()> input;
  std::function<std::shared_ptr<voter_registry>()> voters;
  std::function<std::shared_ptr<claim_store>()> claims;
  std::function<std::shared_ptr<audit_log>()> audit;
  std::function<std::shared_ptr<vote_sink>()> output;
  std::function<std::shared_ptr<queue_probe>()> queue_depth; // optional
};

// A stage served by another node (REMOTE_<STAGE>=host:port).
struct remote_stage {
  std::string host;
  uint16_t port = 0;
  std::string text() const { return host + ":" + std::to_string(port); }
};

struct supervisor_settings {
  consumer_settings consumer;
  // Which children this node runs (DESIGN §4). An ingress node runs the
  // consumer and queue monitor; each stage is local or remote.
  bool ingress = true;
  std::set<std::string> local_stages = {"validator", "dedup", "auditor", "publisher"};
  std::map<std::string, remote_stage> remote_stages;
  bool remote_fallback_local = false; // run a local stage while its remote is lost
  remote_locator_actor locator;       // required when remote_stages is not empty
  node_directory_admin_actor directory; // optional: kept up to date with the local stages
  int restart_max = 5;                      // restarts allowed within restart_window...
  std::chrono::seconds restart_window{60};  // ...before the process gives up
  std::chrono::milliseconds restart_backoff_initial{200};
  std::chrono::milliseconds restart_backoff_max{10000};
  std::chrono::seconds shutdown_timeout{30};
  std::chrono::milliseconds queue_poll_interval{1000};
  bool detached = true; // blocking actors get their own thread (off in tests)
};

// The children, their restart policy (all permanent, one-for-one) and the
// order in which shutdown closes them: RabbitMQ, then Redis, then PostgreSQL.
struct child_table {
  static inline const std::vector<std::string> all
    = {"validator", "dedup", "auditor", "publisher", "consumer", "queue_monitor"};
  static inline const std::vector<std::vector<std::string>> shutdown_order
    = {{"consumer"}, {"publisher", "queue_monitor"}, {"validator", "dedup"}, {"auditor"}};
};

struct supervisor_state {
  supervisor_settings settings;
  infra_factory factory;
  std::shared_ptr<metrics> stats;
  std::shared_ptr<std::atomic<int>> exit_code; // set when the restart budget is spent
  std::shared_ptr<spdlog::logger> log = stage_logger("supervisor");

  pipeline_stages stages;
  consumer_actor input;
  queue_monitor_actor depth_monitor;
  std::map<caf::actor_addr, std::string> children;
  std::deque<std::chrono::steady_clock::time_point> restarts;
  backoff restart_backoff{std::chrono::milliseconds{200}, std::chrono::milliseconds{10000}};

  // Remote stages: where they are, whether their node is connected.
  struct link {
    remote_stage at;
    caf::actor_addr addr; // the remote stage while connected
    bool connected = false;
    bool connecting = false;
    bool fallback = false; // a local stage stands in while the link is down
    bool ever_connected = false;
    int failures = 0;
    backoff retry{std::chrono::milliseconds{200}, std::chrono::milliseconds{10000}};
  };
  std::map<std::string, link> remotes;
  std::map<caf::actor_addr, std::string> remote_addrs;

  bool stopping = false;
  bool stopped = false;
  size_t shutdown_step = 0;
  std::set<std::string> awaiting_exit;
  caf::typed_response_promise<caf::ok_atom> stop_promise;

  static inline const char* name = "supervisor";
};

supervisor_actor::behavior_type
supervisor(supervisor_actor::stateful_pointer<supervisor_state> self, supervisor_settings settings,
           infra_factory factory, std::shared_ptr<metrics> stats,
           std::shared_ptr<std::atomic<int>> exit_code);

} // namespace vw
