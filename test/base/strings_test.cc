#include "base/strings.h"

#include <catch2/catch.hpp>

#include "base/hash.h"

using namespace mflow::base;

TEST_CASE("split and join round-trip", "[base]") {
  CHECK(split("a,b,,c", ',') == std::vector<std::string>{"a", "b", "", "c"});
  CHECK(join({"a", "b"}, "->") == "a->b");
  CHECK(trim("  x y \n") == "x y");
}

TEST_CASE("closest_match suggests plausible typos only", "[base]") {
  std::vector<std::string> keys{"resources", "retries", "timeout", "foreach"};
  CHECK(closest_match("resource", keys) == "resources");
  CHECK(closest_match("retires", keys) == "retries");
  CHECK(closest_match("zzzzzz", keys).empty());
}

TEST_CASE("shell_quote quotes only when needed", "[base]") {
  CHECK(shell_quote("mflow") == "mflow");
  CHECK(shell_quote("a b") == "'a b'");
  CHECK(shell_quote("it's") == "'it'\\''s'");
}

TEST_CASE("sha256 matches the standard test vector", "[base]") {
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
