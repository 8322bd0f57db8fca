#define CAF_SUITE stages
#include <caf/test/dsl.hpp>

#include "actors/auditor.hpp"
#include "actors/dedup.hpp"
#include "actors/publisher.hpp"
#include "actors/queue_monitor.hpp"
#include "actors/validator.hpp"
#include <variant>

#include "fakes.hpp"

using namespace vw;
using namespace vw::testing;

namespace {

// Each stage actor on its own, asked directly, with its infra faked.
struct stage_fixture : test_coordinator_fixture<> {
  std::shared_ptr<journal> log = std::make_shared<journal>();
  std::shared_ptr<metrics> stats = std::make_shared<metrics>();

  ~stage_fixture() override {
    for (auto& h : spawned)
      anon_send_exit(h, caf::exit_reason::user_shutdown);
    sched.run();
  }

  template <class Handle>
  Handle keep(Handle h) {
    spawned.push_back(caf::actor_cast<caf::actor>(h));
    sched.run(); // initial probe
    return h;
  }

  static ballot_batch batch_of(std::initializer_list<int> voters, bool redelivered = false) {
    ballot_batch b;
    for (auto v : voters) {
      ballot x;
      x.content.voter_hash = hash_of(v);
      x.content.candidate_id = 1;
      x.content.fingerprint = "fp-" + std::to_string(v);
      x.redelivered = redelivered;
      b.ballots.push_back(std::move(x));
    }
    return b;
  }

  // Sends `xs` to `dest` and returns the answer (or the error) after running.
  template <class T, class Handle, class... Ts>
  std::variant<T, caf::error> ask(const Handle& dest, Ts&&... xs) {
    auto reply = self->request(dest, caf::infinite, std::forward<Ts>(xs)...);
    sched.run();
    std::variant<T, caf::error> out = caf::error{};
    reply.receive([&](T& x) { out = std::move(x); }, [&](caf::error& e) { out = std::move(e); });
    return out;
  }

  std::vector<caf::actor> spawned;
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(stage_tests, stage_fixture)

CAF_TEST(the validator marks unknown voters invalid and leaves the rest pending) {
  auto registry = std::make_shared<fake_registry>(log);
  registry->voters = {hash_of(1), hash_of(3)};
  auto v = keep(sys.spawn(validator, registry, stats));
  auto r = ask<ballot_batch>(v, validate_atom::value, batch_of({1, 2, 3}));
  CAF_REQUIRE(std::holds_alternative<ballot_batch>(r));
  auto& b = std::get<ballot_batch>(r);
  CAF_CHECK_EQUAL(b.ballots[0].status, verdict::pending);
  CAF_CHECK_EQUAL(b.ballots[1].status, verdict::invalid);
  CAF_CHECK_EQUAL(b.ballots[1].review_reason, "voter_hash is not a registered voter");
  CAF_CHECK_EQUAL(b.ballots[2].status, verdict::pending);
}

CAF_TEST(the validator answers an error while Redis is down and readiness drops) {
  auto registry = std::make_shared<fake_registry>(log);
  registry->down = true;
  auto v = keep(sys.spawn(validator, registry, stats));
  CAF_CHECK(!stats->ready());
  auto r = ask<ballot_batch>(v, validate_atom::value, batch_of({1}));
  CAF_REQUIRE(std::holds_alternative<caf::error>(r));
  CAF_CHECK_EQUAL(std::get<caf::error>(r).code(),
                  static_cast<uint8_t>(pipeline_errc::redis_unavailable));
  CAF_CHECK(stats->readiness_json().find(R"("redis":"down")") != std::string::npos);
}

CAF_TEST(dedup claims once and counts the repeats) {
  auto claims = std::make_shared<fake_claims>(log);
  auto d = keep(sys.spawn(dedup, claims, stats));
  auto r = ask<ballot_batch>(d, claim_atom::value, batch_of({1, 1, 2}));
  CAF_REQUIRE(std::holds_alternative<ballot_batch>(r));
  auto& b = std::get<ballot_batch>(r);
  CAF_CHECK_EQUAL(b.ballots[0].status, verdict::valid);
  CAF_CHECK_EQUAL(b.ballots[0].claim, claim_result::fresh);
  CAF_CHECK_EQUAL(b.ballots[1].status, verdict::duplicate);
  CAF_CHECK_EQUAL(b.ballots[1].duplicate_count, 1);
  CAF_CHECK_EQUAL(b.ballots[2].status, verdict::valid);
  // Releasing gives the claims back.
  auto released = ask<caf::ok_atom>(d, unclaim_atom::value, b);
  CAF_CHECK(std::holds_alternative<caf::ok_atom>(released));
  CAF_CHECK_EQUAL(claims->claims.size(), 0u);
}

CAF_TEST(dedup resumes the claim of a redelivered message) {
  auto claims = std::make_shared<fake_claims>(log);
  claims->claims[hash_of(5)] = "fp-5";
  auto d = keep(sys.spawn(dedup, claims, stats));
  auto r = ask<ballot_batch>(d, claim_atom::value, batch_of({5}, true));
  CAF_REQUIRE(std::holds_alternative<ballot_batch>(r));
  CAF_CHECK_EQUAL(std::get<ballot_batch>(r).ballots[0].claim, claim_result::resumed);
  CAF_CHECK_EQUAL(std::get<ballot_batch>(r).ballots[0].status, verdict::valid);
}

CAF_TEST(the auditor reports a database failure as database_unavailable) {
  auto audit = std::make_shared<fake_audit>(log);
  auto a = keep(sys.spawn(auditor, audit, stats));
  audit->down = true;
  auto r = ask<ballot_batch>(a, audit_atom::value, batch_of({1}));
  CAF_REQUIRE(std::holds_alternative<caf::error>(r));
  CAF_CHECK_EQUAL(std::get<caf::error>(r).code(),
                  static_cast<uint8_t>(pipeline_errc::database_unavailable));
  audit->down = false;
  auto ok = ask<ballot_batch>(a, audit_atom::value, batch_of({1}));
  CAF_CHECK(std::holds_alternative<ballot_batch>(ok));
  CAF_CHECK_EQUAL(audit->rows.size(), 1u);
}

CAF_TEST(the publisher answers only once everything is confirmed) {
  auto sink = std::make_shared<fake_sink>(log);
  auto p = keep(sys.spawn(publisher, sink, stats));
  auto b = batch_of({1, 2});
  for (auto& x : b.ballots)
    x.status = verdict::valid;
  CAF_CHECK(std::holds_alternative<caf::ok_atom>(ask<caf::ok_atom>(p, emit_atom::value, b)));
  CAF_CHECK_EQUAL(sink->published.size(), 2u);
  sink->down = true;
  auto r = ask<caf::ok_atom>(p, emit_atom::value, b);
  CAF_REQUIRE(std::holds_alternative<caf::error>(r));
  CAF_CHECK_EQUAL(std::get<caf::error>(r).code(),
                  static_cast<uint8_t>(pipeline_errc::publish_not_confirmed));
}

CAF_TEST(the publisher sends later batches while earlier ones wait for confirms) {
  auto sink = std::make_shared<fake_sink>(log);
  auto p = keep(sys.spawn(publisher, sink, stats));
  auto b = batch_of({1, 2});
  for (auto& x : b.ballots)
    x.status = verdict::valid;
  auto answers = std::make_shared<std::vector<std::string>>();
  using answers_ptr = std::shared_ptr<std::vector<std::string>>;
  auto emit_twice = [&] {
    // Arguments, not captures: CAF 0.17 dereferences a null argument tuple
    // for a function spawned without any (UBSan reports it).
    auto client_fun = [](caf::event_based_actor* client, publisher_actor p, ballot_batch b,
                         answers_ptr answers) {
      for (int i = 0; i < 2; ++i)
        client->request(p, caf::infinite, emit_atom::value, b)
          .then([answers](caf::ok_atom) { answers->push_back("ok"); },
                [answers](caf::error& e) {
                  answers->push_back(e.code()
                                         == static_cast<uint8_t>(
                                           pipeline_errc::publish_not_confirmed)
                                       ? "not confirmed"
                                       : "other error");
                });
    };
    sys.spawn(client_fun, p, b, answers);
  };
  sink->hold_confirms = true;
  emit_twice();
  sched.run(50); // bounded: the publisher keeps polling while confirms are due
  CAF_CHECK_EQUAL(sink->published.size(), 4u);
  CAF_CHECK(answers->empty());
  sink->hold_confirms = false;
  sched.run();
  CAF_CHECK_EQUAL(*answers, (std::vector<std::string>{"ok", "ok"}));

  // The session breaks while two batches wait: both fail, none is answered ok.
  answers->clear();
  sink->hold_confirms = true;
  emit_twice();
  sched.run(50);
  CAF_CHECK_EQUAL(sink->published.size(), 8u);
  CAF_CHECK(answers->empty());
  sink->down = true;
  sched.run();
  CAF_CHECK_EQUAL(*answers, (std::vector<std::string>{"not confirmed", "not confirmed"}));
}

namespace {

struct fake_probe : queue_probe {
  std::optional<uint64_t> answer;
  std::optional<uint64_t> depth() override { return answer; }
};

} // namespace

CAF_TEST(the queue monitor exports the queue depth read from the broker) {
  auto probe = std::make_shared<fake_probe>();
  probe->answer = 42;
  keep(sys.spawn(queue_monitor, probe, stats, std::chrono::milliseconds{1000}));
  CAF_CHECK(stats->exposition().find("validation_queue_size 42") != std::string::npos);
  probe->answer = 7;
  sched.trigger_timeouts();
  sched.run();
  CAF_CHECK(stats->exposition().find("validation_queue_size 7") != std::string::npos);
}

CAF_TEST_FIXTURE_SCOPE_END()
