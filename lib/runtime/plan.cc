#include "runtime/plan.h"

#include <algorithm>

#include "base/check.h"

namespace mflow::runtime {

std::string task_id_for(const IndexPath& path) {
  if (path.empty()) return "0";
  std::string id;
  for (size_t i = 0; i < path.size(); ++i) {
    if (i) id += '.';
    id += std::to_string(path[i]);
  }
  return id;
}

Plan::Plan(const graph::Graph& graph) : graph_(graph) {
  make_ready(add_task(graph_.start(), {}, {}, std::nullopt, std::nullopt, -1));
}

TaskIndex Plan::add_task(size_t step, IndexPath path, std::vector<TaskIndex> inputs,
                         std::optional<TaskIndex> split_task,
                         std::optional<TaskIndex> foreach_task, int64_t split_index) {
  PlannedTask t;
  t.step = step;
  t.id = task_id_for(path);
  t.path = std::move(path);
  t.inputs = std::move(inputs);
  t.split_task = split_task;
  t.foreach_task = foreach_task;
  t.split_index = split_index;
  TaskIndex index = tasks_.size();
  const auto& node = graph_.node(step);
  if (node.fan_out == graph::FanOut::kStaticSplit || node.fan_out == graph::FanOut::kForeach) {
    by_key_[{step, t.path}] = index;
  }
  tasks_.push_back(std::move(t));
  return index;
}

void Plan::make_ready(TaskIndex i) {
  tasks_[i].state = TaskState::kReady;
  ready_.push({graph_.node(tasks_[i].step).critical_path, seq_++, i});
}

std::optional<TaskIndex> Plan::find_work() {
  if (ready_.empty()) return std::nullopt;
  TaskIndex i = ready_.top().task;
  ready_.pop();
  tasks_[i].state = TaskState::kRunning;
  ++running_;
  return i;
}

void Plan::abandon(TaskIndex i) {
  MFLOW_CHECK(tasks_[i].state == TaskState::kRunning, "abandon of a task that is not running");
  tasks_[i].state = TaskState::kAbandoned;
  --running_;
}

void Plan::task_failed(TaskIndex i) {
  MFLOW_CHECK(tasks_[i].state == TaskState::kRunning, "failure of a task that is not running");
  tasks_[i].state = TaskState::kFailed;
  --running_;
  ++failed_;
  // Fail fast: nothing new starts once a task failed; running tasks finish on their own.
  drop_ready();
}

void Plan::stop() {
  stopped_ = true;
  drop_ready();
}

void Plan::drop_ready() {
  while (!ready_.empty()) {
    tasks_[ready_.top().task].state = TaskState::kAbandoned;
    ready_.pop();
  }
}

std::optional<int64_t> Plan::num_splits(TaskIndex foreach_task) const {
  auto it = num_splits_.find(foreach_task);
  if (it == num_splits_.end()) return std::nullopt;
  return it->second;
}

void Plan::task_succeeded(TaskIndex i, int64_t num_splits) {
  MFLOW_CHECK(tasks_[i].state == TaskState::kRunning, "success of a task that is not running");
  tasks_[i].state = TaskState::kSucceeded;
  --running_;
  if (stopped()) return;  // the run is winding down; do not start what follows

  const auto& node = graph_.node(tasks_[i].step);
  switch (node.fan_out) {
    case graph::FanOut::kEnd:
      end_done_ = true;
      return;
    case graph::FanOut::kForeach: {
      num_splits_[i] = num_splits;
      if (num_splits == 0) {
        // An empty foreach skips its body; the join still runs, with no inputs.
        MFLOW_CHECK(node.join_of_split.has_value(), "foreach without join");
        make_ready(add_task(*node.join_of_split, tasks_[i].path, {}, i,
                            tasks_[i].foreach_task, tasks_[i].split_index));
        return;
      }
      size_t body = node.children.at(0);
      for (int64_t k = 0; k < num_splits; ++k) {
        IndexPath path = tasks_[i].path;
        path.push_back(k);
        make_ready(add_task(body, std::move(path), {i}, std::nullopt, i, k));
      }
      return;
    }
    case graph::FanOut::kLinear:
    case graph::FanOut::kStaticSplit:
      for (size_t child : node.children) offer_to_child(i, child);
      return;
  }
}

void Plan::offer_to_child(TaskIndex parent, size_t child_step) {
  const PlannedTask& p = tasks_[parent];
  const auto& child = graph_.node(child_step);
  switch (child.fan_in) {
    case graph::FanIn::kNone:
      make_ready(add_task(child_step, p.path, {parent}, std::nullopt, p.foreach_task,
                          p.split_index));
      return;
    case graph::FanIn::kStatic: {
      auto pos_it = std::find(child.parents.begin(), child.parents.end(), p.step);
      MFLOW_CHECK(pos_it != child.parents.end(), "join parent not in graph");
      auto split_it = by_key_.find({*child.split_of_join, p.path});
      MFLOW_CHECK(split_it != by_key_.end(), "static join without its split task");
      auto& pending = pending_joins_[{child_step, p.path}];
      if (pending.inputs.empty()) pending.inputs.resize(child.parents.size());
      pending.inputs[static_cast<size_t>(pos_it - child.parents.begin())] = parent;
      if (++pending.arrived < pending.inputs.size()) return;
      std::vector<TaskIndex> inputs;
      for (const auto& in : pending.inputs) inputs.push_back(*in);
      pending_joins_.erase({child_step, p.path});
      make_ready(add_task(child_step, p.path, std::move(inputs), split_it->second,
                          p.foreach_task, p.split_index));
      return;
    }
    case graph::FanIn::kForeach: {
      IndexPath outer(p.path.begin(), p.path.end() - 1);
      auto split_it = by_key_.find({*child.split_of_join, outer});
      MFLOW_CHECK(split_it != by_key_.end(), "foreach join without its foreach task");
      TaskIndex split = split_it->second;
      int64_t width = num_splits_.at(split);
      auto& pending = pending_joins_[{child_step, outer}];
      if (pending.inputs.empty()) pending.inputs.resize(static_cast<size_t>(width));
      pending.inputs[static_cast<size_t>(p.path.back())] = parent;
      if (++pending.arrived < pending.inputs.size()) return;
      std::vector<TaskIndex> inputs;
      for (const auto& in : pending.inputs) inputs.push_back(*in);
      pending_joins_.erase({child_step, outer});
      make_ready(add_task(child_step, std::move(outer), std::move(inputs), split,
                          tasks_[split].foreach_task, tasks_[split].split_index));
      return;
    }
  }
}

}  // namespace mflow::runtime
