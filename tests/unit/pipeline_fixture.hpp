#pragma once

#include <caf/test/dsl.hpp>

#include "actors/auditor.hpp"
#include "actors/consumer.hpp"
#include "actors/dedup.hpp"
#include "actors/publisher.hpp"
#include "actors/validator.hpp"
#include "fakes.hpp"

namespace vw::testing {

// The whole pipeline on the deterministic coordinator, every external system
// faked.
struct pipeline_fixture : test_coordinator_fixture<> {
  std::shared_ptr<journal> log = std::make_shared<journal>();
  std::shared_ptr<fake_source> source = std::make_shared<fake_source>(log);
  std::shared_ptr<fake_registry> registry = std::make_shared<fake_registry>(log);
  std::shared_ptr<fake_claims> claims = std::make_shared<fake_claims>(log);
  std::shared_ptr<fake_audit> audit = std::make_shared<fake_audit>(log);
  std::shared_ptr<fake_sink> sink = std::make_shared<fake_sink>(log);
  std::shared_ptr<metrics> stats = std::make_shared<metrics>();
  pipeline_stages stages;
  consumer_actor input;

  pipeline_fixture() {
    for (int i = 1; i <= 100; ++i)
      registry->voters.insert(hash_of(i));
    stages.validator = sys.spawn(validator, registry, stats);
    stages.dedup = sys.spawn(dedup, claims, stats);
    stages.auditor = sys.spawn(auditor, audit, stats);
    stages.publisher = sys.spawn(publisher, sink, stats);
  }

  ~pipeline_fixture() override {
    for (auto h : {caf::actor_cast<caf::actor>(input), caf::actor_cast<caf::actor>(stages.validator),
                   caf::actor_cast<caf::actor>(stages.dedup), caf::actor_cast<caf::actor>(stages.auditor),
                   caf::actor_cast<caf::actor>(stages.publisher)})
      if (h)
        anon_send_exit(h, caf::exit_reason::user_shutdown);
    sched.run();
  }

  consumer_settings settings(size_t batch = 10) {
    consumer_settings s;
    s.batch_size = batch;
    s.batch_max_wait = std::chrono::milliseconds{0};
    s.pace_idle_polls_with_clock = true;
    s.backoff_initial = std::chrono::milliseconds{100};
    s.backoff_max = std::chrono::milliseconds{1000};
    return s;
  }

  void start(size_t batch = 10) {
    input = sys.spawn(consumer, source, stages, settings(batch), stats);
    sched.run();
  }

  double processed(const char* status) { return stats->processed(status); }
};

} // namespace vw::testing
