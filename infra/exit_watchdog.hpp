#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

namespace vw {

// Bounds a teardown that must not hang: once armed, `on_expiry(code)` runs
// unless the watchdog is destroyed within `grace`. The worker arms it after
// its shutdown finished, around the actor system's destruction.
class exit_watchdog {
public:
  using expiry = std::function<void(int code)>;

  exit_watchdog(std::chrono::milliseconds grace, expiry on_expiry)
    : grace_(grace), on_expiry_(std::move(on_expiry)) {}

  exit_watchdog(const exit_watchdog&) = delete;
  exit_watchdog& operator=(const exit_watchdog&) = delete;

  // Starts the countdown; later calls are ignored.
  void arm(int code) {
    if (thread_.joinable())
      return;
    thread_ = std::thread{[this, code] {
      std::unique_lock<std::mutex> guard{mx_};
      if (!cv_.wait_for(guard, grace_, [this] { return done_; }))
        on_expiry_(code);
    }};
  }

  // Disarms (the teardown finished in time) and joins.
  ~exit_watchdog() {
    if (!thread_.joinable())
      return;
    {
      std::lock_guard<std::mutex> guard{mx_};
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

private:
  std::chrono::milliseconds grace_;
  expiry on_expiry_;
  std::mutex mx_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

} // namespace vw
