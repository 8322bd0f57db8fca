// The test runner's main(); the suites live in the other files.
#include <caf/test/unit_test_impl.hpp>
