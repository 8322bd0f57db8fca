#include "actors/auditor.hpp"
#include "actors/thread_name.hpp"

namespace vw {

auditor_actor::behavior_type auditor(auditor_actor::stateful_pointer<auditor_state> self,
                                     std::shared_ptr<audit_log> audit,
                                     std::shared_ptr<metrics> stats) {
  name_stage_thread(self, "vw-auditor");
  self->state.audit = std::move(audit);
  self->state.stats = std::move(stats);
  self->send(self, tick_atom::value);
  return {
    [self](tick_atom) {
      auto& st = self->state;
      st.health.probe_when_idle([&] { return st.audit->probe(); }, *st.stats, "postgres");
      self->delayed_send(self, stage_health::probe_interval, tick_atom::value);
    },
    [self](audit_atom, ballot_batch& batch) -> caf::result<ballot_batch> {
      auto& st = self->state;
      st.health.touch();
      auto result = st.audit->record(batch.ballots, batch.processed_time_us, batch.decided_by);
      st.stats->database_op("insert_audit", !result.failed());
      st.health.report(result);
      if (result.failed())
        return make_error(pipeline_errc::database_unavailable, result.what());
      return std::move(batch);
    },
  };
}

} // namespace vw
