// ObjectStore: the one storage seam under the datastore (docs/datastore.md). Everything the
// datastore logic stores — FORMAT, ID, run and task records, logs, artifact objects — is an
// object under a key, and the logic (records, content addressing, run allocation, liveness,
// resume, logs) is written once on this interface. Two implementations: a local directory
// (keys are relative paths under the root; crash-safe by temp + rename / link) and S3
// (keys under s3://bucket/prefix/). The key layout is the same in both, so a local datastore
// copied to a bucket with `aws s3 sync` is a valid S3 datastore, and back.
//
// Keys are '/'-separated relative paths built only by store/layout.h; they never start with
// '/', never contain "." or ".." components, and each component passes layout::valid_component
// (or is a fixed name from layout.h). Implementations are safe to call from several threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace mflow::store {

struct ObjectInfo {
  std::string key;
  int64_t size = 0;
  /// Last modification as the storage service saw it (S3 Last-Modified; file mtime).
  std::chrono::system_clock::time_point modified;
};

/// One level of a listing under `prefix` (S3 ListObjectsV2 with delimiter "/"): the objects
/// directly under it and the names of the "subdirectories" (common prefixes, without the
/// trailing '/' and relative to `prefix`).
struct Listing {
  std::vector<ObjectInfo> objects;       // keys are full keys
  std::vector<std::string> subdirs;      // e.g. "12" for prefix "runs/"
};

enum class PutMode {
  kOverwrite,  // replace atomically: a reader sees the old or the new object, whole
  kIfAbsent,   // create only if no object has the key (S3 If-None-Match: *); kConflict if one has
};

/// A held liveness mark for a running run (see ObjectStore::hold). Released (and, for the
/// S3 heartbeat, stopped) on destruction; a process that dies releases it implicitly, and
/// readers then see the holder as gone.
class Lease {
 public:
  virtual ~Lease() = default;
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  /// Where the store is, for messages: "/home/me/proj/.mflow" or "s3://bucket/prefix".
  virtual std::string url() const = 0;
  /// The message form of one key: a file path, or an s3:// URL.
  virtual std::string describe(const std::string& key) const = 0;

  // --- small objects (records, FORMAT, ID) -------------------------------------------------
  /// not_found if there is no such object.
  virtual base::Result<std::string> get(const std::string& key) const = 0;
  /// Atomic: a reader never sees part of `bytes`. With `durable`, the local store fsyncs
  /// (S3 writes are durable when acknowledged).
  virtual base::Status put(const std::string& key, std::string_view bytes, PutMode mode,
                           bool durable = false) = 0;

  // --- large objects (artifacts), streamed with bounded memory ----------------------------
  /// Stores the file at `path` under `key`. With `consume`, the caller gives the file up: the
  /// local store may rename it into place instead of copying (same file system). kIfAbsent
  /// with an existing object is not an error for content-addressed keys: callers check
  /// head() first or treat kConflict as "already stored".
  virtual base::Status put_file(const std::string& key, const std::string& path, PutMode mode,
                                bool consume) = 0;
  /// Makes the object's bytes available as the read-only file `dest` (created; its directory
  /// exists): the local store hard-links (copying when links are refused), S3 downloads to a
  /// temp file beside `dest` and renames. With `expect_sha256`, bytes whose SHA-256 differs
  /// are never placed at `dest` (S3 retries the download; a local mismatch is kIoError).
  virtual base::Status get_file(const std::string& key, const std::string& dest,
                                const std::optional<std::string>& expect_sha256) const = 0;
  /// Up to `max_bytes` from `offset` (fewer at the end; empty past it). not_found if absent.
  virtual base::Result<std::string> get_range(const std::string& key, int64_t offset,
                                              int64_t max_bytes) const = 0;

  // --- metadata ---------------------------------------------------------------------------
  /// nullopt if absent.
  virtual base::Result<std::optional<ObjectInfo>> head(const std::string& key) const = 0;
  /// One level under `prefix` (which ends with '/' or is empty for the root).
  virtual base::Result<Listing> list(const std::string& prefix) const = 0;
  /// Deleting an absent object is not an error.
  virtual base::Status remove(const std::string& key) = 0;

  // --- liveness of a running run ----------------------------------------------------------
  /// Marks `key` as held by this process until the Lease is destroyed: the local store takes
  /// an flock on the file (released by the kernel when the process dies); S3 writes a
  /// heartbeat object at `key` and rewrites it periodically from a background thread.
  /// kConflict if another live holder has it.
  virtual base::Result<std::unique_ptr<Lease>> hold(const std::string& key) = 0;
  /// Whether some process holds `key` now (local: the flock is taken; S3: the heartbeat is
  /// younger than the staleness limit, measured against the service's own clock).
  virtual base::Result<bool> held(const std::string& key) const = 0;
};

}  // namespace mflow::store
