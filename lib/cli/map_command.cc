// `mflow map`: Metaflow's parallel_map as a command line (issue 5). Reads the items, runs the
// command once per item through exec::run_parallel_map, and writes the combined result (JSON
// array or concatenated bytes) in input order, streaming from the items' temp files.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "base/file_util.h"
#include "base/signals.h"
#include "base/json_text.h"
#include "base/strings.h"
#include "base/unique_fd.h"
#include "cli/command.h"
#include "cli/number_flags.h"
#include "exec/orphan_guard.h"
#include "exec/parallel_map.h"

namespace mflow::cli {
namespace {

using base::ExitCode;

struct MapOptions {
  int jobs = 0;  // 0: $MFLOW_CPUS, else online cpus
  std::vector<std::string> items;
  bool items_given = false;
  std::string items_json;
  std::string items_lines;
  bool stdin_lines = false;
  std::string output = "json";
  std::string output_file;
  std::string temp_dir;
  double kill_grace = 10;
  std::vector<std::string> command;
};

void error(const std::string& text) { std::cerr << "mflow map: error: " << text << "\n"; }

// Buffered writer on a file descriptor; copies whole files with sendfile (zero-copy).
class Output {
 public:
  Output(int fd, std::string name) : fd_(fd), name_(std::move(name)) { buf_.reserve(kSize); }
  base::Status write(std::string_view data) {
    if (buf_.size() + data.size() > kSize) MFLOW_RETURN_IF_ERROR(flush());
    if (data.size() >= kSize) return base::write_all(fd_, data.data(), data.size(), name_);
    buf_.append(data);
    return base::Status::ok_status();
  }
  base::Status flush() {
    if (buf_.empty()) return base::Status::ok_status();
    auto s = base::write_all(fd_, buf_.data(), buf_.size(), name_);
    buf_.clear();
    return s;
  }
  /// Appends the whole content of `in` (positioned at 0).
  base::Status copy_from(int in) {
    MFLOW_RETURN_IF_ERROR(flush());
    for (;;) {
      ssize_t n = ::sendfile(fd_, in, nullptr, 1 << 30);
      if (n > 0) continue;
      if (n == 0) return base::Status::ok_status();
      if (errno == EINTR) continue;
      if (errno == EINVAL || errno == ENOSYS) break;  // fall back to read/write
      return base::Status::from_errno(name_, errno);
    }
    char chunk[64 * 1024];
    for (;;) {
      ssize_t n = ::read(in, chunk, sizeof chunk);
      if (n == 0) return base::Status::ok_status();
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return base::Status::from_errno("an item's temp file", errno);
      MFLOW_RETURN_IF_ERROR(base::write_all(fd_, chunk, static_cast<size_t>(n), name_));
    }
  }
  /// Appends `len` bytes of `in` starting at `offset`.
  base::Status copy_range(int in, off_t offset, off_t len) {
    MFLOW_RETURN_IF_ERROR(flush());
    while (len > 0) {
      ssize_t n = ::sendfile(fd_, in, &offset, static_cast<size_t>(std::min<off_t>(len, 1 << 30)));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return base::Status::from_errno(name_, errno);
      if (n == 0) break;
      len -= n;
    }
    return base::Status::ok_status();
  }
  const std::string& name() const { return name_; }

 private:
  static constexpr size_t kSize = 64 * 1024;
  int fd_;
  std::string name_;
  std::string buf_;
};

// Streams the bytes of `in` as one JSON string: escapes, and valid UTF-8 kept as is; each
// invalid byte sequence becomes U+FFFD so the result is always valid JSON.
base::Status write_json_string(int in, Output& out) {
  static const char kHex[] = "0123456789abcdef";
  MFLOW_RETURN_IF_ERROR(out.write("\""));
  std::string esc;
  unsigned char pending[4];
  int have = 0, need = 0;          // bytes of the current multi-byte sequence
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the next continuation byte
  auto flush_invalid = [&] {
    if (have > 0) esc += "\\ufffd";
    have = need = 0;
  };
  std::vector<char> chunk(64 * 1024);
  for (;;) {
    ssize_t n = ::read(in, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return base::Status::from_errno("an item's temp file", errno);
    if (n == 0) break;
    esc.clear();
    for (ssize_t i = 0; i < n; ++i) {
      auto b = static_cast<unsigned char>(chunk[static_cast<size_t>(i)]);
      if (need > 0) {
        if (b >= lo && b <= hi) {
          pending[have++] = b;
          lo = 0x80;
          hi = 0xBF;
          if (--need == 0) {
            esc.append(reinterpret_cast<char*>(pending), static_cast<size_t>(have));
            have = 0;
          }
          continue;
        }
        flush_invalid();  // then handle b afresh
      }
      if (b < 0x80) {
        switch (b) {
          case '"': esc += "\\\""; break;
          case '\\': esc += "\\\\"; break;
          case '\n': esc += "\\n"; break;
          case '\t': esc += "\\t"; break;
          case '\r': esc += "\\r"; break;
          case '\b': esc += "\\b"; break;
          case '\f': esc += "\\f"; break;
          default:
            if (b < 0x20) {
              esc += "\\u00";
              esc += kHex[b >> 4];
              esc += kHex[b & 15];
            } else {
              esc += static_cast<char>(b);
            }
        }
        continue;
      }
      // The lead bytes and first-continuation ranges of well-formed UTF-8 (Unicode Table 3-7).
      pending[0] = b;
      have = 1;
      if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
      } else if (b == 0xE0) {
        need = 2, lo = 0xA0;
      } else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
        need = 2;
      } else if (b == 0xED) {
        need = 2, hi = 0x9F;
      } else if (b == 0xF0) {
        need = 3, lo = 0x90;
      } else if (b >= 0xF1 && b <= 0xF3) {
        need = 3;
      } else if (b == 0xF4) {
        need = 3, hi = 0x8F;
      } else {
        flush_invalid();
      }
    }
    MFLOW_RETURN_IF_ERROR(out.write(esc));
  }
  esc.clear();
  flush_invalid();
  esc += "\"";
  return out.write(esc);
}

// The byte range of `fd` without leading and trailing JSON whitespace.
std::pair<off_t, off_t> trimmed_range(int fd) {
  auto is_ws = [](char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; };
  struct stat st {};
  if (::fstat(fd, &st) != 0) return {0, 0};
  char buf[4096];
  off_t begin = 0, end = st.st_size;
  while (begin < end) {
    ssize_t n = ::pread(fd, buf, sizeof buf, begin);
    if (n <= 0) break;
    ssize_t i = 0;
    while (i < n && is_ws(buf[i])) ++i;
    begin += i;
    if (i < n) break;
  }
  while (end > begin) {
    off_t from = std::max<off_t>(begin, end - static_cast<off_t>(sizeof buf));
    ssize_t n = ::pread(fd, buf, static_cast<size_t>(end - from), from);
    if (n <= 0) break;
    ssize_t i = n;
    while (i > 0 && is_ws(buf[i - 1])) --i;
    end = from + i;
    if (i > 0) break;
  }
  return {begin, end - begin};
}

std::string quoted_item(const std::string& item) {
  std::string text = item.size() > 200 ? item.substr(0, 200) + "..." : item;
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Phase 1 helpers: the items.
base::Result<std::string> read_source(const std::string& path) {
  if (path != "-") return base::read_file(path);
  std::string text;
  char chunk[64 * 1024];
  for (;;) {
    ssize_t n = ::read(0, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return base::Status::from_errno("stdin", errno);
    if (n == 0) return text;
    text.append(chunk, static_cast<size_t>(n));
  }
}

base::Result<std::vector<std::string>> items_from_json(const std::string& path) {
  const std::string flag = "--items-json " + path;
  auto text = read_source(path);
  if (!text.ok()) return text.status().with_context(flag);
  MFLOW_RETURN_IF_ERROR(base::check_json_depth(text.value(), flag));
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text.value());
  } catch (const nlohmann::json::exception& e) {
    return base::Status::invalid(flag + ": not valid JSON: " + e.what());
  }
  if (!doc.is_array()) {
    return base::Status::invalid(fmt::format(
        "{}: expected a JSON array of items, got {} (wrap it in [...])", flag, doc.type_name()));
  }
  std::vector<std::string> items;
  items.reserve(doc.size());
  for (const auto& v : doc) items.push_back(v.is_string() ? v.get<std::string>() : v.dump());
  return items;
}

base::Result<std::vector<std::string>> items_from_lines(const std::string& path) {
  auto text = read_source(path);
  if (!text.ok()) return text.status().with_context(path == "-" ? "--stdin-lines" : "--items-lines " + path);
  std::vector<std::string> items = base::split(text.value(), '\n');
  if (!items.empty() && items.back().empty()) items.pop_back();  // the final newline
  return items;
}

base::Result<int> default_jobs() {
  const char* env = std::getenv("MFLOW_CPUS");
  if (!env || !*env) return exec::online_cpus();
  char* end = nullptr;
  double cpus = std::strtod(env, &end);
  if (end == env || *end != '\0' || !(cpus > 0) || cpus > 100000) {
    return base::Status::invalid(fmt::format(
        "MFLOW_CPUS='{}' is not a positive number of cpus; fix or unset it, or pass -j N", env));
  }
  return static_cast<int>(std::ceil(cpus));
}

// More files may be open at once than the default soft limit allows (two per started item).
void raise_open_file_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
}

void print_failure(const exec::MapFailure& f, const std::vector<std::string>& command) {
  std::vector<std::string> argv = exec::substitute_item(command, f.item);
  for (auto& a : argv) a = base::shell_quote(a);
  std::cerr << fmt::format("mflow map: error: item {} ({}) failed: {}\n", f.index,
                           quoted_item(f.item), f.reason);
  std::cerr << "  command: " << base::join(argv, " ") << "\n";
  if (f.stderr_tail.empty()) {
    std::cerr << "  (its stderr was empty)\n";
  } else {
    std::cerr << fmt::format("  last {} line(s) of its stderr:\n", f.stderr_tail.size());
    for (const auto& line : f.stderr_tail) std::cerr << "  | " << line << "\n";
  }
  std::cerr << "  the other items were stopped.\n";
}

ExitCode run_map(MapOptions& o) {
  // Phase 1: validate the command line and load the items.
  // The items follow the LAST ":::", so a nested `mflow map ... ::: ...` stays in the command.
  if (auto sep = std::find(o.command.rbegin(), o.command.rend(), ":::"); sep != o.command.rend()) {
    auto at = sep.base() - 1;
    o.items.assign(at + 1, o.command.end());
    o.items_given = true;
    o.command.erase(at, o.command.end());
  }
  int sources = (o.items_given ? 1 : 0) + (o.items_json.empty() ? 0 : 1) +
                (o.items_lines.empty() ? 0 : 1) + (o.stdin_lines ? 1 : 0);
  if (sources != 1) {
    error(sources == 0 ? "no items: give them after the command with ::: A B C, or with --items-json FILE, "
                         "--items-lines FILE or --stdin-lines"
                       : "give the items one way only (::: A B C, --items-json, --items-lines or "
                         "--stdin-lines)");
    return ExitCode::kUsage;
  }
  if (o.command.empty()) {
    error("no command: put it after `--`, e.g. mflow map -j 4 -- echo {} ::: a b c");
    return ExitCode::kUsage;
  }
  if (o.jobs == 0) {
    auto jobs = default_jobs();
    if (!jobs.ok()) {
      error(jobs.status().message());
      return ExitCode::kUsage;
    }
    o.jobs = jobs.value();
  }
  base::Result<std::vector<std::string>> items = o.items;
  if (!o.items_json.empty()) items = items_from_json(o.items_json);
  if (!o.items_lines.empty()) items = items_from_lines(o.items_lines);
  if (o.stdin_lines) items = items_from_lines("-");
  if (!items.ok()) {
    error(items.status().message());
    return items.status().code() == base::StatusCode::kInvalid ? ExitCode::kUsage
                                                                : ExitCode::kEnvironment;
  }

  // Phase 2: open the destination (a temp file renamed into place only on success).
  base::UniqueFd file_fd;
  std::string temp_path;
  if (!o.output_file.empty()) {
    temp_path = o.output_file + ".mflow-tmp-XXXXXX";
    int fd = ::mkostemp(temp_path.data(), O_CLOEXEC);
    if (fd < 0) {
      error(fmt::format("--output-file {}: cannot create {}: {}", o.output_file, temp_path,
                        std::strerror(errno)));
      return ExitCode::kEnvironment;
    }
    ::fchmod(fd, 0644);
    file_fd.reset(fd);
  }
  // The stdout contract: it holds the complete result only when map exits 0, and after a
  // failure nothing a reader could take for one. JSON streams (results as soon as they are in
  // order): a failure cuts it before the closing `]`, which no JSON parser accepts. Concatenated
  // bytes cut short would look complete, so they are held in an anonymous temp file and copied
  // to stdout only once every item succeeded.
  base::UniqueFd held_fd;
  if (!file_fd && o.output == "concat") {
    auto held = exec::anonymous_file(o.temp_dir.empty() ? exec::default_temp_dir() : o.temp_dir);
    if (!held.ok()) {
      error(held.status().message());
      return ExitCode::kEnvironment;
    }
    held_fd = std::move(held.value());
  }
  Output out(file_fd ? file_fd.get() : held_fd ? held_fd.get() : 1,
             file_fd ? o.output_file : held_fd ? "a temp file" : "stdout");
  auto discard = [&] {
    if (!temp_path.empty()) ::unlink(temp_path.c_str());
  };
  // A reader that stopped reading (`mflow map ... | head`) is not an error to report: the
  // workers are already stopped, and mflow ends quietly with 141 as `seq | head` would.
  auto fail = [&](const base::Status& status) {
    discard();
    if (!file_fd && status.code() == base::StatusCode::kClosed) return ExitCode::kOutputClosed;
    error(status.message());
    return ExitCode::kEnvironment;
  };

  // Phase 3: run, writing each item's output in input order as it becomes available.
  base::install_interrupt_handlers();
  raise_open_file_limit();
  std::chrono::milliseconds grace(static_cast<int64_t>(o.kill_grace * 1000));
  if (auto g = exec::start_orphan_guard(grace); !g.ok()) {
    std::cerr << "mflow map: warning: " << g.message()
              << "; workers would outlive a SIGKILLed mflow\n";
  }
  exec::MapOptions run;
  run.command = o.command;
  run.jobs = o.jobs;
  run.temp_dir = o.temp_dir;
  run.kill_grace = grace;
  run.wake_fds = {base::interrupt_fd()};
  run.interrupted = [] { return base::interrupted(); };
  const bool json = o.output != "concat";
  const bool json_values = o.output == "json-values";
  std::optional<exec::MapFailure> bad_json;
  base::Status s;
  bool opened = false;  // "[" is written with the first output, so a failure prints nothing
  auto on_output = [&](size_t index, int fd) -> base::Status {
    if (json) MFLOW_RETURN_IF_ERROR(out.write(opened ? "," : "["));
    opened = true;
    if (!json) return out.copy_from(fd);
    if (!json_values) return write_json_string(fd, out);
    // Validate without building a document (constant memory), then copy the bytes as they are.
    base::UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
    std::FILE* f = copy ? ::fdopen(copy.get(), "r") : nullptr;
    if (!f) return base::Status::from_errno("an item's temp file", errno);
    copy.release();  // the FILE owns it now
    bool valid = nlohmann::json::accept(f);
    std::fclose(f);
    if (!valid) {
      exec::MapFailure failure;
      failure.index = index;
      failure.item = (*items)[index];
      failure.reason = "its output is not one valid JSON value (--output json-values)";
      bad_json = failure;
      return base::Status::invalid(failure.reason);
    }
    auto [offset, length] = trimmed_range(fd);
    return out.copy_range(fd, offset, length);
  };
  auto on_stderr = [&](size_t, int fd) -> base::Status {
    Output err(2, "stderr");
    (void)err.copy_from(fd);  // diagnostics only: a closed stderr must not fail the map
    return base::Status::ok_status();
  };
  base::Result<exec::MapResult> result = base::Status::internal("not run");
  if (s.ok()) result = exec::run_parallel_map(items.value(), run, on_output, on_stderr);

  // Phase 4: finish the output, or explain what went wrong.
  if (s.ok() && !result.ok()) s = result.status();
  if (bad_json) {
    std::cerr << fmt::format("mflow map: error: item {} ({}): {}\n", bad_json->index,
                             quoted_item(bad_json->item), bad_json->reason);
    discard();
    return ExitCode::kTaskFailed;
  }
  if (!s.ok()) return fail(s);
  const exec::MapResult& r = result.value();
  if (r.kind == exec::MapResult::Kind::kInterrupted) {
    (void)out.flush();
    int sig = base::interrupt_signal();
    const char* name = ::sigabbrev_np(sig);
    std::cerr << fmt::format("mflow map: interrupted by SIG{}: every worker was stopped\n",
                             name ? name : "INT");
    discard();
    return ExitCode::kInterrupted;
  }
  if (r.kind == exec::MapResult::Kind::kItemFailed) {
    (void)out.flush();
    print_failure(*r.failure, o.command);
    discard();
    return ExitCode::kTaskFailed;
  }
  if (json) s = out.write(opened ? "]\n" : "[]\n");
  if (s.ok()) s = out.flush();
  if (s.ok() && held_fd) {
    Output to_stdout(1, "stdout");
    if (::lseek(held_fd.get(), 0, SEEK_SET) != 0) {
      s = base::Status::from_errno("a temp file", errno);
    } else {
      s = to_stdout.copy_from(held_fd.get());
    }
  }
  if (s.ok() && file_fd) {
    if (::fsync(file_fd.get()) != 0 || ::rename(temp_path.c_str(), o.output_file.c_str()) != 0) {
      s = base::Status::from_errno("--output-file " + o.output_file, errno);
    }
  }
  if (!s.ok()) return fail(s);
  return ExitCode::kOk;
}

}  // namespace

void add_map_command(CLI::App& root, const GlobalOptions&, Commands& out) {
  auto opts = std::make_shared<MapOptions>();
  auto* app = root.add_subcommand(
      "map", "Run a command once per item on N worker processes; results in input order");
  app->description(
      "Run a command once per item on N worker processes; results in input order.\n"
      "Usage: mflow map [OPTIONS] -- COMMAND [ARGS...] ::: ITEM...\n"
      "       mflow map [OPTIONS] (--items-json FILE | --items-lines FILE | --stdin-lines)\n"
      "                 -- COMMAND [ARGS...]");
  app->footer(
      "Each item reaches its command through the environment (MFLOW_ITEM, MFLOW_ITEM_INDEX)\n"
      "and through every `{}` in COMMAND's arguments (replaced as text, never re-parsed by a\n"
      "shell). Use `sh -c '... \"$MFLOW_ITEM\" ...'` for shell syntax.\n"
      "Each item's stdout is collected in a temp file and written in input order: as a JSON\n"
      "array of strings (--output json), of the items' JSON values (json-values), or as the\n"
      "concatenated bytes (concat). A successful item's stderr is passed through.\n"
      "When an item fails, the others are stopped and mflow exits 1 naming the item, its\n"
      "index, exit status and the last lines of its stderr. Ctrl-C stops every worker (130).\n"
      "Examples:\n"
      "  mflow map -j 4 -- sh -c 'echo \"$MFLOW_ITEM\" | tr a-z A-Z' ::: a b c\n"
      "  seq 100 | mflow map --stdin-lines --output concat -- ./score.py --row {}");
  app->add_option("-j,--jobs", opts->jobs,
                  "Items run at once (default: $MFLOW_CPUS rounded up, else the online cpus)")
      ->check(whole_number(1, 100000, "workers"));
  app->add_option("--items-json", opts->items_json,
                  "A JSON array of items (- for stdin); strings as is, other values as JSON");
  app->add_option("--items-lines", opts->items_lines, "One item per line of FILE (- for stdin)");
  app->add_flag("--stdin-lines", opts->stdin_lines, "One item per line of stdin");
  app->add_option("--output", opts->output, "How to combine the items' stdout")
      ->check(CLI::IsMember({"json", "json-values", "concat"}))
      ->capture_default_str();
  app->add_option("--output-file", opts->output_file,
                  "Write the result to PATH (replaced only when every item succeeded)");
  app->add_option("--temp-dir", opts->temp_dir,
                  "Directory for the items' temp files (default $TMPDIR or /tmp)");
  app->add_option("--kill-grace", opts->kill_grace,
                  "Seconds between SIGTERM and SIGKILL when stopping workers")
      ->check(finite_number(0, 3600, /*min_exclusive=*/false, "seconds"))
      ->capture_default_str();
  app->add_option("command", opts->command,
                  "COMMAND [ARGS...] [::: ITEM...], after --")
      ->allow_extra_args();
  app->fallthrough(false);
  out.push_back({app, [opts] { return run_map(*opts); }});
}

}  // namespace mflow::cli
