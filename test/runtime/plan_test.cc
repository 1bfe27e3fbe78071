#include "runtime/plan.h"

#include <catch2/catch.hpp>

#include "support/flow_builders.h"

#include "graph/graph.h"

using namespace mflow;
using test::make_step;
using runtime::Plan;
using runtime::TaskIndex;
using runtime::TaskState;

namespace {

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
  auto g = make_graph({make_step("start", {"middle"}), make_step("middle", {"end"}), make_step("end", {})});
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
  auto g = make_graph({make_step("start", {"a", "b"}), make_step("a", {"join"}), make_step("b", {"join"}),
                       make_step("join", {"end"}), make_step("end", {})});
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
  auto g = make_graph({make_step("start", {"body"}, "items"), make_step("body", {"join"}),
                       make_step("join", {"end"}, "", true), make_step("end", {})});
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
  auto g = make_graph({make_step("start", {"body"}, "items"), make_step("body", {"join"}),
                       make_step("join", {"end"}, "", true), make_step("end", {})});
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
  auto g = make_graph({make_step("start", {"outer"}, "xs"), make_step("outer", {"inner"}, "ys"),
                       make_step("inner", {"inner_join"}), make_step("inner_join", {"outer_join"}, "", true),
                       make_step("outer_join", {"end"}, "", true), make_step("end", {})});
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
  auto g = make_graph({make_step("start", {"body"}, "items"), make_step("body", {"join"}),
                       make_step("join", {"end"}, "", true), make_step("end", {})});
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
  auto g = make_graph({make_step("start", {"short", "long1"}), make_step("short", {"join"}),
                       make_step("long1", {"long2"}), make_step("long2", {"join"}), make_step("join", {"end"}),
                       make_step("end", {})});
  Plan plan(g);
  plan.task_succeeded(*plan.find_work());
  CHECK(step_of(plan, *plan.find_work()) == "long1");
}
