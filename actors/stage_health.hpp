#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "infra/log.hpp"
#include "infra/metrics.hpp"
#include "infra/status.hpp"

namespace vw {

// Logs a dependency's transitions (up to down, down to up) once each, instead
// of one line per failed batch while it stays down.
class stage_health {
public:
  stage_health(std::string stage, std::string dependency)
    : log_(stage_logger(stage)), dependency_(std::move(dependency)) {}

  void report(const status& st) {
    if (st.failed() && up_) {
      up_ = false;
      log_->warn("{} unavailable: {}; batches are requeued and intake pauses with backoff "
                 "until it answers again",
                 dependency_, st.what());
    } else if (!st.failed() && !up_) {
      up_ = true;
      log_->info("{} is reachable again; resuming", dependency_);
    } else if (st.failed()) {
      log_->debug("{} still unavailable: {}", dependency_, st.what());
    }
  }

  bool up() const { return up_; }

  // Probing while idle keeps /readyz truthful between batches.
  static constexpr std::chrono::seconds probe_interval{5};
  void touch() { last_call_ = std::chrono::steady_clock::now(); }
  bool idle() const { return std::chrono::steady_clock::now() - last_call_ >= probe_interval; }

  // Runs `probe` (the port's connection check) unless a batch used the
  // connection recently, and records the result as `metric_name`'s state.
  template <class Probe>
  void probe_when_idle(Probe&& probe, metrics& stats, const char* metric_name) {
    if (!idle())
      return;
    auto result = probe();
    stats.dependency_up(metric_name, !result.failed());
    report(result);
  }
  spdlog::logger& log() { return *log_; }

private:
  std::shared_ptr<spdlog::logger> log_;
  std::string dependency_;
  bool up_ = true;
  std::chrono::steady_clock::time_point last_call_{};
};

} // namespace vw
