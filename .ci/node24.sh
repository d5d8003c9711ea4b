#!/usr/bin/env bash
# Installs a pinned Node 24 from the npm registry (the `node` package ships the binary) into a cache
# outside the repo, once, and prints the path of its binary on stdout.
set -euo pipefail
version=24.21.0
prefix="${FHR_NODE24_CACHE:-$HOME/.cache/fastify-hot-reload/node-$version}"
bin="$prefix/node_modules/node/bin/node"
if [ ! -x "$bin" ] || [ "$("$bin" --version 2>/dev/null)" != "v$version" ]; then
  echo "installing node@$version into $prefix" >&2
  mkdir -p "$prefix"
  npm install --no-save --no-package-lock --no-audit --no-fund --prefix "$prefix" "node@$version" >&2
fi
"$bin" --version >&2
echo "$bin"
