#include "actors/validator.hpp"
#include "actors/thread_name.hpp"

namespace vw {

validator_actor::behavior_type validator(validator_actor::stateful_pointer<validator_state> self,
                                         std::shared_ptr<voter_registry> registry,
                                         std::shared_ptr<metrics> stats) {
  name_stage_thread(self, "vw-validator");
  self->state.stats = std::move(stats);
  // Only this actor uses the connection from here on (hiredis is not thread-safe).
  self->state.registry = std::move(registry);
  self->send(self, tick_atom::value);
  return {
    [self](tick_atom) {
      auto& st = self->state;
      st.health.probe_when_idle([&] { return st.registry->probe(); }, *st.stats, "redis");
      self->delayed_send(self, stage_health::probe_interval, tick_atom::value);
    },
    [self](validate_atom, ballot_batch& batch) -> caf::result<ballot_batch> {
      auto& st = self->state;
      std::vector<const std::string*> hashes;
      std::vector<ballot*> pending;
      for (auto& b : batch.ballots)
        if (b.status == verdict::pending) {
          hashes.push_back(&b.content.voter_hash);
          pending.push_back(&b);
        }
      std::vector<bool> known;
      st.health.touch();
      auto result = st.registry->known_voters(hashes, known);
      st.stats->redis_op("check_voters", !result.failed());
      st.health.report(result);
      if (result.failed())
        return make_error(pipeline_errc::redis_unavailable, result.what());
      for (size_t i = 0; i < pending.size(); ++i)
        if (!known[i]) {
          pending[i]->status = verdict::invalid;
          pending[i]->review_reason = "voter_hash is not a registered voter";
        }
      return std::move(batch);
    },
  };
}

} // namespace vw
