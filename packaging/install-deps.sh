#!/bin/sh
# Installs every build and test dependency of mflow from Debian bookworm's archive.
# Idempotent: re-running it only refreshes the package lists and installs nothing new.
set -eu

packages="
  build-essential cmake ninja-build pkg-config git
  libcli11-dev libyaml-cpp-dev libcpprest-dev nlohmann-json3-dev libfmt-dev libspdlog-dev
  catch2 libtomlplusplus-dev libvalijson-dev libssl-dev libboost-dev
  clang libclang-rt-14-dev
  python3 python3-yaml openssl procps time parallel
  python3-botocore python3-boto3 awscli chromium
  python3-jsonschema libxml2-utils
"

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086 # word splitting of the package list is intended
$SUDO apt-get install -y -q --no-install-recommends $packages

# Node.js and npm run the S3 tests' server. Machines that already have them (the CI image
# ships Node.js 20 from NodeSource, whose nodejs package provides npm and conflicts with
# Debian's npm package) keep theirs; others get Debian's.
if ! command -v npm > /dev/null 2>&1; then
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -q --no-install-recommends nodejs npm
fi

# The S3 tests' server (s3rver, pinned by test/support/s3/package-lock.json) from the npm
# registry into test/support/s3/node_modules.
npm ci --no-audit --no-fund --prefix "$(cd "$(dirname "$0")/.." && pwd)/test/support/s3"
