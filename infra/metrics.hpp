#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <memory>
#include <string>

#include "infra/http_server.hpp"
#include "messages/vote.hpp"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
} // namespace prometheus

// The Prometheus metrics of DESIGN.md §1 (plus a few of our own) and the
// worker's health, served on METRICS_BIND:METRICS_PORT as /metrics, /healthz
// and /readyz. Thread-safe: every actor updates it directly.
namespace vw {

class metrics {
public:
  metrics();
  ~metrics();

  // Starts the HTTP endpoint; throws std::runtime_error if the port is taken.
  void serve(const std::string& bind, uint16_t port);
  void stop_serving();

  void vote_processed(verdict outcome, double latency_seconds);
  void malformed_processed(double latency_seconds);
  void error(const std::string& error_type);
  void redis_op(const char* operation, bool ok);
  void database_op(const char* operation, bool ok);
  void queue_size(double n);
  void batch_size(double n);
  void in_flight(double n);
  // dependency: rabbitmq (consumer), rabbitmq_publisher, redis, postgres.
  void dependency_up(const char* dependency, bool up);
  void consuming(bool on);
  // A node without the consumer (NODE_INGRESS=false) is ready when the
  // dependencies of its stages answer.
  void node_role(bool ingress);
  // Link to a stage on another node: validation_remote_stage_up{stage,peer}.
  void remote_link(const std::string& stage, const std::string& peer, bool up);
  // Round trip of one batch through a stage (index in stage order:
  // validator, dedup, auditor, publisher), local or remote.
  void stage_latency(int stage, double seconds);

  // Ready: consuming and every dependency answered its last call.
  bool ready() const;
  // The /readyz body.
  std::string readiness_json() const;
  // The /metrics body.
  std::string exposition() const;

  // Current value of validation_votes_processed_total{status}, for logs.
  double processed(const char* status) const;

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

private:
  std::shared_ptr<prometheus::Registry> registry_;
  http_response handle(const std::string& path) const;
  void update_ready();
  std::string remote_json() const;

  http_server http_;
  std::atomic<bool> rabbitmq_up_{false};
  std::atomic<bool> publisher_up_{true};
  std::atomic<bool> redis_up_{true};
  std::atomic<bool> postgres_up_{true};
  std::atomic<bool> consuming_{false};
  std::atomic<bool> ingress_{true};
  mutable std::mutex remote_mutex_;
  std::map<std::string, bool> remote_up_; // stage -> link up
  prometheus::Family<prometheus::Gauge>* remote_up_family_;
  prometheus::Histogram* stage_latency_[4];
  prometheus::Family<prometheus::Counter>* processed_;
  prometheus::Family<prometheus::Counter>* errors_;
  prometheus::Family<prometheus::Counter>* redis_ops_;
  prometheus::Family<prometheus::Counter>* db_ops_;
  prometheus::Family<prometheus::Gauge>* up_;
  prometheus::Histogram* latency_;
  prometheus::Histogram* batch_size_;
  prometheus::Gauge* queue_size_;
  prometheus::Gauge* in_flight_;
  prometheus::Gauge* ready_;
  // The per-vote counters, looked up once (a family lookup builds a label map).
  prometheus::Counter* valid_;
  prometheus::Counter* invalid_;
  prometheus::Counter* duplicate_;
  prometheus::Counter* malformed_;
};

} // namespace vw
