// TempDir: a fresh directory for one test, removed with everything in it afterwards.
#pragma once

#include <string>

namespace mflow::test {

/// A fresh directory under /tmp, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace mflow::test
