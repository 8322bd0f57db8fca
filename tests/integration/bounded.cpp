// G5 bounded: however long the backlog, the worker never holds more than
// PREFETCH_COUNT unsettled deliveries and its memory stays flat. A backlog of
// 20,000 votes is drained with PREFETCH_COUNT=50 while the worker's own
// in-flight gauge and its resident memory are sampled.
#define CAF_SUITE bounded
#include <caf/test/unit_test.hpp>

#include "tests/integration/harness.hpp"
#include "tools/proc_stats.hpp"

using namespace it;

CAF_TEST(in flight deliveries stay within the prefetch and memory stays flat) {
  suite_stack s{"bounded", 8, 18190};
  s.declare_queues();
  constexpr int votes = 20000, prefetch = 50;
  std::vector<std::string> voters, bodies;
  const int64_t base = utc_us(2026, 3, 1, 8, 0, 0) / 1000000;
  for (int i = 0; i < votes; ++i) {
    voters.push_back(voter_hash(i));
    boost::json::object o;
    o["voter_hash"] = voters.back();
    o["candidate_id"] = 1 + i % 4;
    o["vote_timestamp"] = iso_utc(base + i);
    bodies.push_back(boost::json::serialize(o));
  }
  s.register_voters(voters);
  s.amqp.publish(s.validation_q, bodies);

  auto& w = s.add_worker("it-bounded", s.port_base,
                         {{"PREFETCH_COUNT", std::to_string(prefetch)}, {"BATCH_SIZE", "50"}});
  CAF_REQUIRE(s.start_and_wait(w));
  double max_in_flight = 0, first_rss = 0, peak_rss = 0;
  int samples = 0;
  auto done = wait_until(
    [&] {
      if (auto m = metric_set::scrape(w.metrics_port())) {
        max_in_flight = std::max(max_in_flight, m->value("validation_in_flight"));
        ++samples;
      }
      auto rss = vw::proc::status_mb(w.pid(), "VmRSS");
      if (first_rss == 0 && s.amqp.count(s.aggregation_q) > prefetch)
        first_rss = rss;
      peak_rss = std::max(peak_rss, rss);
      return s.amqp.count(s.aggregation_q) >= votes;
    },
    180s, 10ms);
  CAF_REQUIRE(done);
  CAF_MESSAGE(samples << " samples: at most " << max_in_flight << " deliveries in flight; RSS "
                      << first_rss << " MB early in the drain, peak " << peak_rss << " MB");
  CAF_CHECK_GREATER(samples, 10);
  CAF_CHECK_GREATER(max_in_flight, 0);
  CAF_CHECK_LESS_OR_EQUAL(max_in_flight, prefetch);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The sanitizers' quarantine keeps freed memory resident on purpose, so RSS
  // says nothing about the worker here; the normal build checks it.
  CAF_MESSAGE("sanitizer build: RSS bounds not checked");
#else
  // Flat: the backlog (20,000 messages) never comes into the process.
  CAF_CHECK_LESS(peak_rss, 64.0);
  CAF_CHECK_LESS(peak_rss - first_rss, 16.0);
#endif
  CAF_CHECK_EQUAL(w.stop(20s).value_or(-1), 0);
}
