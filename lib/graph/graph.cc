#include "graph/graph.h"

#include <algorithm>
#include <cctype>
#include <deque>
#include <utility>

#include <fmt/core.h>

#include "base/strings.h"

namespace mflow::graph {

std::string label_value_problem(std::string_view value) {
  if (value.size() > 63) {
    return fmt::format("it is {} characters long; Kubernetes allows at most 63", value.size());
  }
  if (value.empty()) return {};
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  for (char c : value) {
    if (!alnum(c) && c != '-' && c != '_' && c != '.') {
      return fmt::format("it contains '{}'; only letters, digits, '-', '_' and '.' are allowed",
                         c);
    }
  }
  if (!alnum(value.front()) || !alnum(value.back())) {
    return "it must start and end with a letter or digit";
  }
  return {};
}

namespace {

constexpr size_t kNone = static_cast<size_t>(-1);

// One open split scope: a branch of a static split, or the body of a foreach. Scopes form a
// tree through `parent` (a persistent stack), so every step's scope is a single integer and
// comparing or popping scopes is O(1); this keeps the lint linear in the number of steps.
struct Frame {
  size_t split = 0;
  int branch = -1;   // branch index of a static split; -1 for a foreach body
  int parent = -1;   // enclosing frame, -1 for the top level
  int foreach_depth = 0;
};

// Does the work of Graph::build: every check is a pass over arrays, none recurses.
class Linter {
 public:
  Linter(const spec::Flow& flow, spec::Diagnostics* diags) : flow_(flow), diags_(diags) {}

  bool run(std::vector<Node>* nodes, size_t* start, size_t* end, std::vector<size_t>* topo,
           std::unordered_map<std::string, size_t>* index);

 private:
  const spec::Step& step(size_t i) const { return flow_.steps[i]; }
  const std::string& name(size_t i) const { return flow_.steps[i].name; }
  spec::SourcePos next_pos(size_t i, size_t k) const {
    const auto& s = step(i);
    return k < s.next_pos.size() && s.next_pos[k].line > 0 ? s.next_pos[k] : s.pos;
  }
  std::string next_pointer(size_t i, size_t k) const {
    return step(i).next.size() == 1 ? "/steps/" + name(i) + "/next"
                                    : fmt::format("/steps/{}/next/{}", name(i), k);
  }
  void error(spec::SourcePos pos, std::string message, std::string hint = {},
             std::string pointer = {}) {
    diags_->error(flow_.file, pos, std::move(message), std::move(hint), std::move(pointer));
    ok_ = false;
  }

  void check_names();
  void index_steps();
  void resolve_edges();
  void check_cycles();
  void check_reachability();
  void order_topologically();
  void check_scopes();
  void compute_critical_paths();

  // The scope a child sees along edge (u, k).
  int out_scope(size_t u, size_t k) const {
    if (frame_base_[u] < 0) return scope_[u];
    return step(u).foreach.empty() ? frame_base_[u] + static_cast<int>(k) : frame_base_[u];
  }
  void close_foreach(size_t v, size_t parent, int in);
  void close_static(size_t v);
  void report_unclosed(int scope);

  const spec::Flow& flow_;
  spec::Diagnostics* diags_;
  bool ok_ = true;
  bool structure_ok_ = true;  // edges, cycles and reachability are sound: scopes can be checked

  size_t n_ = 0;
  std::unordered_map<std::string, size_t> index_;
  size_t start_ = kNone;
  size_t end_ = kNone;
  std::vector<std::vector<size_t>> children_;
  // Steps with a `next` problem already reported (missing, unknown or dropped entries, or
  // closing a cycle): what leads only to them is not reported again as "never reaches end".
  std::vector<char> broken_;
  // Steps named by a did-you-mean: their "not reachable" (and that of what follows them) is
  // the same typo, not reported again.
  std::vector<char> guessed_;
  // Incoming edges of each step as (parent, index into the parent's `next`), in file order.
  std::vector<std::vector<std::pair<size_t, size_t>>> in_edges_;
  std::vector<size_t> topo_;
  std::vector<Frame> frames_;
  std::vector<int> frame_base_;  // first frame a split opens, -1 for other steps
  std::vector<int> scope_;       // frame enclosing each step, -1 for the top level
  std::vector<char> poisoned_;   // already reported (or downstream of) a scope error
  std::vector<Node> nodes_;
};

void Linter::check_names() {
  if (flow_.name.empty()) {
    error(flow_.name_pos, "the flow has no name", "add `name: my-flow` at the top level",
          "/name");
  } else if (std::string why = label_value_problem(flow_.name); !why.empty()) {
    error(flow_.name_pos,
          fmt::format("flow name '{}' is not a valid Kubernetes label value: {}", flow_.name, why),
          "flow names become part of Kubernetes labels: use lowercase letters, digits and '-'",
          "/name");
  }
  for (size_t i = 0; i < n_; ++i) {
    if (name(i).empty()) {
      error(step(i).pos, "a step has an empty name", "give the step a name such as `train`");
    } else if (std::string why = label_value_problem(name(i)); !why.empty()) {
      error(step(i).pos,
            fmt::format("step name '{}' is not a valid Kubernetes label value: {}", name(i), why),
            "step names become Kubernetes labels: use lowercase letters, digits and '-'",
            "/steps/" + name(i));
    }
  }
}

void Linter::index_steps() {
  index_.reserve(n_);
  for (size_t i = 0; i < n_; ++i) {
    auto [it, inserted] = index_.emplace(name(i), i);
    if (!inserted) {
      const auto& first = step(it->second).pos;
      error(step(i).pos,
            fmt::format("step '{}' is defined twice (first at line {})", name(i), first.line),
            "rename or remove one of them", "/steps/" + name(i));
      structure_ok_ = false;
    }
  }
  auto s = index_.find("start");
  auto e = index_.find("end");
  if (s != index_.end()) start_ = s->second;
  if (e != index_.end()) end_ = e->second;
  if (start_ == kNone) {
    error(flow_.name_pos, "the flow has no `start` step",
          "every flow begins at a step named `start`", "/steps");
    structure_ok_ = false;
  }
  if (end_ == kNone) {
    std::vector<std::string> last;
    for (size_t i = 0; i < n_ && last.size() < 3; ++i) {
      if (step(i).next.empty()) last.push_back("'" + name(i) + "'");
    }
    error(flow_.name_pos, "the flow has no `end` step",
          last.empty() ? std::string("every flow finishes at a step named `end`")
                       : fmt::format("every flow finishes at a step named `end`; rename {} "
                                     "(which has no `next`) to `end`",
                                     base::join(last, " or ")),
          "/steps");
    structure_ok_ = false;
  }
}

void Linter::resolve_edges() {
  children_.assign(n_, {});
  in_edges_.assign(n_, {});
  broken_.assign(n_, 0);
  guessed_.assign(n_, 0);
  std::vector<std::string> names;
  for (size_t i = 0; i < n_; ++i) {
    const auto& s = step(i);
    if (i == end_) {
      if (!s.next.empty()) {
        error(next_pos(i, 0), "`end` must not have `next`: it is the last step of the flow",
              "remove `next` from `end`", "/steps/end/next");
        structure_ok_ = false;
      }
      if (!s.foreach.empty()) {
        error(s.foreach_pos.line > 0 ? s.foreach_pos : s.pos,
              "`end` cannot be a foreach: it has no next step to fan out to",
              "move `foreach` to an earlier step", "/steps/end/foreach");
        structure_ok_ = false;
      }
      continue;
    }
    if (s.next.empty()) {
      broken_[i] = 1;
      // Without an `end`, the steps lacking `next` are named in that error's hint instead.
      if (end_ == kNone) continue;
      error(s.pos, fmt::format("step '{}' has no `next`; every step except `end` needs one",
                               s.name),
            "add `next: end` or the name of the step that follows", "/steps/" + s.name);
      structure_ok_ = false;
      continue;
    }
    if (!s.foreach.empty() && s.next.size() != 1) {
      error(next_pos(i, 0),
            fmt::format("step '{}' has `foreach`, so it needs exactly one `next`, not {}", s.name,
                        s.next.size()),
            "a foreach fans out to one step that runs once per element; branch inside it",
            "/steps/" + s.name + "/next");
      structure_ok_ = false;
    }
    for (size_t k = 0; k < s.next.size(); ++k) {
      const std::string& target = s.next[k];
      auto it = index_.find(target);
      if (it == index_.end()) {
        if (names.empty()) {
          for (size_t j = 0; j < n_; ++j) names.push_back(name(j));
        }
        std::string guess = base::closest_match(target, names);
        if (!guess.empty()) guessed_[index_.at(guess)] = 1;
        broken_[i] = 1;
        error(next_pos(i, k),
              fmt::format("step '{}' has next '{}', but there is no step named '{}'", s.name,
                          target, target),
              guess.empty() ? "define that step, or fix the name in `next`"
                            : fmt::format("did you mean '{}'?", guess),
              next_pointer(i, k));
        structure_ok_ = false;
        continue;
      }
      if (std::find(s.next.begin(), s.next.begin() + static_cast<long>(k), target) !=
          s.next.begin() + static_cast<long>(k)) {
        broken_[i] = 1;
        error(next_pos(i, k), fmt::format("step '{}' lists '{}' twice in `next`", s.name, target),
              "each branch of a split must be a different step", next_pointer(i, k));
        structure_ok_ = false;
        continue;
      }
      if (it->second == start_) {
        broken_[i] = 1;
        error(next_pos(i, k), fmt::format("step '{}' has next 'start'; nothing may lead back "
                                          "to `start`", s.name),
              "`start` is where every run begins; point `next` at another step",
              next_pointer(i, k));
        structure_ok_ = false;
        continue;
      }
      children_[i].push_back(it->second);
      in_edges_[it->second].push_back({i, k});
    }
  }
}

void Linter::check_cycles() {
  // Iterative DFS with colours (ninja's VerifyDAG): a grey target closes a cycle, which is
  // reported as the path on the DFS stack. Roots: `start` first, then file order.
  enum : char { kWhite, kGrey, kBlack };
  std::vector<char> colour(n_, kWhite);
  std::vector<size_t> stack_pos(n_, kNone);
  std::vector<std::pair<size_t, size_t>> stack;  // (step, next child to visit)
  auto visit = [&](size_t root) {
    if (colour[root] != kWhite) return;
    colour[root] = kGrey;
    stack_pos[root] = 0;
    stack.push_back({root, 0});
    while (!stack.empty()) {
      auto& [u, k] = stack.back();
      if (k == children_[u].size()) {
        colour[u] = kBlack;
        stack_pos[u] = kNone;
        stack.pop_back();
        continue;
      }
      size_t v = children_[u][k++];
      if (colour[v] == kWhite) {
        colour[v] = kGrey;
        stack_pos[v] = stack.size();
        stack.push_back({v, 0});
      } else if (colour[v] == kGrey) {
        std::vector<std::string> path;
        for (size_t j = stack_pos[v]; j < stack.size(); ++j) path.push_back(name(stack[j].first));
        path.push_back(name(v));
        if (path.size() > 24) {
          size_t hidden = path.size() - 20;
          path.erase(path.begin() + 10, path.end() - 10);
          path.insert(path.begin() + 10, fmt::format("... ({} more) ...", hidden));
        }
        // The edge u -> v closes the cycle; find its `next` entry for the position.
        size_t entry = static_cast<size_t>(
            std::find(step(u).next.begin(), step(u).next.end(), name(v)) - step(u).next.begin());
        error(next_pos(u, entry), "cycle: " + base::join(path, " -> "),
              "a flow must be acyclic: remove or redirect one `next` in this cycle",
              next_pointer(u, entry));
        structure_ok_ = false;
        // Steps that reach `end` only through this cycle, and an `end` it keeps out of reach,
        // are the cycle's consequences: one message, not one per step on it.
        broken_[u] = 1;
      }
    }
  };
  if (start_ != kNone) visit(start_);
  for (size_t i = 0; i < n_; ++i) visit(i);
}

void Linter::check_reachability() {
  if (start_ == kNone || end_ == kNone) return;
  auto sweep = [&](std::vector<size_t> queue, bool forward) {
    std::vector<char> seen(n_, 0);
    for (size_t q : queue) seen[q] = 1;
    while (!queue.empty()) {
      size_t u = queue.back();
      queue.pop_back();
      if (forward) {
        for (size_t v : children_[u]) {
          if (!seen[v]) {
            seen[v] = 1;
            queue.push_back(v);
          }
        }
      } else {
        for (const auto& [p, k] : in_edges_[u]) {
          if (!seen[p]) {
            seen[p] = 1;
            queue.push_back(p);
          }
        }
      }
    }
    return seen;
  };
  std::vector<char> from_start = sweep({start_}, true);
  std::vector<char> to_end = sweep({end_}, false);
  std::vector<size_t> broken;
  for (size_t i = 0; i < n_; ++i) {
    if (broken_[i]) broken.push_back(i);
  }
  std::vector<char> to_broken = sweep(std::move(broken), false);
  // Unreachable steps: report the first step of each unreachable region, with how many steps
  // follow it, rather than every step in it. What follows a guessed typo target is the typo's
  // consequence, and so is an unreachable `end` when some step lost its `next`.
  std::vector<char> covered(n_, 0);
  bool any_broken = std::find(broken_.begin(), broken_.end(), 1) != broken_.end();
  auto cover = [&](size_t root) {
    size_t count = 0;
    std::vector<size_t> queue{root};
    covered[root] = 1;
    while (!queue.empty()) {
      size_t u = queue.back();
      queue.pop_back();
      ++count;
      for (size_t v : children_[u]) {
        if (!from_start[v] && !covered[v]) {
          covered[v] = 1;
          queue.push_back(v);
        }
      }
    }
    return count - 1;
  };
  for (size_t i = 0; i < n_; ++i) {
    if (!from_start[i] && !covered[i] && (guessed_[i] || (i == end_ && any_broken))) cover(i);
  }
  auto report_unreachable = [&](size_t i) {
    size_t after = cover(i);
    error(step(i).pos,
          after == 0 ? fmt::format("step '{}' is not reachable from `start`", name(i))
                     : fmt::format("step '{}' is not reachable from `start` (nor {} step{} "
                                   "after it)",
                                   name(i), after, after == 1 ? "" : "s"),
          "list it in the `next` of a step that runs, or delete it", "/steps/" + name(i));
  };
  for (size_t i = 0; i < n_; ++i) {
    if (from_start[i] || covered[i]) continue;
    bool root = std::none_of(in_edges_[i].begin(), in_edges_[i].end(),
                             [&](const auto& e) { return !from_start[e.first]; });
    if (root) report_unreachable(i);
  }
  for (size_t i = 0; i < n_; ++i) {  // regions without a root: unreachable cycles
    if (!from_start[i] && !covered[i]) report_unreachable(i);
  }
  for (size_t i = 0; i < n_; ++i) {
    if (!from_start[i]) {
      structure_ok_ = false;
    } else if (!to_end[i] && !to_broken[i]) {
      error(step(i).pos, fmt::format("step '{}' never reaches `end`", name(i)),
            "every path through the flow must finish at `end`: give it a `next` that leads "
            "there",
            "/steps/" + name(i));
      structure_ok_ = false;
    }
  }
}

void Linter::order_topologically() {
  // Kahn's algorithm from `start`, FIFO, children in `next` order: deterministic.
  std::vector<size_t> pending(n_);
  for (size_t i = 0; i < n_; ++i) pending[i] = in_edges_[i].size();
  std::deque<size_t> queue{start_};
  topo_.reserve(n_);
  while (!queue.empty()) {
    size_t u = queue.front();
    queue.pop_front();
    topo_.push_back(u);
    for (size_t v : children_[u]) {
      if (--pending[v] == 0) queue.push_back(v);
    }
  }
}

void Linter::close_foreach(size_t v, size_t parent, int in) {
  const Frame& f = frames_[static_cast<size_t>(in)];
  scope_[v] = f.parent;
  if (parent == f.split) {
    error(step(v).join_pos.line > 0 ? step(v).join_pos : step(v).pos,
          fmt::format("the foreach in step '{}' has an empty body: its next step '{}' is the "
                      "join that closes it",
                      name(f.split), name(v)),
          "add a step between the foreach and its join; that step runs once per element",
          "/steps/" + name(v) + "/join");
    poisoned_[v] = 1;
    return;
  }
  nodes_[v].fan_in = FanIn::kForeach;
  nodes_[v].split_of_join = f.split;
  nodes_[f.split].join_of_split = v;
}

void Linter::close_static(size_t v) {
  // A step with several parents is a static join: each parent must sit in a different branch
  // of the same split, that split must be the innermost one open, and every branch must come.
  const auto& in = in_edges_[v];
  std::vector<int> scopes;
  for (const auto& [p, k] : in) scopes.push_back(out_scope(p, k));
  auto where = [&](int s) {
    const Frame& f = frames_[static_cast<size_t>(s)];
    return fmt::format("branch '{}' of split '{}'", step(f.split).next[static_cast<size_t>(f.branch)],
                       name(f.split));
  };
  auto fail = [&](std::string message, std::string hint) {
    error(step(v).pos, std::move(message), std::move(hint), "/steps/" + name(v));
    poisoned_[v] = 1;
    scope_[v] = scopes[0] >= 0 ? frames_[static_cast<size_t>(scopes[0])].parent : -1;
  };
  const std::string hint =
      "a join's parents must be exactly the branches of one split (`next: [a, b]`); close "
      "inner splits and foreaches with their own joins first";
  for (size_t j = 0; j < in.size(); ++j) {
    if (scopes[j] < 0) {
      return fail(fmt::format("step '{}' has {} parents, so it is a join, but its parent '{}' "
                              "is not inside any branch",
                              name(v), in.size(), name(in[j].first)),
                  hint);
    }
    const Frame& f = frames_[static_cast<size_t>(scopes[j])];
    if (f.branch < 0) {
      return fail(fmt::format("join '{}' has parent '{}' inside the foreach of step '{}', "
                              "which is still open",
                              name(v), name(in[j].first), name(f.split)),
                  fmt::format("mark the step that gathers the foreach of '{}' with "
                              "`join: true` and join after it",
                              name(f.split)));
    }
  }
  size_t split = frames_[static_cast<size_t>(scopes[0])].split;
  for (size_t j = 1; j < in.size(); ++j) {
    if (frames_[static_cast<size_t>(scopes[j])].split != split) {
      return fail(fmt::format("join '{}' mixes different splits: parent '{}' is in {}, parent "
                              "'{}' is in {}",
                              name(v), name(in[0].first), where(scopes[0]), name(in[j].first),
                              where(scopes[j])),
                  hint);
    }
  }
  size_t width = step(split).next.size();
  std::vector<size_t> by_branch(width, kNone);
  for (size_t j = 0; j < in.size(); ++j) {
    auto b = static_cast<size_t>(frames_[static_cast<size_t>(scopes[j])].branch);
    if (by_branch[b] != kNone) {
      return fail(fmt::format("join '{}' has two parents in {}: '{}' and '{}'", name(v),
                              where(scopes[j]), name(by_branch[b]), name(in[j].first)),
                  "join the paths inside that branch first; a join takes one parent per "
                  "branch");
    }
    by_branch[b] = in[j].first;
  }
  std::vector<std::string> missing;
  for (size_t b = 0; b < width; ++b) {
    if (by_branch[b] == kNone) missing.push_back("'" + step(split).next[b] + "'");
  }
  if (!missing.empty()) {
    return fail(fmt::format("join '{}' does not gather every branch of split '{}': branch{} {} "
                            "{} not lead to it",
                            name(v), name(split), missing.size() > 1 ? "es" : "",
                            base::join(missing, ", "), missing.size() > 1 ? "do" : "does"),
                "every branch of a split must end in the same join");
  }
  scope_[v] = frames_[static_cast<size_t>(scopes[0])].parent;
  Node& node = nodes_[v];
  node.fan_in = FanIn::kStatic;
  node.split_of_join = split;
  node.parents = by_branch;
  nodes_[split].join_of_split = v;
}

void Linter::report_unclosed(int scope) {
  for (int s = scope; s >= 0; s = frames_[static_cast<size_t>(s)].parent) {
    const Frame& f = frames_[static_cast<size_t>(s)];
    const spec::Step& split = step(f.split);
    if (f.branch < 0) {
      error(split.foreach_pos.line > 0 ? split.foreach_pos : split.pos,
            fmt::format("the foreach in step '{}' is never closed: no step marked `join: true` "
                        "gathers its tasks",
                        split.name),
            fmt::format("mark the step that gathers the results of '{}' (after '{}') with "
                        "`join: true`",
                        split.name, split.next.empty() ? std::string() : split.next[0]),
            "/steps/" + split.name + "/foreach");
    } else {
      error(split.pos,
            fmt::format("the split in step '{}' (next: [{}]) is never closed by a join",
                        split.name, base::join(split.next, ", ")),
            "add a step that every branch leads to", "/steps/" + split.name + "/next");
    }
  }
}

void Linter::check_scopes() {
  frame_base_.assign(n_, -1);
  scope_.assign(n_, -1);
  poisoned_.assign(n_, 0);
  for (size_t v : topo_) {
    const spec::Step& s = step(v);
    const auto& in = in_edges_[v];
    for (const auto& [p, k] : in) poisoned_[v] |= poisoned_[p];
    if (in.size() <= 1) {
      int scope = in.empty() ? -1 : out_scope(in[0].first, in[0].second);
      bool open_foreach = scope >= 0 && frames_[static_cast<size_t>(scope)].branch < 0;
      scope_[v] = scope;
      if (s.join && open_foreach) {
        close_foreach(v, in[0].first, scope);
      } else if (s.join && !poisoned_[v]) {
        std::string inside =
            scope < 0 ? std::string("no foreach is open at this point")
                      : fmt::format("it is inside branch '{}' of split '{}', which must be "
                                    "closed first",
                                    step(frames_[static_cast<size_t>(scope)].split)
                                        .next[static_cast<size_t>(
                                            frames_[static_cast<size_t>(scope)].branch)],
                                    name(frames_[static_cast<size_t>(scope)].split));
        error(s.join_pos.line > 0 ? s.join_pos : s.pos,
              fmt::format("step '{}' is marked `join: true` but closes no foreach: {}", s.name,
                          inside),
              scope < 0 ? "remove `join: true`; only the step that gathers a foreach's results "
                          "is marked as a join"
                        : "a step with one parent can only join a foreach; join the branches "
                          "of the split with a step that all of them lead to",
              "/steps/" + s.name + "/join");
        poisoned_[v] = 1;
      }
      if (!in.empty()) nodes_[v].parents = {in[0].first};
    } else if (in.size() > 1) {
      if (poisoned_[v]) {
        int first = out_scope(in[0].first, in[0].second);
        scope_[v] = first >= 0 ? frames_[static_cast<size_t>(first)].parent : -1;
      } else {
        close_static(v);
      }
      if (nodes_[v].parents.empty()) {
        for (const auto& e : in) nodes_[v].parents.push_back(e.first);
      }
    }
    // Open this step's own split scopes.
    if (!s.foreach.empty() || s.next.size() > 1) {
      frame_base_[v] = static_cast<int>(frames_.size());
      int depth = scope_[v] < 0 ? 0 : frames_[static_cast<size_t>(scope_[v])].foreach_depth;
      if (!s.foreach.empty()) {
        frames_.push_back({v, -1, scope_[v], depth + 1});
      } else {
        for (size_t b = 0; b < s.next.size(); ++b) {
          frames_.push_back({v, static_cast<int>(b), scope_[v], depth});
        }
      }
    }
    nodes_[v].foreach_depth =
        scope_[v] < 0 ? 0 : frames_[static_cast<size_t>(scope_[v])].foreach_depth;
  }
  if (!poisoned_[end_] && scope_[end_] >= 0) report_unclosed(scope_[end_]);
}

void Linter::compute_critical_paths() {
  for (auto it = topo_.rbegin(); it != topo_.rend(); ++it) {
    Node& node = nodes_[*it];
    int longest = 0;
    for (size_t c : node.children) longest = std::max(longest, nodes_[c].critical_path);
    node.critical_path = longest + 1;
  }
}

bool Linter::run(std::vector<Node>* nodes, size_t* start, size_t* end, std::vector<size_t>* topo,
                 std::unordered_map<std::string, size_t>* index) {
  n_ = flow_.steps.size();
  check_names();
  index_steps();
  resolve_edges();
  check_cycles();
  check_reachability();
  if (!structure_ok_) return false;

  nodes_.resize(n_);
  for (size_t i = 0; i < n_; ++i) {
    Node& node = nodes_[i];
    node.index = i;
    node.step = &flow_.steps[i];
    node.children = children_[i];
    if (i == end_) {
      node.fan_out = FanOut::kEnd;
    } else if (!step(i).foreach.empty()) {
      node.fan_out = FanOut::kForeach;
    } else if (children_[i].size() > 1) {
      node.fan_out = FanOut::kStaticSplit;
    }
  }
  order_topologically();
  check_scopes();
  if (!ok_) return false;
  compute_critical_paths();

  *nodes = std::move(nodes_);
  *start = start_;
  *end = end_;
  *topo = std::move(topo_);
  *index = std::move(index_);
  return true;
}

}  // namespace

std::optional<Graph> Graph::build(spec::Flow flow, spec::Diagnostics* diags) {
  Graph g;
  g.flow_ = std::move(flow);
  Linter linter(g.flow_, diags);
  if (!linter.run(&g.nodes_, &g.start_, &g.end_, &g.topo_, &g.index_)) return std::nullopt;
  return g;  // moving keeps flow_.steps' buffer, so Node::step stays valid
}

Graph::Graph(const Graph& other)
    : flow_(other.flow_),
      nodes_(other.nodes_),
      start_(other.start_),
      end_(other.end_),
      topo_(other.topo_),
      index_(other.index_) {
  rebind();
}

Graph& Graph::operator=(const Graph& other) {
  if (this != &other) {
    flow_ = other.flow_;
    nodes_ = other.nodes_;
    start_ = other.start_;
    end_ = other.end_;
    topo_ = other.topo_;
    index_ = other.index_;
    rebind();
  }
  return *this;
}

void Graph::rebind() {
  for (size_t i = 0; i < nodes_.size(); ++i) nodes_[i].step = &flow_.steps[i];
}

std::optional<size_t> Graph::find(const std::string& step_name) const {
  auto it = index_.find(step_name);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

std::vector<size_t> Graph::downstream(size_t from) const {
  std::vector<char> seen(nodes_.size(), 0);
  std::vector<size_t> stack{from};
  seen.at(from) = 1;
  while (!stack.empty()) {
    size_t u = stack.back();
    stack.pop_back();
    for (size_t v : nodes_[u].children) {
      if (!seen[v]) {
        seen[v] = 1;
        stack.push_back(v);
      }
    }
  }
  std::vector<size_t> out;
  for (size_t i : topo_) {
    if (seen[i]) out.push_back(i);
  }
  return out;
}

}  // namespace mflow::graph
