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

TEST_CASE("issue_9 invalid_utf8_offset finds the first byte that is not UTF-8", "[base]") {
  CHECK(invalid_utf8_offset("héllo wörld") == std::string_view::npos);
  CHECK(invalid_utf8_offset(std::string_view("a\0b", 3)) == std::string_view::npos);
  CHECK(invalid_utf8_offset("ok\xff\xfe") == 2);
  CHECK(invalid_utf8_offset("a\xc3") == 1);              // truncated sequence
  CHECK(invalid_utf8_offset("\xc0\xaf") == 0);           // overlong '/'
  CHECK(invalid_utf8_offset("x\xed\xa0\x80") == 1);      // surrogate
  CHECK(invalid_utf8_offset("\xf4\x90\x80\x80") == 0);   // above U+10FFFF
}

TEST_CASE("issue_9 printable escapes what would garble a message", "[base]") {
  CHECK(printable("héllo\tworld") == "héllo\tworld");
  CHECK(printable("\xff\xfe") == "\\xff\\xfe");
  CHECK(printable(std::string_view("a\0b\x1b", 4)) == "a\\x00b\\x1b");
}

TEST_CASE("issue_9 printable can produce the body of a bash $'...' string", "[base]") {
  CHECK(printable("it's a\\b\xff", "'\\") == "it\\'s a\\\\b\\xff");
}
