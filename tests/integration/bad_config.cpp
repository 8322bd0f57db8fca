// Start-up refusals: a bad value stops the worker with exit code 2 and one
// line naming the variable; a missing audit table or a taken metrics port
// with exit code 1 and a plain hint; passwords never reach the log.
#define CAF_SUITE bad_config
#include <caf/test/unit_test.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/integration/harness.hpp"

using namespace it;
namespace json = boost::json;

namespace {

constexpr const char* secret = "Sup3rS3cret!x";

} // namespace

CAF_TEST(invalid values exit 2 with one line naming the variable) {
  suite_stack s{"bad_config", 3, 18130};
  const std::vector<std::pair<std::string, std::string>> cases = {
    {"PREFETCH_COUNT", "0"},  {"PREFETCH_COUNT", "abc"}, {"RABBITMQ_PORT", "abc"},
    {"REDIS_PORT", "70000"},  {"METRICS_PORT", "-1"},    {"LOG_LEVEL", "loud"},
    {"BATCH_SIZE", "0"},
  };
  uint16_t port = s.port_base;
  for (auto& [name, value] : cases) {
    CAF_MESSAGE(name << "=" << value);
    // METRICS_PORT is the variable under test in one case; the others get a
    // free port of their own so a wrong start would not collide.
    auto& w = s.add_worker("it-badcfg", port++, {{name, value}});
    w.start();
    auto code = w.wait_exit(5s);
    CAF_CHECK(code.has_value());
    CAF_CHECK_EQUAL(code.value_or(-1), 2);
    if (!code)
      w.kill_now();
    auto out = w.log();
    auto lines = lines_of(out);
    auto naming = lines_containing(out, name);
    CAF_CHECK_EQUAL(lines.size(), 1u);
    CAF_CHECK_EQUAL(naming.size(), 1u);
    if (!naming.empty()) {
      CAF_CHECK(contains(naming[0], name + "=\"" + value + "\""));
      CAF_CHECK(contains(naming[0], "invalid configuration"));
    }
    if (lines.size() != 1)
      CAF_MESSAGE("output was:\n" << out);
  }
}

CAF_TEST(passwords never appear in the log) {
  suite_stack s{"bad_config", 3, 18137};
  // 1. A wrong PostgreSQL password: the worker keeps waiting for the
  //    database (and logs why) without ever printing the password.
  {
    auto& w = s.add_worker("it-secret-pg", s.port_base, {{"POSTGRES_PASSWORD", secret}});
    w.start();
    std::this_thread::sleep_for(2500ms);
    CAF_CHECK(w.running());
    auto code = w.stop(15s);
    CAF_CHECK_EQUAL(code.value_or(-1), 0);
    auto log = w.log();
    CAF_CHECK(!contains(log, secret));
    CAF_CHECK(!contains(log, "Sup3r"));
    CAF_CHECK(contains(log, "POSTGRES_PASSWORD=****"));
    CAF_CHECK(!lines_containing(log, "PostgreSQL").empty());
  }
  // 2. A working worker with a secret Redis password that Redis refuses:
  //    the failing AUTH is logged, the password is not.
  {
    s.declare_queues();
    std::vector<std::string> bodies, hashes;
    for (int i = 0; i < 50; ++i) {
      hashes.push_back(voter_hash(i));
      json::object o;
      o["voter_hash"] = hashes.back();
      o["candidate_id"] = 1;
      bodies.push_back(json::serialize(o));
    }
    s.redis.sadd_bulk("valid_hashes", hashes);
    auto& w = s.add_worker("it-secret-redis", s.port_base + 1,
                           {{"REDIS_PASSWORD", secret}, {"BACKOFF_INITIAL_MS", "100"}});
    CAF_REQUIRE(s.start_and_wait(w));
    s.amqp.publish(s.validation_q, bodies);
    // Wait until the worker tried Redis and noticed the failure; meanwhile
    // the backlog (all but at most PREFETCH_COUNT=10 unacked) shows in
    // validation_queue_size, which is polled from the broker.
    CAF_CHECK(wait_until(
      [&] {
        auto m = metric_set::scrape(w.metrics_port());
        if (!m)
          return false;
        double failed = 0;
        for (auto& [st, v] : m->by_label("redis_operations_total", "status"))
          if (st != "success")
            failed += v;
        auto backlog = m->value("validation_queue_size");
        return failed > 0 && backlog >= 40 && backlog <= 50;
      },
      10s, 100ms));
    std::this_thread::sleep_for(500ms);
    CAF_CHECK(w.running());
    auto code = w.stop(15s);
    CAF_CHECK_EQUAL(code.value_or(-1), 0);
    auto log = w.log();
    CAF_CHECK(!contains(log, secret));
    CAF_CHECK(!contains(log, "Sup3r"));
    CAF_CHECK(contains(log, "REDIS_PASSWORD=****"));
    // No vote was lost or decided: all went back to the queue.
    CAF_CHECK(wait_until([&] { return s.amqp.count(s.validation_q) == 50; }, 3s));
    CAF_CHECK_EQUAL(s.amqp.count(s.validation_q), 50);
    CAF_CHECK_EQUAL(s.redis.scard("voted_hashes"), 0);
    CAF_CHECK_EQUAL(s.pg().scalar("SELECT count(*) FROM vote_audit"), 0);
    CAF_CHECK_EQUAL(s.amqp.count(s.aggregation_q), 0);
    CAF_CHECK_EQUAL(s.amqp.count(s.review_q), 0);
  }
  // 3. RABBITMQ_PASS is masked in the start-up line too (guest works).
  {
    auto& w = s.add_worker("it-secret-amqp", s.port_base + 2);
    CAF_REQUIRE(s.start_and_wait(w));
    auto code = w.stop(15s);
    CAF_CHECK_EQUAL(code.value_or(-1), 0);
    auto log = w.log();
    CAF_CHECK(contains(log, "RABBITMQ_PASS=****"));
    CAF_CHECK(!contains(log, "RABBITMQ_PASS=guest"));
    CAF_CHECK(!contains(log, "POSTGRES_PASSWORD=election"));
  }
}

CAF_TEST(missing audit table exits 1 naming the schema file) {
  suite_stack s{"bad_config_noschema", 3, 18145, false};
  auto& w = s.add_worker("it-noschema", s.port_base);
  w.start();
  auto code = w.wait_exit(15s);
  CAF_CHECK(code.has_value());
  CAF_CHECK_EQUAL(code.value_or(-1), 1);
  if (!code)
    w.kill_now();
  auto log = w.log();
  auto hint = lines_containing(log, "sql/schema.sql");
  CAF_CHECK_EQUAL(hint.size(), 1u);
  if (!hint.empty())
    CAF_CHECK(contains(hint[0], "vote_audit"));
  // It said what to run instead of creating the table itself.
  CAF_CHECK_EQUAL(s.pg().scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"), 0);
}

CAF_TEST(metrics port taken exits 1) {
  suite_stack s{"bad_config", 3, 18148};
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  CAF_REQUIRE(fd >= 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(s.port_base);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CAF_REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  CAF_REQUIRE(listen(fd, 4) == 0);
  auto& w = s.add_worker("it-porttaken", s.port_base);
  w.start();
  auto code = w.wait_exit(10s);
  close(fd);
  CAF_CHECK(code.has_value());
  CAF_CHECK_EQUAL(code.value_or(-1), 1);
  if (!code)
    w.kill_now();
  CAF_CHECK(!lines_containing(w.log(), "METRICS_PORT").empty());
}
