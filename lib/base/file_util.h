// File helpers with the datastore's discipline: whole-file reads, and writes that are atomic
// (temp file in the same directory, then rename) so a crash never leaves half a file.
// Thread-safe (no shared state).
#pragma once

#include <functional>
#include <string>

#include "base/status.h"

namespace mflow::base {

Result<std::string> read_file(const std::string& path);

/// Reads the file at `path` in chunks, handing each to `sink`; constant memory for any size.
Status read_file_chunks(const std::string& path,
                        const std::function<void(const char* data, size_t size)>& sink);

/// Replaces `path` with `content` atomically. With `durable`, fsyncs the file and its
/// directory so the content survives a power loss, not just a crash of mflow.
Status write_file_atomic(const std::string& path, std::string_view content, bool durable = false);

/// Writes `content` to `path` only if it does not exist yet (O_EXCL); kConflict if it does.
Status write_file_exclusive(const std::string& path, std::string_view content);

/// mkdir -p.
Status make_dirs(const std::string& path);

/// Writes all of `data` to `fd`, retrying on EINTR and short writes.
Status write_all(int fd, const void* data, size_t size, const std::string& what);

}  // namespace mflow::base
