// File helpers with the datastore's discipline: whole-file reads, and writes that are atomic
// (temp file in the same directory, then rename) so a crash never leaves half a file.
// Thread-safe (no shared state).
#pragma once

#include <functional>
#include <string>

#include "base/status.h"
#include "base/unique_fd.h"

namespace mflow::base {

Result<std::string> read_file(const std::string& path);

/// Opens `path` for reading only if it is a regular file (symlinks followed): the open is
/// non-blocking, so a FIFO cannot hang it, and fstat decides; a FIFO, device, socket or
/// directory is kInvalid "PATH is not a regular file (it is a FIFO)". The returned fd blocks
/// as usual. Readers of the datastore use it: a record or log replaced by a FIFO or a link to
/// /dev/zero must be named as damaged, not hang or stream forever.
Result<UniqueFd> open_regular_file(const std::string& path);

/// read_file() through open_regular_file().
Result<std::string> read_regular_file(const std::string& path);

/// Reads the file at `path` in chunks, handing each to `sink`; constant memory for any size.
Status read_file_chunks(const std::string& path,
                        const std::function<void(const char* data, size_t size)>& sink);

/// Replaces `path` with `content` atomically. With `durable`, fsyncs the file and its
/// directory so the content survives a power loss, not just a crash of mflow.
Status write_file_atomic(const std::string& path, std::string_view content, bool durable = false);

/// Writes a result file a user named (--summary-json, --run-id-file): a regular or new file is
/// replaced atomically (write_file_atomic); an existing non-regular file (/dev/stdout, a FIFO,
/// a device) is written in place, never replaced by a rename. Every failure (ENOSPC, EPIPE,
/// a failing close) is returned, naming `path`.
Status write_output_file(const std::string& path, std::string_view content);

/// Writes `content` to `path` only if it does not exist yet (O_EXCL); kConflict if it does.
Status write_file_exclusive(const std::string& path, std::string_view content);

/// mkdir -p.
Status make_dirs(const std::string& path);

/// Writes all of `data` to `fd`, retrying on EINTR and short writes.
Status write_all(int fd, const void* data, size_t size, const std::string& what);

}  // namespace mflow::base
