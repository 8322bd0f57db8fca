#pragma once

#include <algorithm>
#include <chrono>
#include <random>

namespace vw {

// Capped exponential backoff with full jitter: the one retry policy used by
// every connection and by the supervisor's restarts.
class backoff {
public:
  backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max)
    : initial_(initial), max_(std::max(initial, max)), rng_(std::random_device{}()) {}

  // The next delay: a random value in [ceiling/2, ceiling], ceiling doubling
  // per consecutive failure up to max.
  std::chrono::milliseconds next() {
    auto ceiling = initial_.count() << std::min(attempts_, 20);
    ceiling = std::min<long long>(ceiling, max_.count());
    ++attempts_;
    std::uniform_int_distribution<long long> dist{ceiling / 2, ceiling};
    return std::chrono::milliseconds{dist(rng_)};
  }

  void reset() { attempts_ = 0; }
  int attempts() const { return attempts_; }

private:
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds max_;
  int attempts_ = 0;
  std::minstd_rand rng_;
};

} // namespace vw
