#include "infra/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace vw {

using namespace prometheus;

metrics::metrics() : registry_(std::make_shared<Registry>()) {
  processed_ = &BuildCounter()
                  .Name("validation_votes_processed_total")
                  .Help("Deliveries decided, by outcome (valid, invalid, duplicate, malformed)")
                  .Register(*registry_);
  errors_ = &BuildCounter()
               .Name("validation_errors_total")
               .Help("Malformed messages and failed stage attempts, by error type")
               .Register(*registry_);
  redis_ops_ = &BuildCounter()
                  .Name("redis_operations_total")
                  .Help("Redis round trips, by operation and status")
                  .Register(*registry_);
  db_ops_ = &BuildCounter()
               .Name("database_operations_total")
               .Help("PostgreSQL statements, by operation and status")
               .Register(*registry_);
  up_ = &BuildGauge()
           .Name("validation_dependency_up")
           .Help("1 while the worker's last call to the dependency succeeded")
           .Register(*registry_);
  latency_ = &BuildHistogram()
                .Name("validation_processing_latency_seconds")
                .Help("Time from delivery to ack")
                .Register(*registry_)
                .Add({}, Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                     0.1, 0.25, 0.5, 1, 2.5, 5, 10});
  batch_size_ = &BuildHistogram()
                   .Name("validation_batch_size")
                   .Help("Votes per batch sent through the pipeline")
                   .Register(*registry_)
                   .Add({}, Histogram::BucketBoundaries{1, 2, 5, 10, 20, 50, 100, 200, 500});
  queue_size_ = &BuildGauge()
                   .Name("validation_queue_size")
                   .Help("Messages ready in the input queue, polled from the broker")
                   .Register(*registry_)
                   .Add({});
  in_flight_ = &BuildGauge()
                  .Name("validation_in_flight")
                  .Help("Deliveries received and not yet acked, rejected or requeued")
                  .Register(*registry_)
                  .Add({});
  ready_ = &BuildGauge()
              .Name("validation_worker_ready")
              .Help("1 while the worker is consuming and its dependencies answer")
              .Register(*registry_)
              .Add({});
  remote_up_family_ = &BuildGauge()
                         .Name("validation_remote_stage_up")
                         .Help("1 while the stage served by another node is connected")
                         .Register(*registry_);
  auto& stage_latency = BuildHistogram()
                          .Name("validation_stage_duration_seconds")
                          .Help("Round trip of one batch through a stage (remote ones include "
                                "the network hop)")
                          .Register(*registry_);
  const char* stage_names[] = {"validator", "dedup", "auditor", "publisher"};
  for (int i = 0; i < 4; ++i)
    stage_latency_[i] = &stage_latency.Add(
      {{"stage", stage_names[i]}},
      Histogram::BucketBoundaries{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                  0.05, 0.1, 0.25, 0.5, 1, 2.5});
  for (auto* d : {"rabbitmq", "rabbitmq_publisher", "redis", "postgres"})
    up_->Add({{"dependency", d}}).Set(std::string{d} == "rabbitmq" ? 0 : 1);
  valid_ = &processed_->Add({{"status", "valid"}});
  invalid_ = &processed_->Add({{"status", "invalid"}});
  duplicate_ = &processed_->Add({{"status", "duplicate"}});
  malformed_ = &processed_->Add({{"status", "malformed"}});
}

metrics::~metrics() {
  http_.stop(); // the server thread reads the members below
}

void metrics::serve(const std::string& bind, uint16_t port) {
  http_.start(bind, port, [this](const std::string& path) { return handle(path); });
}

void metrics::stop_serving() {
  http_.stop();
}

http_response metrics::handle(const std::string& path) const {
  http_response r;
  if (path == "/metrics") {
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = exposition();
  } else if (path == "/healthz") {
    r.content_type = "application/json";
    r.body = R"({"status":"alive"})";
  } else if (path == "/readyz") {
    r.content_type = "application/json";
    r.status = ready() ? 200 : 503;
    r.body = readiness_json();
  } else {
    r.status = 404;
    r.body = "not found: try /metrics, /healthz or /readyz\n";
  }
  return r;
}

std::string metrics::exposition() const {
  return TextSerializer{}.Serialize(registry_->Collect());
}

bool metrics::ready() const {
  if (!ingress_)
    return publisher_up_ && redis_up_ && postgres_up_;
  return consuming_ && rabbitmq_up_ && publisher_up_ && redis_up_ && postgres_up_;
}

void metrics::node_role(bool ingress) {
  ingress_ = ingress;
  if (!ingress) { // no consumer connection on this node
    rabbitmq_up_ = true;
    up_->Add({{"dependency", "rabbitmq"}}).Set(1);
  }
  update_ready();
}

void metrics::remote_link(const std::string& stage, const std::string& peer, bool up) {
  remote_up_family_->Add({{"stage", stage}, {"peer", peer}}).Set(up ? 1 : 0);
  std::lock_guard<std::mutex> guard{remote_mutex_};
  remote_up_[stage] = up;
}

void metrics::stage_latency(int stage, double seconds) {
  if (stage >= 0 && stage < 4)
    stage_latency_[stage]->Observe(seconds);
}

std::string metrics::remote_json() const {
  std::lock_guard<std::mutex> guard{remote_mutex_};
  if (remote_up_.empty())
    return "";
  std::string out = R"(,"remote_stages":{)";
  bool first = true;
  for (auto& [stage, up] : remote_up_) {
    out += (first ? "\"" : ",\"") + stage + "\":" + (up ? "\"up\"" : "\"down\"");
    first = false;
  }
  return out + "}";
}

std::string metrics::readiness_json() const {
  auto state = [](bool up) { return up ? "\"up\"" : "\"down\""; };
  return std::string{R"({"status":")"} + (ready() ? "ready" : "not_ready")
         + R"(","consuming":)" + (consuming_ ? "true" : "false")
         + R"(,"dependencies":{"rabbitmq":)" + state(rabbitmq_up_ && publisher_up_)
         + R"(,"redis":)" + state(redis_up_) + R"(,"postgres":)" + state(postgres_up_) + "}"
         + remote_json() + "}";
}

void metrics::update_ready() {
  ready_->Set(ready() ? 1 : 0);
}

void metrics::consuming(bool on) {
  consuming_ = on;
  update_ready();
}

void metrics::vote_processed(verdict outcome, double latency_seconds) {
  switch (outcome) {
    case verdict::valid:
      valid_->Increment();
      break;
    case verdict::invalid:
      invalid_->Increment();
      break;
    case verdict::duplicate:
      duplicate_->Increment();
      break;
    case verdict::pending:
      break;
  }
  latency_->Observe(latency_seconds);
}

void metrics::malformed_processed(double latency_seconds) {
  malformed_->Increment();
  latency_->Observe(latency_seconds);
}

void metrics::error(const std::string& error_type) {
  errors_->Add({{"error_type", error_type}}).Increment();
}

void metrics::redis_op(const char* operation, bool ok) {
  redis_ops_->Add({{"operation", operation}, {"status", ok ? "success" : "error"}}).Increment();
  dependency_up("redis", ok);
}

void metrics::database_op(const char* operation, bool ok) {
  db_ops_->Add({{"operation", operation}, {"status", ok ? "success" : "error"}}).Increment();
  dependency_up("postgres", ok);
}

void metrics::queue_size(double n) {
  queue_size_->Set(n);
}

void metrics::batch_size(double n) {
  batch_size_->Observe(n);
}

void metrics::in_flight(double n) {
  in_flight_->Set(n);
}

void metrics::dependency_up(const char* dependency, bool up) {
  up_->Add({{"dependency", dependency}}).Set(up ? 1 : 0);
  std::string d{dependency};
  if (d == "rabbitmq")
    rabbitmq_up_ = up;
  else if (d == "rabbitmq_publisher")
    publisher_up_ = up;
  else if (d == "redis")
    redis_up_ = up;
  else if (d == "postgres")
    postgres_up_ = up;
  update_ready();
}

double metrics::processed(const char* status) const {
  return processed_->Add({{"status", status}}).Value();
}

} // namespace vw
