// Client: S3's object operations over HTTP(S) (cpprestsdk), signed with SigV4 (docs/s3.md).
// Used by store/s3_object_store. Every operation retries transient failures (500, 503
// SlowDown, connection reset, truncated bodies) with exponential backoff and jitter, a
// bounded number of times; re-signs once with fresh credentials when S3 rejects them; and
// reports errors as base::Status naming the s3:// URL and S3's error code. A write returns ok
// only once S3 acknowledged it. Files move with bounded memory at any size: downloads stream
// to disk, uploads go in parts.
// Thread-safe: one Client serves many threads; connections are kept alive and reused.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "s3/credentials.h"

namespace mflow::s3 {

struct ClientOptions {
  /// Attempts per request, the first included, for transient failures.
  int max_attempts = 6;
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
  /// Inactivity timeout of one request (no byte sent or received for this long).
  std::chrono::seconds request_timeout{60};
  /// Files of at least this size are uploaded in parts (S3 multipart upload); smaller ones
  /// in one PutObject (held in memory while it is sent).
  int64_t multipart_threshold = 16 << 20;
  /// Bytes per part (S3's minimum is 5 MiB except for the last part); grown automatically so
  /// that no upload needs more than S3's 10,000 parts.
  int64_t part_size = 8 << 20;
  /// Parts in flight at once. An upload holds at most parallel_parts x part_size bytes in
  /// memory (32 MiB by default), whatever the file's size.
  int parallel_parts = 4;
  /// Keys per ListObjectsV2 page (S3's maximum is 1000); tests make it small to paginate.
  int list_page_size = 1000;
  /// Seed of the backoff jitter (0: from the clock). Tests fix it.
  uint64_t jitter_seed = 0;
};

/// What HEAD (and a listing) tells about an object.
struct ObjectMeta {
  std::string key;
  int64_t size = 0;
  std::string etag;  // as S3 sends it, without quotes
  Clock::time_point last_modified;
  /// The service's clock when it answered (the Date header); for listings the same as the
  /// listing request's Date. Used to judge staleness without trusting the local clock.
  Clock::time_point server_date;
};

struct ListResult {
  std::vector<ObjectMeta> objects;      // full keys
  std::vector<std::string> prefixes;    // full common prefixes, ending with the delimiter
};

/// Requests made, by kind, and how many were retries (benchmarks count requests per task).
struct ClientStats {
  std::atomic<int64_t> gets{0}, puts{0}, heads{0}, lists{0}, deletes{0}, multipart{0};
  std::atomic<int64_t> retries{0}, reauthentications{0};
  std::atomic<int64_t> bytes_sent{0}, bytes_received{0};
};

class Client {
 public:
  /// kInvalid when the endpoint is not an http(s) URL or the CA bundle cannot be read.
  static base::Result<std::unique_ptr<Client>> create(ConnectionSettings settings,
                                                      std::shared_ptr<CredentialProvider> credentials,
                                                      ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// "s3://bucket/key", the form every message uses.
  static std::string url(std::string_view bucket, std::string_view key);

  /// PutObject. With `if_absent`, sends If-None-Match: * and returns kConflict when an
  /// object already has the key (412). A retry of a conditional write whose first attempt may
  /// have been applied reads the object back: identical bytes count as our own write.
  base::Status put_object(const std::string& bucket, const std::string& key, std::string_view bytes,
                          bool if_absent = false);
  /// Uploads the file at `path`: one PutObject below options.multipart_threshold,
  /// else a multipart upload with parallel parts (aborted on failure, so no parts linger).
  base::Status put_file(const std::string& bucket, const std::string& key, const std::string& path,
                        bool if_absent = false);
  /// GetObject of the whole object. not_found when there is none.
  base::Result<std::string> get_object(const std::string& bucket, const std::string& key);
  /// Up to `length` bytes from `offset` (fewer at the end, empty past it). not_found if absent.
  base::Result<std::string> get_range(const std::string& bucket, const std::string& key,
                                      int64_t offset, int64_t length);
  /// Streams the object into `dest` (through a temp file beside it, renamed when complete).
  /// A body shorter than announced, or whose SHA-256 differs from `expect_sha256`, is
  /// retried and never left at `dest`.
  base::Status get_file(const std::string& bucket, const std::string& key, const std::string& dest,
                        const std::optional<std::string>& expect_sha256 = std::nullopt);
  /// HeadObject; nullopt when there is no such object.
  base::Result<std::optional<ObjectMeta>> head_object(const std::string& bucket, const std::string& key);
  /// ListObjectsV2 under `prefix`, following continuation tokens to the end. With a
  /// delimiter, keys below the next delimiter are rolled up into `prefixes`.
  base::Result<ListResult> list_objects(const std::string& bucket, const std::string& prefix,
                                        const std::string& delimiter = "");
  /// DeleteObject; deleting an absent object is not an error.
  base::Status delete_object(const std::string& bucket, const std::string& key);

  const ClientStats& stats() const;

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mflow::s3
