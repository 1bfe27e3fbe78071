// Builders for flow models in tests that exercise the graph, plan and scheduler directly
// (without a flow file).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "spec/flow.h"

namespace mflow::test {

/// A step running `true` with the given successors, optional foreach artifact and join mark.
inline spec::Step make_step(std::string name, std::vector<std::string> next,
                            std::string foreach = "", bool join = false) {
  spec::Step s;
  s.name = std::move(name);
  s.run.script = "true";
  s.next = std::move(next);
  s.next_pos.resize(s.next.size());
  s.foreach = std::move(foreach);
  s.join = join;
  return s;
}

}  // namespace mflow::test
