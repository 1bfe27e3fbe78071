// Plan: which tasks of a run exist, which are ready, running and done (ninja's Plan, made
// dynamic because a foreach creates its tasks only once its width is known). Pure state: no
// I/O, no clock, no threads; the scheduler drives it. A task is identified by its step and
// its foreach index path; its id is the path joined with '.' ("0" outside any foreach).
// Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <queue>
#include <string>
#include <utility>
#include <vector>

#include "graph/graph.h"

namespace mflow::runtime {

using IndexPath = std::vector<int64_t>;

/// Stable handle of a task inside one Plan.
using TaskIndex = size_t;

enum class TaskState { kReady, kRunning, kSucceeded, kFailed, kAbandoned };

struct PlannedTask {
  size_t step = 0;          // graph node index
  IndexPath path;           // foreach indices, outermost first
  std::string id;           // task id as shown to users
  TaskState state = TaskState::kReady;
  /// The tasks whose results this one reads: one parent, or for a join every incoming
  /// branch / split in order. Empty for `start` and for the join of an empty foreach.
  std::vector<TaskIndex> inputs;
  /// For a join: the split task (static split or foreach) it closes, at the same path.
  std::optional<TaskIndex> split_task;
  /// The innermost enclosing foreach task and this task's split index in it, if any.
  std::optional<TaskIndex> foreach_task;
  int64_t split_index = -1;
};

/// Task id for an index path: "0" for the empty path, else "3" or "3.1".
std::string task_id_for(const IndexPath& path);

class Plan {
 public:
  /// Starts with the single `start` task ready.
  explicit Plan(const graph::Graph& graph);

  const graph::Graph& graph() const { return graph_; }
  const PlannedTask& task(TaskIndex i) const { return tasks_.at(i); }
  size_t task_count() const { return tasks_.size(); }

  /// Pops the ready task with the longest critical path (FIFO among equals), marking it
  /// running; nullopt when nothing is ready.
  std::optional<TaskIndex> find_work();
  bool has_ready() const { return !ready_.empty(); }
  /// Tasks whose inputs are there and that wait for a worker.
  size_t ready_count() const { return ready_.size(); }

  /// Records success. For a foreach task, `num_splits` is the width it produced (0 allowed:
  /// the body is skipped and the join runs with no inputs). Creates children made ready.
  void task_succeeded(TaskIndex i, int64_t num_splits = 0);
  void task_failed(TaskIndex i);

  /// Stops the plan (an interrupt): ready tasks are abandoned and no new ones are created;
  /// tasks already running still report their results.
  void stop();

  /// Gives up a task handed out by find_work() that never started (the run is stopping).
  void abandon(TaskIndex i);

  /// Number of splits a foreach task produced (known once it succeeded).
  std::optional<int64_t> num_splits(TaskIndex foreach_task) const;

  /// True until every task reached a final state and no more can be created: the run is
  /// finished when !more_to_do(). After a failure, tasks still running keep this true.
  bool more_to_do() const { return running_ + ready_.size() > 0; }
  size_t running() const { return running_; }
  bool any_failed() const { return failed_ > 0; }
  bool stopped() const { return stopped_ || failed_ > 0; }
  /// True when the whole graph completed (the `end` task succeeded).
  bool completed() const { return end_done_; }

 private:
  TaskIndex add_task(size_t step, IndexPath path, std::vector<TaskIndex> inputs,
                     std::optional<TaskIndex> split_task, std::optional<TaskIndex> foreach_task,
                     int64_t split_index);
  void make_ready(TaskIndex i);
  void drop_ready();
  void offer_to_child(TaskIndex parent, size_t child_step);

  struct ReadyEntry {
    int priority;
    uint64_t seq;
    TaskIndex task;
    bool operator<(const ReadyEntry& o) const {
      // std::priority_queue pops the largest: longer critical path first, then older.
      if (priority != o.priority) return priority < o.priority;
      return seq > o.seq;
    }
  };

  /// A join waiting for its inputs: the inputs collected so far, by position.
  struct PendingJoin {
    std::vector<std::optional<TaskIndex>> inputs;
    size_t arrived = 0;
    std::optional<TaskIndex> split_task;
  };

  const graph::Graph& graph_;
  std::vector<PlannedTask> tasks_;
  std::priority_queue<ReadyEntry> ready_;
  uint64_t seq_ = 0;
  size_t running_ = 0;
  size_t failed_ = 0;
  bool stopped_ = false;
  bool end_done_ = false;
  /// (step, path) -> task, for the split tasks joins look up.
  std::map<std::pair<size_t, IndexPath>, TaskIndex> by_key_;
  std::map<std::pair<size_t, IndexPath>, PendingJoin> pending_joins_;
  std::map<TaskIndex, int64_t> num_splits_;
};

}  // namespace mflow::runtime
