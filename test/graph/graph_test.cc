#include "graph/graph.h"

#include <chrono>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

using namespace mflow;
using graph::FanIn;
using graph::FanOut;
using graph::Graph;

namespace {

// A step at line `line` (column 3); its `next` entries sit on the following line.
spec::Step step(std::string name, std::vector<std::string> next, std::string foreach = "",
                bool join = false) {
  static int line = 0;
  spec::Step s;
  s.name = std::move(name);
  s.pos = {++line, 3};
  s.run.script = "true";
  s.next = std::move(next);
  for (size_t k = 0; k < s.next.size(); ++k) s.next_pos.push_back({line, 12 + 5 * static_cast<int>(k)});
  s.foreach = std::move(foreach);
  if (!s.foreach.empty()) s.foreach_pos = {line, 40};
  s.join = join;
  if (join) s.join_pos = {line, 50};
  return s;
}

spec::Flow flow_of(std::vector<spec::Step> steps, std::string name = "lint-test") {
  spec::Flow flow;
  flow.file = "flow.yaml";
  flow.name = std::move(name);
  flow.name_pos = {1, 1};
  flow.steps = std::move(steps);
  return flow;
}

Graph build_ok(std::vector<spec::Step> steps) {
  spec::Diagnostics diags;
  auto g = Graph::build(flow_of(std::move(steps)), &diags);
  INFO(diags.format_all());
  REQUIRE(g.has_value());
  CHECK(diags.items().empty());
  return std::move(*g);
}

// Builds a flow that must fail and returns its diagnostics.
spec::Diagnostics build_bad(spec::Flow flow) {
  spec::Diagnostics diags;
  auto g = Graph::build(std::move(flow), &diags);
  CHECK_FALSE(g.has_value());
  CHECK(diags.has_errors());
  return diags;
}
spec::Diagnostics build_bad(std::vector<spec::Step> steps) {
  return build_bad(flow_of(std::move(steps)));
}

const spec::Diagnostic& find(const spec::Diagnostics& diags, const std::string& needle) {
  for (const auto& d : diags.items()) {
    if (d.message.find(needle) != std::string::npos) return d;
  }
  FAIL("no diagnostic contains '" << needle << "' in:\n" << diags.format_all());
  throw std::logic_error("unreachable");
}

std::vector<std::string> names(const Graph& g, const std::vector<size_t>& indices) {
  std::vector<std::string> out;
  for (size_t i : indices) out.push_back(g.node(i).name());
  return out;
}

size_t at(const Graph& g, const std::string& name) {
  auto i = g.find(name);
  REQUIRE(i.has_value());
  return *i;
}

}  // namespace

TEST_CASE("a linear flow builds with every node field filled", "[graph]") {
  auto g = build_ok({step("start", {"a"}), step("end", {}), step("a", {"end"})});
  CHECK(names(g, g.topo_order()) == std::vector<std::string>{"start", "a", "end"});
  CHECK(g.node(g.start()).name() == "start");
  CHECK(g.node(g.end()).name() == "end");
  const auto& a = g.node(at(g, "a"));
  CHECK(a.fan_out == FanOut::kLinear);
  CHECK(a.fan_in == FanIn::kNone);
  CHECK(names(g, a.parents) == std::vector<std::string>{"start"});
  CHECK(names(g, a.children) == std::vector<std::string>{"end"});
  CHECK(g.node(g.end()).fan_out == FanOut::kEnd);
  CHECK(g.node(g.start()).parents.empty());
  CHECK_FALSE(g.find("missing").has_value());
  CHECK(a.step == &g.flow().steps[a.index]);
}

TEST_CASE("missing start and end are reported", "[graph]") {
  auto diags = build_bad({step("begin", {"finish"}), step("finish", {})});
  CHECK(find(diags, "no `start` step").pos.line == 1);
  find(diags, "no `end` step");
}

TEST_CASE("duplicate step names are reported with the first definition", "[graph]") {
  auto first = step("a", {"end"});
  auto second = step("a", {"end"});
  auto diags = build_bad({step("start", {"a"}), first, second, step("end", {})});
  const auto& d = find(diags, "step 'a' is defined twice");
  CHECK(d.pos.line == second.pos.line);
  CHECK(d.message.find(std::to_string(first.pos.line)) != std::string::npos);
}

TEST_CASE("an unknown next is reported at the entry with a did-you-mean", "[graph]") {
  auto start = step("start", {"trian"});
  auto diags = build_bad({start, step("train", {"end"}), step("end", {})});
  const auto& d = find(diags, "there is no step named 'trian'");
  CHECK(d.pos.line == start.next_pos[0].line);
  CHECK(d.pos.column == start.next_pos[0].column);
  CHECK(d.hint == "did you mean 'train'?");
  CHECK(d.file == "flow.yaml");
  CHECK(d.json_pointer == "/steps/start/next");
  // The typo is the one problem: train is not also "unreachable", start not "stuck".
  INFO(diags.format_all());
  CHECK(diags.items().size() == 1);
}

TEST_CASE("an unreachable region is reported once, at its first step", "[graph]") {
  auto orphan = step("orphan", {"orphan2"});
  auto diags = build_bad({step("start", {"end"}), step("orphan2", {"orphan3"}),
                          step("orphan3", {"end"}), orphan, step("end", {})});
  CHECK(diags.items().size() == 1);
  const auto& d = find(diags, "step 'orphan' is not reachable from `start` (nor 2 steps after it)");
  CHECK(d.pos.line == orphan.pos.line);
  // An unreachable cycle has no first step: it is reported at one of its steps, and as a cycle.
  auto d2 = build_bad({step("start", {"end"}), step("x", {"y"}), step("y", {"x", "end"}),
                       step("end", {})});
  find(d2, "step 'x' is not reachable from `start` (nor 1 step after it)");
  find(d2, "cycle: x -> y -> x");
  CHECK(d2.items().size() == 2);
}

TEST_CASE("a missing next is not reported again as an unreachable end", "[graph]") {
  auto diags = build_bad({step("start", {"middle"}), step("middle", {}), step("end", {})});
  find(diags, "step 'middle' has no `next`");
  CHECK(diags.items().size() == 1);
}

TEST_CASE("a missing next is not reported again upstream as never reaching end", "[graph]") {
  auto diags = build_bad({step("start", {"a", "b"}), step("a", {}), step("b", {"j"}),
                          step("j", {"end"}), step("end", {})});
  find(diags, "step 'a' has no `next`");
  CHECK(diags.items().size() == 1);
}

TEST_CASE("without an end, the steps lacking next are named in the hint", "[graph]") {
  auto diags = build_bad({step("start", {"finish"}), step("finish", {})});
  CHECK(diags.items().size() == 1);
  CHECK(find(diags, "no `end` step").hint.find("rename 'finish'") != std::string::npos);
}

TEST_CASE("an unknown next far from every name gets no guess", "[graph]") {
  auto diags = build_bad({step("start", {"zzzzzzzz"}), step("end", {})});
  CHECK(find(diags, "no step named 'zzzzzzzz'").hint.find("did you mean") == std::string::npos);
}

TEST_CASE("end must not have next and every other step needs one", "[graph]") {
  auto end = step("end", {"start"});
  auto lonely = step("a", {});
  auto diags = build_bad({step("start", {"a"}), lonely, end});
  CHECK(find(diags, "`end` must not have `next`").pos.line == end.next_pos[0].line);
  CHECK(find(diags, "step 'a' has no `next`").pos.line == lonely.pos.line);
}

TEST_CASE("a foreach needs exactly one next", "[graph]") {
  auto diags = build_bad({step("start", {"a", "b"}, "items"), step("a", {"j"}), step("b", {"j"}),
                          step("j", {"end"}), step("end", {})});
  find(diags, "needs exactly one `next`, not 2");
}

TEST_CASE("duplicate branches and edges back to start are rejected", "[graph]") {
  auto d1 = build_bad({step("start", {"a", "a"}), step("a", {"end"}), step("end", {})});
  find(d1, "lists 'a' twice");
  auto d2 = build_bad({step("start", {"a"}), step("a", {"start"}), step("end", {})});
  find(d2, "nothing may lead back to `start`");
}

TEST_CASE("a cycle is reported as the actual path", "[graph]") {
  auto c = step("c", {"a"});
  auto diags = build_bad({step("start", {"a"}), step("a", {"b"}), step("b", {"c", "end"}), c,
                          step("end", {})});
  const auto& d = find(diags, "cycle:");
  CHECK(d.message == "cycle: a -> b -> c -> a");
  CHECK(d.pos.line == c.next_pos[0].line);
  CHECK(d.pos.column == c.next_pos[0].column);
}

TEST_CASE("a self loop is a cycle", "[graph]") {
  auto diags = build_bad({step("start", {"a"}), step("a", {"a", "end"}), step("end", {})});
  CHECK(find(diags, "cycle:").message == "cycle: a -> a");
}

TEST_CASE("an acyclic diamond reports no cycle", "[graph]") {
  build_ok({step("start", {"a", "b"}), step("a", {"j"}), step("b", {"j"}), step("j", {"end"}),
            step("end", {})});
}

TEST_CASE("unreachable steps and steps that never reach end are reported", "[graph]") {
  auto orphan = step("orphan", {"end"});
  auto diags = build_bad({step("start", {"end"}), orphan, step("end", {})});
  CHECK(find(diags, "step 'orphan' is not reachable from `start`").pos.line == orphan.pos.line);

  // issue_9: steps trapped in a cycle never reach `end` because of the cycle; that is one
  // problem, reported once, as the cycle.
  auto stuck = step("b", {"c"});
  auto d2 = build_bad({step("start", {"a"}), step("a", {"b", "end"}), stuck, step("c", {"b"}),
                       step("end", {})});
  find(d2, "cycle: b -> c -> b");
  CHECK(d2.items().size() == 1);
  // Even when the cycle keeps everything, `end` included, out of reach.
  auto d3 = build_bad({step("start", {"b"}), step("b", {"c"}), step("c", {"b"}), step("end", {})});
  find(d3, "cycle: b -> c -> b");
  CHECK(d3.items().size() == 1);
}

TEST_CASE("step and flow names must be Kubernetes label values", "[graph]") {
  std::string long_name(64, 'x');
  auto diags = build_bad(flow_of({step("start", {long_name}), step(long_name, {"end"}),
                                  step("end", {"bad name!"}), step("bad name!", {})},
                                 "-flow"));
  CHECK(find(diags, "is 64 characters long").message.find("step name") == 0);
  find(diags, "step name 'bad name!' is not a valid Kubernetes label value: it contains ' '");
  CHECK(find(diags, "flow name '-flow'").pos.line == 1);

  CHECK(graph::label_value_problem(std::string(63, 'a')).empty());
  CHECK(graph::label_value_problem("a.b_c-D9").empty());
  CHECK_FALSE(graph::label_value_problem("a-").empty());
  CHECK_FALSE(graph::label_value_problem("_a").empty());
}

TEST_CASE("a static split and its join: fan out/in, parents in branch order", "[graph]") {
  // The branches' steps come in a different file order than the `next` list.
  auto g = build_ok({step("start", {"c", "a", "b"}), step("b", {"join"}), step("a", {"join"}),
                     step("c", {"c2"}), step("c2", {"join"}), step("join", {"end"}),
                     step("end", {})});
  const auto& start = g.node(g.start());
  const auto& join = g.node(at(g, "join"));
  CHECK(start.fan_out == FanOut::kStaticSplit);
  CHECK(names(g, start.children) == std::vector<std::string>{"c", "a", "b"});
  CHECK(join.fan_in == FanIn::kStatic);
  CHECK(names(g, join.parents) == std::vector<std::string>{"c2", "a", "b"});
  CHECK(join.split_of_join == g.start());
  CHECK(start.join_of_split == at(g, "join"));
  CHECK(join.foreach_depth == 0);
}

TEST_CASE("a join with parents from different splits is rejected", "[graph]") {
  // start splits into a and b; a splits into a1 and a2; j joins a1 and b (wrong level).
  auto j = step("j", {"k"});
  auto diags = build_bad({step("start", {"a", "b"}), step("a", {"a1", "a2"}), step("a1", {"j"}),
                          step("a2", {"k"}), step("b", {"j"}), j, step("k", {"end"}),
                          step("end", {})});
  const auto& d = find(diags, "join 'j' mixes different splits");
  CHECK(d.pos.line == j.pos.line);
  CHECK(d.message.find("branch 'a1' of split 'a'") != std::string::npos);
  CHECK(d.message.find("branch 'b' of split 'start'") != std::string::npos);
  // The cascade at k is not reported on top.
  CHECK(diags.items().size() == 1);
}

TEST_CASE("a join missing a branch is rejected", "[graph]") {
  auto diags = build_bad({step("start", {"a", "b", "c"}), step("a", {"j"}), step("b", {"j"}),
                          step("c", {"k"}), step("j", {"k"}), step("k", {"end"}),
                          step("end", {})});
  find(diags, "join 'j' does not gather every branch of split 'start': branch 'c' does not");
}

TEST_CASE("a join with two parents in one branch is rejected", "[graph]") {
  // a's split is never closed on its own: both its branches go straight to j with b.
  auto diags = build_bad({step("start", {"a", "b"}), step("a", {"x", "y"}), step("x", {"j"}),
                          step("y", {"j"}), step("b", {"j"}), step("j", {"end"}),
                          step("end", {})});
  find(diags, "join 'j' mixes different splits");
  // Directly: two paths of one branch meet at the join after an inner join was skipped.
  auto d2 = build_bad({step("start", {"a", "b"}), step("a", {"x", "y"}), step("x", {"m"}),
                       step("y", {"m"}), step("m", {"p", "q"}), step("p", {"j"}),
                       step("q", {"j"}), step("b", {"j"}), step("j", {"end"}), step("end", {})});
  CHECK(d2.items().size() == 1);
  find(d2, "join 'j' mixes different splits");
}

TEST_CASE("an inner split closed inside a branch, then the outer join", "[graph]") {
  auto g = build_ok({step("start", {"a", "z"}), step("a", {"b", "c"}), step("b", {"j"}),
                     step("c", {"j"}), step("j", {"end"}), step("z", {"end"}),
                     step("end", {})});
  CHECK(names(g, g.node(g.end()).parents) == std::vector<std::string>{"j", "z"});
  CHECK(g.node(at(g, "a")).join_of_split == at(g, "j"));
  CHECK(g.node(g.end()).split_of_join == g.start());
  CHECK(g.node(g.end()).fan_in == FanIn::kStatic);
}

TEST_CASE("a join mixing an inner split's branches with an outer branch is rejected",
          "[graph]") {
  // s splits inside branch b of start; n gathers m (branch a) with x and y (branches of s).
  auto diags = build_bad({step("start", {"a", "b"}), step("a", {"m"}), step("b", {"s"}),
                          step("s", {"x", "y"}), step("x", {"n"}), step("y", {"n"}),
                          step("m", {"n"}), step("n", {"end"}), step("end", {})});
  find(diags, "join 'n' mixes different splits");
  CHECK(diags.items().size() == 1);
}

TEST_CASE("a foreach closed by a join: fan out, fan in and depth", "[graph]") {
  auto g = build_ok({step("start", {"body"}, "items"), step("body", {"more"}),
                     step("more", {"gather"}), step("gather", {"end"}, "", true),
                     step("end", {})});
  const auto& start = g.node(g.start());
  const auto& gather = g.node(at(g, "gather"));
  CHECK(start.fan_out == FanOut::kForeach);
  CHECK(start.join_of_split == at(g, "gather"));
  CHECK(gather.fan_in == FanIn::kForeach);
  CHECK(gather.split_of_join == g.start());
  CHECK(names(g, gather.parents) == std::vector<std::string>{"more"});
  CHECK(start.foreach_depth == 0);
  CHECK(g.node(at(g, "body")).foreach_depth == 1);
  CHECK(g.node(at(g, "more")).foreach_depth == 1);
  CHECK(gather.foreach_depth == 0);
  CHECK(g.node(g.end()).foreach_depth == 0);
}

TEST_CASE("nested foreach: depth counts the enclosing scopes", "[graph]") {
  auto g = build_ok({step("start", {"outer"}, "xs"), step("outer", {"inner"}, "ys"),
                     step("inner", {"branch"}), step("branch", {"p", "q"}), step("p", {"pq"}),
                     step("q", {"pq"}), step("pq", {"ijoin"}), step("ijoin", {"ojoin"}, "", true),
                     step("ojoin", {"end"}, "", true), step("end", {})});
  CHECK(g.node(g.start()).foreach_depth == 0);
  CHECK(g.node(at(g, "outer")).foreach_depth == 1);
  CHECK(g.node(at(g, "inner")).foreach_depth == 2);
  CHECK(g.node(at(g, "p")).foreach_depth == 2);
  CHECK(g.node(at(g, "pq")).foreach_depth == 2);
  CHECK(g.node(at(g, "pq")).split_of_join == at(g, "branch"));
  CHECK(g.node(at(g, "ijoin")).foreach_depth == 1);
  CHECK(g.node(at(g, "ijoin")).split_of_join == at(g, "outer"));
  CHECK(g.node(at(g, "ojoin")).foreach_depth == 0);
  CHECK(g.node(at(g, "ojoin")).split_of_join == g.start());
  CHECK(g.node(g.start()).join_of_split == at(g, "ojoin"));
}

TEST_CASE("a foreach that is never closed says to mark its join", "[graph]") {
  auto start = step("start", {"body"}, "items");
  auto diags = build_bad({start, step("body", {"after"}), step("after", {"end"}),
                          step("end", {})});
  const auto& d = find(diags, "the foreach in step 'start' is never closed");
  CHECK(d.pos.line == start.foreach_pos.line);
  CHECK(d.pos.column == start.foreach_pos.column);
  CHECK(d.hint.find("`join: true`") != std::string::npos);
}

TEST_CASE("join: true on a step that closes nothing is an error", "[graph]") {
  auto j = step("a", {"end"}, "", true);
  auto diags = build_bad({step("start", {"a"}), j, step("end", {})});
  const auto& d = find(diags, "step 'a' is marked `join: true` but closes no foreach");
  CHECK(d.pos.line == j.join_pos.line);
  CHECK(d.pos.column == j.join_pos.column);

  auto d2 = build_bad({step("start", {"a"}, "", true), step("a", {"end"}), step("end", {})});
  find(d2, "step 'start' is marked `join: true`");
}

TEST_CASE("join: true inside an open static branch is an error", "[graph]") {
  auto diags = build_bad({step("start", {"a", "b"}), step("a", {"j"}, "", true),
                          step("b", {"j"}), step("j", {"end"}), step("end", {})});
  find(diags, "it is inside branch 'a' of split 'start'");
}

TEST_CASE("join: true on a static join is accepted", "[graph]") {
  auto g = build_ok({step("start", {"a", "b"}), step("a", {"j"}), step("b", {"j"}),
                     step("j", {"end"}, "", true), step("end", {})});
  CHECK(g.node(at(g, "j")).fan_in == FanIn::kStatic);
}

TEST_CASE("a foreach whose next is its own join has an empty body", "[graph]") {
  auto diags = build_bad({step("start", {"j"}, "items"), step("j", {"end"}, "", true),
                          step("end", {})});
  find(diags, "the foreach in step 'start' has an empty body");
}

TEST_CASE("a static join of branches still inside a foreach is rejected", "[graph]") {
  // Each branch opens a foreach; the join tries to gather before the foreaches close.
  auto diags = build_bad({step("start", {"a", "b"}), step("a", {"ab"}, "xs"), step("ab", {"j"}),
                          step("b", {"j"}), step("j", {"end"}), step("end", {})});
  find(diags, "join 'j' has parent 'ab' inside the foreach of step 'a'");
}

TEST_CASE("a split inside a foreach body and a foreach inside a branch", "[graph]") {
  auto g = build_ok({step("start", {"a", "b"}), step("a", {"body"}, "xs"), step("body", {"fj"}),
                     step("fj", {"j"}, "", true), step("b", {"j"}), step("j", {"end"}),
                     step("end", {})});
  CHECK(names(g, g.node(at(g, "j")).parents) == std::vector<std::string>{"fj", "b"});
  CHECK(g.node(at(g, "body")).foreach_depth == 1);
  CHECK(g.node(at(g, "fj")).foreach_depth == 0);
}

TEST_CASE("every independent problem is reported in one pass", "[graph]") {
  auto diags = build_bad(flow_of({step("start", {"a", "typo"}), step("a", {}),
                                  step("orphan", {"end"}), step("end", {"start"}),
                                  step("Bad_", {"end"})}));
  find(diags, "no step named 'typo'");
  find(diags, "step 'a' has no `next`");
  find(diags, "`end` must not have `next`");
  find(diags, "step 'orphan' is not reachable");
  find(diags, "step name 'Bad_'");
}

TEST_CASE("critical path counts steps to end", "[graph]") {
  auto g = build_ok({step("start", {"short", "long1"}), step("short", {"j"}),
                     step("long1", {"long2"}), step("long2", {"j"}), step("j", {"end"}),
                     step("end", {})});
  CHECK(g.node(g.end()).critical_path == 1);
  CHECK(g.node(at(g, "j")).critical_path == 2);
  CHECK(g.node(at(g, "short")).critical_path == 3);
  CHECK(g.node(at(g, "long1")).critical_path == 4);
  CHECK(g.node(g.start()).critical_path == 5);
}

TEST_CASE("topological order puts parents first; downstream follows it", "[graph]") {
  auto g = build_ok({step("end", {}), step("j", {"end"}), step("b2", {"j"}), step("b", {"b2"}),
                     step("a", {"j"}), step("start", {"a", "b"})});
  const auto& topo = g.topo_order();
  REQUIRE(topo.size() == g.nodes().size());
  CHECK(topo.front() == g.start());
  CHECK(topo.back() == g.end());
  std::vector<size_t> pos(topo.size());
  for (size_t i = 0; i < topo.size(); ++i) pos[topo[i]] = i;
  for (const auto& node : g.nodes()) {
    for (size_t c : node.children) CHECK(pos[node.index] < pos[c]);
  }
  CHECK(names(g, g.downstream(at(g, "b"))) == std::vector<std::string>{"b", "b2", "j", "end"});
  CHECK(names(g, g.downstream(g.end())) == std::vector<std::string>{"end"});
}

TEST_CASE("copies re-point nodes into their own flow", "[graph]") {
  auto g = build_ok({step("start", {"end"}), step("end", {})});
  Graph copy = g;
  CHECK(copy.node(0).step == &copy.flow().steps[0]);
  CHECK(copy.node(0).step != g.node(0).step);
  Graph assigned = build_ok({step("start", {"x"}), step("x", {"end"}), step("end", {})});
  assigned = copy;
  CHECK(assigned.node(1).step == &assigned.flow().steps[1]);
  CHECK(assigned.node(1).name() == "end");
  Graph moved = std::move(assigned);
  CHECK(moved.node(1).step == &moved.flow().steps[1]);
}

namespace {

// A 100,000-step chain with a static branch and a foreach every 1,000 steps.
spec::Flow big_flow(int n) {
  spec::Flow flow = flow_of({});
  flow.steps.reserve(static_cast<size_t>(n) + 8);
  auto s = [](int i) { return "s" + std::to_string(i); };
  flow.steps.push_back(step("start", {s(0)}));
  for (int i = 0; i < n; ++i) {
    std::string next = i + 1 < n ? s(i + 1) : "end";
    if (i % 1000 == 10 && i + 4 < n) {
      // s(i) splits to s(i+1) and s(i+2); both join at s(i+3).
      flow.steps.push_back(step(s(i), {s(i + 1), s(i + 2)}));
      flow.steps.push_back(step(s(i + 1), {s(i + 3)}));
      flow.steps.push_back(step(s(i + 2), {s(i + 3)}));
      i += 2;
    } else if (i % 1000 == 500 && i + 3 < n) {
      flow.steps.push_back(step(s(i), {s(i + 1)}, "items"));
      flow.steps.push_back(step(s(i + 1), {s(i + 2)}));
      flow.steps.push_back(step(s(i + 2), {s(i + 3)}, "", true));
      i += 2;
    } else {
      flow.steps.push_back(step(s(i), {next}));
    }
  }
  flow.steps.push_back(step("end", {}));
  return flow;
}

}  // namespace

// Speed is measured by bench/check_scaling.sh; this pins that a chain far deeper than any
// stack could recurse through lints completely.
TEST_CASE("a 100,000-step chain lints without recursion", "[graph]") {
  spec::Flow flow = big_flow(100000);
  size_t steps = flow.steps.size();
  spec::Diagnostics diags;
  auto g = Graph::build(std::move(flow), &diags);
  INFO(diags.format_all());
  REQUIRE(g.has_value());
  CHECK(g->nodes().size() == steps);
  CHECK(g->node(g->start()).critical_path > 90000);
  CHECK(g->topo_order().size() == steps);
}

TEST_CASE("a 100,000-step cycle is found and its path elided", "[graph]") {
  spec::Flow flow = flow_of({step("start", {"s0"}), step("end", {})});
  for (int i = 0; i < 100000; ++i) {
    flow.steps.push_back(step("s" + std::to_string(i),
                              {"s" + std::to_string((i + 1) % 100000)}));
  }
  flow.steps.back().next.push_back("end");
  flow.steps.back().next_pos.push_back({1, 1});
  auto diags = build_bad(std::move(flow));
  const auto& d = find(diags, "cycle: s0 -> s1 -> ");
  CHECK(d.message.find("(99981 more)") != std::string::npos);
  CHECK(d.message.size() < 400);
}
