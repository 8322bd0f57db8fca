#pragma once

#include <memory>
#include <string>

namespace prometheus {
class Registry;
class Exposer;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
} // namespace prometheus

// The Prometheus metrics of DESIGN.md §1 (plus a few of our own), served on
// METRICS_BIND:METRICS_PORT. Counters are thread-safe: every actor updates
// them directly.
namespace vw {

class metrics {
public:
  metrics();
  ~metrics();

  // Starts the HTTP exposer; throws std::runtime_error if the port is taken.
  void serve(const std::string& bind, uint16_t port);

  void vote_processed(const char* status, double latency_seconds);
  void error(const std::string& error_type);
  void redis_op(const char* operation, bool ok);
  void database_op(const char* operation, bool ok);
  void queue_size(double n);
  void batch_size(double n);
  void in_flight(double n);
  void dependency_up(const char* dependency, bool up);

  // Current value of validation_votes_processed_total{status}, for logs.
  double processed(const char* status) const;

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  prometheus::Family<prometheus::Counter>* processed_;
  prometheus::Family<prometheus::Counter>* errors_;
  prometheus::Family<prometheus::Counter>* redis_ops_;
  prometheus::Family<prometheus::Counter>* db_ops_;
  prometheus::Family<prometheus::Gauge>* up_;
  prometheus::Histogram* latency_;
  prometheus::Histogram* batch_size_;
  prometheus::Gauge* queue_size_;
  prometheus::Gauge* in_flight_;
};

} // namespace vw
