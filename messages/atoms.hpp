#pragma once

#include <caf/type_id.hpp>

#include "messages/errors.hpp"
#include "messages/vote.hpp"

// Every type and atom that crosses an actor boundary, registered once so the
// same messages can cross CAF nodes (caf::io::middleman) unchanged. Changing
// this block or a message's fields changes the wire protocol: bump the
// protocol version in app/main.cpp (middleman.app-identifiers).
CAF_BEGIN_TYPE_ID_BLOCK(vote_worker, caf::first_custom_type_id)

  CAF_ADD_TYPE_ID(vote_worker, (vw::vote))
  CAF_ADD_TYPE_ID(vote_worker, (vw::ballot))
  CAF_ADD_TYPE_ID(vote_worker, (vw::ballot_batch))

  CAF_ADD_ATOM(vote_worker, vw, poll_atom, "poll")
  CAF_ADD_ATOM(vote_worker, vw, validate_atom, "validate")
  CAF_ADD_ATOM(vote_worker, vw, claim_atom, "claim")
  CAF_ADD_ATOM(vote_worker, vw, unclaim_atom, "unclaim")
  CAF_ADD_ATOM(vote_worker, vw, audit_atom, "audit")
  CAF_ADD_ATOM(vote_worker, vw, emit_atom, "emit")
  CAF_ADD_ATOM(vote_worker, vw, drain_atom, "drain")
  CAF_ADD_ATOM(vote_worker, vw, drained_atom, "drained")
  CAF_ADD_ATOM(vote_worker, vw, stop_atom, "stop")
  CAF_ADD_ATOM(vote_worker, vw, stages_atom, "stages")
  CAF_ADD_ATOM(vote_worker, vw, tick_atom, "tick")
  CAF_ADD_ATOM(vote_worker, vw, status_atom, "status")
  CAF_ADD_ATOM(vote_worker, vw, restart_atom, "restart")
  CAF_ADD_ATOM(vote_worker, vw, deadline_atom, "deadline")
  CAF_ADD_ATOM(vote_worker, vw, lookup_atom, "lookup")

CAF_END_TYPE_ID_BLOCK(vote_worker)
