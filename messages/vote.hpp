#pragma once

#include <cstdint>
#include <string>
#include <vector>

// The domain values that travel between stages. Plain data with `inspect`
// overloads, free of CAF and of any client library, so infra code and remote
// CAF nodes share them unchanged.
namespace vw {

// What the worker decided for one vote.
enum class verdict : uint8_t {
  pending,   // not decided yet
  valid,     // counted: claimed, audited, sent to aggregation
  invalid,   // voter not in valid_hashes
  duplicate, // voter already counted
};

const char* to_string(verdict x);

// What the claim step found for a known voter.
enum class claim_result : uint8_t {
  none,      // not claimed yet
  fresh,     // SADD returned 1: this delivery now holds the claim
  resumed,   // a redelivery of the message that already holds the claim
  taken,     // another message holds the claim: a duplicate
};

// A well-formed vote, decoded from one delivery.
struct vote {
  std::string voter_hash;       // 64 lower-case hex chars
  int32_t candidate_id = 0;     // 1 .. 2^31-1
  int64_t vote_time_us = 0;     // microseconds since the epoch, UTC
  std::string carried_json;     // other input fields as a JSON object, PII removed
  std::string fingerprint;      // digest of the message body: tells a redelivery from a new vote
};

// One vote in flight, with its delivery and what each stage found.
struct ballot {
  vote content;
  uint64_t delivery_tag = 0;
  bool redelivered = false;
  verdict status = verdict::pending;
  claim_result claim = claim_result::none;
  int64_t duplicate_count = 0;  // duplicate_count:{hash} after INCR
  std::string review_reason;    // why an invalid or duplicate vote goes to review
};

// The unit of work between stages: one Redis round trip, one transaction, one
// confirm wait each.
struct ballot_batch {
  uint64_t id = 0;
  uint64_t channel_epoch = 0;   // which consumer channel the delivery tags belong to
  int64_t processed_time_us = 0;
  std::string decided_by; // WORKER_ID of the ingress node (audit rows and outputs name it)
  std::vector<ballot> ballots;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, vote& x) {
  return f(x.voter_hash, x.candidate_id, x.vote_time_us, x.carried_json, x.fingerprint);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ballot& x) {
  return f(x.content, x.delivery_tag, x.redelivered, x.status, x.claim, x.duplicate_count,
           x.review_reason);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ballot_batch& x) {
  return f(x.id, x.channel_epoch, x.processed_time_us, x.decided_by, x.ballots);
}

} // namespace vw
