// The publisher-confirm bookkeeping behind G1: a batch is acked upstream only
// once `through()` passed its last message, so it must never run ahead of
// what the broker actually confirmed.
#define CAF_SUITE confirm_window
#include <caf/test/unit_test.hpp>

#include "infra/confirm_window.hpp"

using namespace vw;

namespace {

confirm_window with_sent(int n) {
  confirm_window w;
  w.open_channel();
  for (int i = 0; i < n; ++i)
    w.sent();
  return w;
}

} // namespace

CAF_TEST(a multiple ack confirms everything up to its tag and nothing after) {
  auto w = with_sent(5);
  CAF_CHECK_EQUAL(w.through(), 0u);
  w.confirm(3, true);
  CAF_CHECK_EQUAL(w.through(), 3u);
  w.confirm(5, true);
  CAF_CHECK_EQUAL(w.through(), 5u);
}

CAF_TEST(single acks out of order advance only over a gapless prefix) {
  auto w = with_sent(4);
  w.confirm(2, false);
  w.confirm(4, false);
  CAF_CHECK_EQUAL(w.through(), 0u); // message 1 is still unconfirmed
  w.confirm(1, false);
  CAF_CHECK_EQUAL(w.through(), 2u); // 3 is still missing
  w.confirm(3, false);
  CAF_CHECK_EQUAL(w.through(), 4u);
}

CAF_TEST(a multiple ack fills in behind earlier single acks) {
  auto w = with_sent(6);
  w.confirm(5, false);
  w.confirm(3, true);
  CAF_CHECK_EQUAL(w.through(), 3u);
  w.confirm(4, false);
  CAF_CHECK_EQUAL(w.through(), 5u);
}

CAF_TEST(repeated and stale acks change nothing) {
  auto w = with_sent(3);
  w.confirm(2, true);
  w.confirm(2, true);
  w.confirm(1, false);
  w.confirm(0, true); // not a tag the broker gives
  CAF_CHECK_EQUAL(w.through(), 2u);
}

CAF_TEST(an ack for a tag never sent confirms only what was sent) {
  auto w = with_sent(2);
  w.confirm(7, false);
  CAF_CHECK_EQUAL(w.through(), 0u);
  w.confirm(9, true);
  CAF_CHECK_EQUAL(w.through(), 2u);
  w.sent(); // 3
  CAF_CHECK_EQUAL(w.through(), 2u);
}

CAF_TEST(after a reconnection tags restart and unconfirmed messages stay unconfirmed) {
  auto w = with_sent(4);
  w.confirm(2, true);
  CAF_CHECK_EQUAL(w.through(), 2u);
  // Messages 3 and 4 were on the lost channel; the publisher fails their
  // batches. The new channel's tag 1 is sequence number 5.
  w.forget();
  w.open_channel();
  auto s5 = w.sent();
  auto s6 = w.sent();
  CAF_CHECK_EQUAL(s5, 5u);
  CAF_CHECK_EQUAL(s6, 6u);
  // The new channel starts at 4: a batch ending at 3 or 4 reads as passed, which
  // is why every batch outstanding at the loss must have been failed first.
  CAF_CHECK_EQUAL(w.through(), 4u);
  w.confirm(1, false);
  CAF_CHECK_EQUAL(w.through(), 5u);
  w.confirm(2, true);
  CAF_CHECK_EQUAL(w.through(), 6u);
}
