#include "runtime/plan.h"

#include <catch2/catch.hpp>

#include "graph/graph.h"

using namespace mflow;
using runtime::Plan;
using runtime::TaskIndex;
using runtime::TaskState;

namespace {

spec::Step step(std::string name, std::vector<std::string> next, std::string foreach = "",
                bool join = false) {
  spec::Step s;
  s.name = std::move(name);
  s.run.script = "true";
  s.next = std::move(next);
  s.next_pos.resize(s.next.size());
  s.foreach = std::move(foreach);
  s.join = join;
  return s;
}

graph::Graph make_graph(std::vector<spec::Step> steps) {
  spec::Flow flow;
  flow.file = "test.yaml";
  flow.name = "test";
  flow.steps = std::move(steps);
  spec::Diagnostics diags;
  auto g = graph::Graph::build(flow, &diags);
  INFO(diags.format_all());
  REQUIRE(g.has_value());
  return std::move(*g);
}

std::string step_of(const Plan& plan, TaskIndex i) {
  return plan.graph().node(plan.task(i).step).name();
}

}  // namespace

TEST_CASE("a linear flow runs its steps in order", "[runtime]") {
  auto g = make_graph({step("start", {"middle"}), step("middle", {"end"}), step("end", {})});
  Plan plan(g);
  std::vector<std::string> order;
  while (auto t = plan.find_work()) {
    order.push_back(step_of(plan, *t) + "/" + plan.task(*t).id);
    plan.task_succeeded(*t);
  }
  CHECK(order == std::vector<std::string>{"start/0", "middle/0", "end/0"});
  CHECK(plan.completed());
  CHECK_FALSE(plan.more_to_do());
}

TEST_CASE("a static join waits for every branch and orders inputs by branch", "[runtime]") {
  auto g = make_graph({step("start", {"a", "b"}), step("a", {"join"}), step("b", {"join"}),
                       step("join", {"end"}), step("end", {})});
  Plan plan(g);
  auto start = plan.find_work();
  plan.task_succeeded(*start);
  auto first = *plan.find_work();
  auto second = *plan.find_work();
  CHECK_FALSE(plan.find_work());
  // Finish b before a: the join's inputs must still come in branch order (a, b).
  TaskIndex a = step_of(plan, first) == "a" ? first : second;
  TaskIndex b = a == first ? second : first;
  plan.task_succeeded(b);
  CHECK_FALSE(plan.has_ready());
  plan.task_succeeded(a);
  auto join = *plan.find_work();
  CHECK(step_of(plan, join) == "join");
  CHECK(plan.task(join).inputs == std::vector<TaskIndex>{a, b});
  CHECK(plan.task(join).split_task == start);
}

TEST_CASE("a foreach fans out and its join gathers splits in order", "[runtime]") {
  auto g = make_graph({step("start", {"body"}, "items"), step("body", {"join"}),
                       step("join", {"end"}, "", true), step("end", {})});
  Plan plan(g);
  auto start = *plan.find_work();
  plan.task_succeeded(start, 3);
  std::vector<TaskIndex> bodies;
  while (auto t = plan.find_work()) bodies.push_back(*t);
  REQUIRE(bodies.size() == 3);
  CHECK(plan.task(bodies[2]).id == "2");
  CHECK(plan.task(bodies[2]).split_index == 2);
  CHECK(plan.task(bodies[2]).foreach_task == start);
  plan.task_succeeded(bodies[2]);
  plan.task_succeeded(bodies[0]);
  CHECK_FALSE(plan.has_ready());
  plan.task_succeeded(bodies[1]);
  auto join = *plan.find_work();
  CHECK(plan.task(join).id == "0");
  CHECK(plan.task(join).inputs == bodies);
}

TEST_CASE("an empty foreach runs its join with no inputs", "[runtime]") {
  auto g = make_graph({step("start", {"body"}, "items"), step("body", {"join"}),
                       step("join", {"end"}, "", true), step("end", {})});
  Plan plan(g);
  plan.task_succeeded(*plan.find_work(), 0);
  auto join = *plan.find_work();
  CHECK(step_of(plan, join) == "join");
  CHECK(plan.task(join).inputs.empty());
  plan.task_succeeded(join);
  plan.task_succeeded(*plan.find_work());
  CHECK(plan.completed());
}

TEST_CASE("nested foreach tasks get two-level ids and joins close each level", "[runtime]") {
  auto g = make_graph({step("start", {"outer"}, "xs"), step("outer", {"inner"}, "ys"),
                       step("inner", {"inner_join"}), step("inner_join", {"outer_join"}, "", true),
                       step("outer_join", {"end"}, "", true), step("end", {})});
  Plan plan(g);
  plan.task_succeeded(*plan.find_work(), 2);
  auto o0 = *plan.find_work();
  auto o1 = *plan.find_work();
  plan.task_succeeded(o0, 2);
  plan.task_succeeded(o1, 1);
  std::vector<std::string> ids;
  std::vector<TaskIndex> inner;
  while (auto t = plan.find_work()) {
    ids.push_back(plan.task(*t).id);
    inner.push_back(*t);
  }
  std::sort(ids.begin(), ids.end());
  CHECK(ids == std::vector<std::string>{"0.0", "0.1", "1.0"});
  for (auto t : inner) plan.task_succeeded(t);
  std::vector<std::string> joins;
  while (auto t = plan.find_work()) {
    joins.push_back(step_of(plan, *t) + "/" + plan.task(*t).id);
    plan.task_succeeded(*t);
  }
  std::sort(joins.begin(), joins.end() - 2);
  CHECK(joins == std::vector<std::string>{"inner_join/0", "inner_join/1", "outer_join/0", "end/0"});
}

TEST_CASE("after a failure nothing new starts but running tasks finish", "[runtime]") {
  auto g = make_graph({step("start", {"body"}, "items"), step("body", {"join"}),
                       step("join", {"end"}, "", true), step("end", {})});
  Plan plan(g);
  plan.task_succeeded(*plan.find_work(), 3);
  auto b0 = *plan.find_work();
  auto b1 = *plan.find_work();
  plan.task_failed(b0);
  CHECK_FALSE(plan.find_work());  // the third split never starts
  CHECK(plan.more_to_do());       // b1 still runs
  plan.task_succeeded(b1);
  CHECK_FALSE(plan.more_to_do());
  CHECK_FALSE(plan.completed());
  CHECK(plan.task(b0).state == TaskState::kFailed);
}

TEST_CASE("the ready queue prefers the longer critical path", "[runtime]") {
  auto g = make_graph({step("start", {"short", "long1"}), step("short", {"join"}),
                       step("long1", {"long2"}), step("long2", {"join"}), step("join", {"end"}),
                       step("end", {})});
  Plan plan(g);
  plan.task_succeeded(*plan.find_work());
  CHECK(step_of(plan, *plan.find_work()) == "long1");
}
