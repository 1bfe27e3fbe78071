// LocalObjectStore: a local directory as an ObjectStore (store/object_store.h). A key is the
// relative path of a file under the root, so the datastore's on-disk layout is its object
// layout. Keeps the directory datastore's crash-safety and speed: records are written to a
// hidden temp file beside their name and renamed (kOverwrite) or hard-linked (kIfAbsent,
// link(2) never replaces); consumed files are renamed or linked into place (no copy on one
// file system); get_file hard-links; leases are flock(2)s, released by the kernel when the
// holder dies. Parent directories are created on demand. Thread-safe (no mutable state).
#pragma once

#include <string>

#include "store/object_store.h"

namespace mflow::store {

class LocalObjectStore : public ObjectStore {
 public:
  /// `root` is an absolute directory path without a trailing '/'; it must exist.
  explicit LocalObjectStore(std::string root) : root_(std::move(root)) {}

  std::string url() const override { return root_; }
  std::string describe(const std::string& key) const override { return path(key); }

  base::Result<std::string> get(const std::string& key) const override;
  base::Status put(const std::string& key, std::string_view bytes, PutMode mode,
                   bool durable = false) override;
  /// Keeps the file's mode and modification time (like `cp -p`, also when it has to copy),
  /// so a sealed file stays sealed. With `consume` the file is renamed (kOverwrite) or
  /// linked and unlinked (kIfAbsent); it is gone afterwards on success and on kConflict.
  /// Putting the file that already is the object (same inode) succeeds without a change.
  base::Status put_file(const std::string& key, const std::string& path, PutMode mode,
                        bool consume) override;
  /// Hard-links the object to `dest`, replacing `dest`; copies (mode and time kept) when the
  /// file system refuses links. With `expect_sha256` the object is hashed first.
  base::Status get_file(const std::string& key, const std::string& dest,
                        const std::optional<std::string>& expect_sha256) const override;
  base::Result<std::string> get_range(const std::string& key, int64_t offset,
                                      int64_t max_bytes) const override;
  base::Result<std::optional<ObjectInfo>> head(const std::string& key) const override;
  /// Hidden names (leading '.', the temp files of writes in progress) are never listed;
  /// entries that are neither regular files nor directories are skipped.
  base::Result<Listing> list(const std::string& prefix) const override;
  base::Status remove(const std::string& key) override;
  /// An exclusive flock on the file at `key` (created), on an O_CLOEXEC descriptor so task
  /// processes never inherit it.
  base::Result<std::unique_ptr<Lease>> hold(const std::string& key) override;
  /// Probes with a non-blocking *shared* flock, so two readers probing at the same instant
  /// never take each other for the holder. A key that is not a regular file is held by none.
  base::Result<bool> held(const std::string& key) const override;

  /// The file holding `key`.
  std::string path(const std::string& key) const { return root_ + "/" + key; }

 private:
  std::string root_;
};

}  // namespace mflow::store
