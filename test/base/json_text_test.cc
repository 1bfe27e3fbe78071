#include "base/json_text.h"

#include <string>

#include <catch2/catch.hpp>

using namespace mflow;

TEST_CASE("json_nesting_depth counts brackets outside strings only", "[base]") {
  CHECK(base::json_nesting_depth("") == 0);
  CHECK(base::json_nesting_depth("17") == 0);
  CHECK(base::json_nesting_depth("[1, [2, {\"a\": [3]}]]") == 4);
  CHECK(base::json_nesting_depth(R"(["[[[[", "\"[[[", {"k": "}}}"}])") == 2);
  CHECK(base::json_nesting_depth("]]][[") == 2);  // malformed text: the parser's business
}

TEST_CASE("check_json_depth refuses text deeper than kMaxJsonDepth, naming it", "[base]") {
  std::string ok = std::string(base::kMaxJsonDepth, '[') + std::string(base::kMaxJsonDepth, ']');
  CHECK(base::check_json_depth(ok, "x").ok());
  std::string deep = std::string(200000, '[') + std::string(200000, ']');
  auto s = base::check_json_depth(deep, "--items-json deep.json");
  REQUIRE_FALSE(s.ok());
  CHECK(s.message() ==
        "--items-json deep.json nests arrays/objects 200000 levels deep; mflow accepts at most 1000");
}
