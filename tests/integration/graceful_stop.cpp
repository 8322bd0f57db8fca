// G6: SIGTERM in the middle of a backlog. The worker must finish what it took,
// leave everything else in the queue and exit 0 in time; nothing may be half
// done (claimed but not audited, audited but not published, published but not
// acked). A second worker then drains the rest: every vote counted once.
#define CAF_SUITE graceful_stop
#include <caf/test/unit_test.hpp>

#include <set>

#include "tests/integration/harness.hpp"

using namespace it;
namespace json = boost::json;

namespace {

constexpr int votes = 5000;
constexpr int shutdown_timeout_s = 10;

} // namespace

CAF_TEST(sigterm under load finishes in flight work and loses nothing) {
  suite_stack s{"graceful_stop", 2, 18120};
  s.declare_queues();

  std::vector<std::string> voters;
  std::vector<outgoing> msgs;
  const int64_t base_s = utc_us(2026, 3, 1, 8, 0, 0) / 1000000;
  for (int i = 0; i < votes; ++i) {
    voters.push_back(voter_hash(i));
    json::object o;
    o["voter_hash"] = voters.back();
    o["candidate_id"] = 1 + i % 5;
    o["vote_timestamp"] = iso_utc(base_s + i);
    o["election_id"] = "it-2026";
    msgs.push_back(outgoing{json::serialize(o), std::nullopt, true});
  }
  s.register_voters(voters);
  s.amqp.publish(s.validation_q, msgs);
  CAF_REQUIRE_EQUAL(s.amqp.count(s.validation_q), votes);

  const env_map cfg{{"PREFETCH_COUNT", "100"},
                    {"SHUTDOWN_TIMEOUT", std::to_string(shutdown_timeout_s)}};
  auto& first = s.add_worker("it-stop-1", s.port_base, cfg);
  first.start();
  // SIGTERM as soon as at least 500 votes reached the aggregation queue.
  bool some = wait_until([&] { return s.amqp.count(s.aggregation_q) >= 500 || !first.running(); },
                         60s, 5ms);
  CAF_REQUIRE(some);
  CAF_REQUIRE(first.running());
  first.terminate();
  auto t_term = steady::now();
  auto code = first.wait_exit(std::chrono::seconds{shutdown_timeout_s + 5});
  auto stop_ms = std::chrono::duration_cast<ms>(steady::now() - t_term).count();
  CAF_MESSAGE("first worker stopped after " << stop_ms << " ms");
  CAF_CHECK(code.has_value());
  CAF_CHECK_EQUAL(code.value_or(-1), 0);
  if (!code)
    first.kill_now();
  auto log = first.log();
  CAF_CHECK(contains(log, "shutdown complete"));
  CAF_CHECK(!contains(log, "exceeded SHUTDOWN_TIMEOUT"));

  // Nothing half done.
  auto agg_after_first = s.amqp.count(s.aggregation_q);
  // Unacked deliveries return to the queue when the channel closes; give the
  // broker a moment to account for them.
  int64_t remaining = -1;
  wait_until(
    [&] {
      remaining = s.amqp.count(s.validation_q);
      return agg_after_first + remaining >= votes;
    },
    3s, 50ms);
  auto& pg = s.pg();
  auto audit_valid = pg.scalar("SELECT count(*) FROM vote_audit WHERE status = 'valid'");
  auto audit_all = pg.scalar("SELECT count(*) FROM vote_audit");
  auto claimed = s.redis.scard("voted_hashes");
  CAF_MESSAGE("after SIGTERM: aggregation " << agg_after_first << ", audit valid " << audit_valid
                                            << ", voted_hashes " << claimed << ", input left "
                                            << remaining);
  CAF_CHECK_GREATER_OR_EQUAL(agg_after_first, 500);
  CAF_CHECK_EQUAL(agg_after_first, audit_valid);
  CAF_CHECK_EQUAL(audit_all, audit_valid);
  CAF_CHECK_EQUAL(static_cast<long long>(agg_after_first), claimed);
  CAF_CHECK_EQUAL(agg_after_first + remaining, votes);
  CAF_CHECK_EQUAL(s.amqp.count(s.review_q), 0);
  CAF_CHECK_EQUAL(s.redis.keys("vote_claim:*").size(), static_cast<size_t>(claimed));
  if (remaining == 0)
    CAF_MESSAGE("note: the first worker drained everything before SIGTERM landed");

  // A second worker drains the rest.
  auto& second = s.add_worker("it-stop-2", s.port_base + 1, cfg);
  CAF_REQUIRE(s.start_and_wait(second));
  bool drained = wait_until(
    [&] {
      return s.amqp.count(s.aggregation_q) + s.amqp.count(s.review_q) >= votes
             && s.amqp.count(s.validation_q) == 0;
    },
    90s, 100ms);
  CAF_CHECK(drained);
  std::this_thread::sleep_for(1000ms);
  auto code2 = second.stop(std::chrono::seconds{shutdown_timeout_s + 5});
  CAF_CHECK_EQUAL(code2.value_or(-1), 0);
  CAF_CHECK(contains(second.log(), "shutdown complete"));

  CAF_CHECK_EQUAL(s.amqp.count(s.validation_q), 0);
  CAF_CHECK_EQUAL(s.amqp.count(s.review_q), 0);
  CAF_CHECK_EQUAL(s.amqp.count(s.aggregation_q), votes);
  CAF_CHECK_EQUAL(pg.scalar("SELECT count(*) FROM vote_audit WHERE status = 'valid'"), votes);
  CAF_CHECK_EQUAL(pg.scalar("SELECT count(*) FROM vote_audit"), votes);
  CAF_CHECK_EQUAL(pg.scalar("SELECT count(DISTINCT voter_hash) FROM vote_audit"), votes);
  CAF_CHECK_EQUAL(s.redis.scard("voted_hashes"), votes);
  CAF_CHECK_EQUAL(s.redis.keys("duplicate_count:*").size(), 0u);

  auto agg = s.amqp.take_all(s.aggregation_q);
  CAF_CHECK_EQUAL(agg.size(), static_cast<size_t>(votes));
  std::set<std::string> seen, expected(voters.begin(), voters.end());
  size_t not_valid = 0, bad_id = 0;
  for (auto& m : agg) {
    auto o = parse_object(m.body);
    auto hash = str_field(o, "voter_hash");
    seen.insert(hash);
    if (str_field(o, "status") != "valid")
      ++not_valid;
    if (m.message_id.value_or("") != hash)
      ++bad_id;
  }
  CAF_CHECK_EQUAL(seen.size(), static_cast<size_t>(votes));
  CAF_CHECK_EQUAL(set_diff(expected, seen), "");
  CAF_CHECK_EQUAL(not_valid, 0u);
  CAF_CHECK_EQUAL(bad_id, 0u);
}
