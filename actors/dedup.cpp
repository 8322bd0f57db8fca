#include "actors/dedup.hpp"
#include "actors/thread_name.hpp"

namespace vw {

dedup_actor::behavior_type dedup(dedup_actor::stateful_pointer<dedup_state> self,
                                 std::shared_ptr<claim_store> claims,
                                 std::shared_ptr<metrics> stats) {
  name_stage_thread(self, "vw-dedup");
  self->state.claims = std::move(claims);
  self->state.stats = std::move(stats);
  return {
    [self](claim_atom, ballot_batch& batch) -> caf::result<ballot_batch> {
      auto& st = self->state;
      st.health.touch();
      auto result = st.claims->claim(batch.ballots);
      st.stats->redis_op("claim", !result.failed());
      st.health.report(result);
      if (result.failed())
        return make_error(pipeline_errc::redis_unavailable, result.what());
      return std::move(batch);
    },
    [self](unclaim_atom, const ballot_batch& batch) -> caf::result<caf::ok_atom> {
      auto& st = self->state;
      auto result = st.claims->release(batch.ballots);
      st.stats->redis_op("release_claim", !result.failed());
      st.health.report(result);
      if (result.failed()) {
        // The redelivery still finds its own claim and resumes (G3).
        st.health.log().warn("could not release the claims of a batch whose audit failed: {}; "
                             "their redeliveries will resume the existing claims",
                             result.what());
        return make_error(pipeline_errc::redis_unavailable, result.what());
      }
      return caf::ok_atom::value;
    },
  };
}

} // namespace vw
