// The bound on the worker's teardown after a finished shutdown (G6): armed,
// it fires once the grace period passes; destroyed in time, it never fires.
#define CAF_SUITE exit_watchdog
#include <caf/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <thread>

#include "infra/exit_watchdog.hpp"

using namespace std::chrono_literals;
using vw::exit_watchdog;

CAF_TEST(an armed watchdog fires with the chosen code once the grace period passes) {
  std::atomic<int> fired{-1};
  auto t0 = std::chrono::steady_clock::now();
  std::atomic<long> after_ms{0};
  exit_watchdog dog{100ms, [&](int code) {
                      after_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now() - t0)
                                   .count();
                      fired = code;
                    }};
  dog.arm(3);
  for (int i = 0; i < 500 && fired.load() < 0; ++i)
    std::this_thread::sleep_for(10ms);
  CAF_CHECK_EQUAL(fired.load(), 3);
  CAF_CHECK_GREATER_OR_EQUAL(after_ms.load(), 100);
}

CAF_TEST(a teardown that finishes within the grace period disarms it) {
  std::atomic<bool> fired{false};
  auto t0 = std::chrono::steady_clock::now();
  {
    exit_watchdog dog{2s, [&](int) { fired = true; }};
    dog.arm(0);
    std::this_thread::sleep_for(20ms);
  }
  auto took = std::chrono::steady_clock::now() - t0;
  CAF_CHECK(!fired.load());
  // Destruction returns at once instead of sitting out the grace period.
  CAF_CHECK_LESS(took, 1s);
}

CAF_TEST(an unarmed watchdog never fires and arming twice keeps the first code) {
  std::atomic<bool> fired{false};
  { exit_watchdog idle{1ms, [&](int) { fired = true; }}; }
  std::this_thread::sleep_for(20ms);
  CAF_CHECK(!fired.load());
  std::atomic<int> code{-1};
  {
    exit_watchdog dog{20ms, [&](int c) { code = c; }};
    dog.arm(1);
    dog.arm(2);
    std::this_thread::sleep_for(200ms);
  }
  CAF_CHECK_EQUAL(code.load(), 1);
}
