// Graph: the linted step graph of a flow. Built once from a spec::Flow; enforces Metaflow's
// structural rules (one start and one end, every `next` exists, no cycle, all reachable,
// every static branch and foreach closed by a matching join) and records for every step how
// it fans out and gathers. Immutable after build; safe to share between threads.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "spec/diagnostic.h"
#include "spec/flow.h"

namespace mflow::graph {

/// How a step's tasks fan out to its children.
enum class FanOut {
  kLinear,       // exactly one child, same task index path
  kStaticSplit,  // several children (branches), each gets one task with the same path
  kForeach,      // one child; one task per element of the `foreach` artifact (path + [i])
  kEnd,          // the `end` step: no children
};

/// How a step's tasks gather their inputs.
enum class FanIn {
  kNone,     // one parent task (or none, for start)
  kStatic,   // joins the branches of a static split: one input per branch, in branch order
  kForeach,  // joins a foreach: one input per split, in split order (path minus last index)
};

struct Node {
  size_t index = 0;
  const spec::Step* step = nullptr;  // points into Graph::flow()
  FanOut fan_out = FanOut::kLinear;
  FanIn fan_in = FanIn::kNone;
  std::vector<size_t> children;  // in `next` order
  /// Parents; for a static join, ordered by the branch of the split they close.
  std::vector<size_t> parents;
  std::optional<size_t> split_of_join;  // for a join: the split (static or foreach) it closes
  std::optional<size_t> join_of_split;  // for a split: the join closing it
  /// How many foreach scopes enclose this step, i.e. the length of its tasks' index paths.
  int foreach_depth = 0;
  /// Longest path (in steps, counting this one and `end`; `end` itself is 1) from here to
  /// `end`; the ready queue prefers larger values.
  int critical_path = 0;

  const std::string& name() const { return step->name; }
};

class Graph {
 public:
  /// Lints `flow` and builds the graph; returns nullopt after pushing diagnostics on error.
  static std::optional<Graph> build(spec::Flow flow, spec::Diagnostics* diags);

  Graph(const Graph& other);
  Graph& operator=(const Graph& other);
  Graph(Graph&&) noexcept = default;
  Graph& operator=(Graph&&) noexcept = default;

  const spec::Flow& flow() const { return flow_; }
  const std::vector<Node>& nodes() const { return nodes_; }
  size_t size() const { return nodes_.size(); }
  const Node& node(size_t i) const { return nodes_.at(i); }
  std::optional<size_t> find(const std::string& step_name) const;
  size_t start() const { return start_; }
  size_t end() const { return end_; }
  /// Step indices in a topological order (parents before children), start first.
  const std::vector<size_t>& topo_order() const { return topo_; }
  /// `from` and every step reachable from it, in topological order.
  std::vector<size_t> downstream(size_t from) const;

 private:
  Graph() = default;
  void rebind();  // re-points Node::step into this object's flow_ after copy

  spec::Flow flow_;
  std::vector<Node> nodes_;
  size_t start_ = 0;
  size_t end_ = 0;
  std::vector<size_t> topo_;
  std::unordered_map<std::string, size_t> index_;  // step name -> node index
};

/// Why `value` is not a valid Kubernetes label value (<= 63 characters; empty, or starts and
/// ends with a letter or digit with only letters, digits, '-', '_' and '.' between), or ""
/// when it is valid. Used for step names and the flow name.
std::string label_value_problem(std::string_view value);

}  // namespace mflow::graph
