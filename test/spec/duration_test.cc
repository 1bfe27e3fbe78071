#include <catch2/catch.hpp>

#include "spec/flow.h"

using mflow::spec::format_duration;
using mflow::spec::parse_duration;
using std::chrono::seconds;

TEST_CASE("durations parse with units and combinations", "[spec]") {
  CHECK(parse_duration("90s") == seconds(90));
  CHECK(parse_duration("30m") == seconds(1800));
  CHECK(parse_duration("1h30m") == seconds(5400));
  CHECK(parse_duration("5d") == seconds(5 * 86400));
  CHECK(parse_duration("120") == seconds(120));
  CHECK_FALSE(parse_duration(""));
  CHECK_FALSE(parse_duration("1h30"));
  CHECK_FALSE(parse_duration("ten"));
  CHECK_FALSE(parse_duration("5x"));
  CHECK(format_duration(seconds(5400)) == "1h30m");
}
