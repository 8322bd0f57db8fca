// G4 with the real release script: PostgreSQL refuses the audit insert (the
// worker's role loses INSERT on vote_audit) after Redis accepted the claim.
// The worker must undo the claim before the NACK (voted_hashes and
// vote_claim:{hash} gone while the database keeps refusing), and once the
// database accepts again the vote is counted once, as valid, not as a
// duplicate of itself.
#define CAF_SUITE claim_release
#include <caf/test/unit_test.hpp>

#include "tests/integration/harness.hpp"

using namespace it;

CAF_TEST(a refused audit insert releases the claim before the requeue) {
  suite_stack s{"claim_release", 15, 18195};
  s.declare_queues();
  auto h = voter_hash(42);
  s.register_voters({h});
  auto& pg = s.pg();
  pg.exec("REVOKE INSERT ON vote_audit FROM election");
  struct regrant {
    pg_client& pg;
    ~regrant() {
      try {
        pg.exec("GRANT INSERT ON vote_audit TO election");
      } catch (...) {
      }
    }
  } guard{pg};

  // Slow retries: the claim lives a few milliseconds per second at most.
  auto& w = s.add_worker("it-release", s.port_base,
                         {{"BACKOFF_INITIAL_MS", "1000"}, {"BACKOFF_MAX_MS", "1000"}});
  CAF_REQUIRE(s.start_and_wait(w));
  boost::json::object o;
  o["voter_hash"] = h;
  o["candidate_id"] = 2;
  o["vote_timestamp"] = "2026-03-01T08:00:00Z";
  s.amqp.publish(s.validation_q, std::vector<std::string>{boost::json::serialize(o)});

  auto failures = [&] {
    auto m = metric_set::scrape(w.metrics_port());
    return m ? m->value("validation_errors_total", {{"error_type", "database_unavailable"}}) : 0;
  };
  CAF_REQUIRE(wait_until([&] { return failures() >= 2; }, 20s));
  int released = 0;
  for (int i = 0; i < 5; ++i) {
    if (!s.redis.sismember("voted_hashes", h) && !s.redis.exists("vote_claim:" + h))
      ++released;
    std::this_thread::sleep_for(170ms);
  }
  CAF_MESSAGE(released << " of 5 samples found the claim released");
  CAF_CHECK_GREATER_OR_EQUAL(released, 3);
  CAF_CHECK_EQUAL(s.amqp.count(s.aggregation_q) + s.amqp.count(s.review_q), 0);

  pg.exec("GRANT INSERT ON vote_audit TO election");
  CAF_CHECK(wait_until([&] { return s.amqp.count(s.aggregation_q) == 1; }, 20s));
  std::this_thread::sleep_for(500ms);
  std::map<std::string, long long> rows{{"valid", 1}};
  CAF_CHECK_EQUAL(pg.count_by_status(), rows);
  CAF_CHECK_EQUAL(s.amqp.count(s.review_q), 0);
  CAF_CHECK(!s.redis.exists("duplicate_count:" + h));
  CAF_CHECK(s.redis.sismember("voted_hashes", h));
  CAF_CHECK_EQUAL(w.stop(20s).value_or(-1), 0);
}
