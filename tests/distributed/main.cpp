// The distributed test runner: CAF 0.17's unit test framework main().
#include <caf/test/unit_test_impl.hpp>
