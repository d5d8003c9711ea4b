#!/usr/bin/env bash
# Deploys a release with versioned directories and a `current` symlink, reloads the running service,
# and switches `current` back when the reload reports failure (the old generation never stopped
# serving, or serves again, so only the symlink needs putting back). --wait-probation makes a
# release that crashes within the supervisor's probation, after it took over, a failure too:
# otherwise `current` would keep pointing at it, and the next restart would start it.
#
#   APP_ROOT=/srv/app RELOAD_CMD="fastify-hot-reload reload --name app --wait-probation" deploy.sh <source-dir> [release-name]
#
# APP_ROOT holds releases/<name>/ and current -> releases/<name>. The service runs from
# $APP_ROOT/current (its logical working directory), so a reload starts the new release's code.
set -euo pipefail

source_dir=${1:?usage: deploy.sh <source-dir> [release-name]}
name=${2:-$(date -u +%Y%m%d%H%M%S)}
root=${APP_ROOT:?set APP_ROOT to the directory holding releases/ and current}
reload_cmd=${RELOAD_CMD:-fastify-hot-reload reload --name app --wait-probation}

release="$root/releases/$name"
[ -e "$release" ] && { echo "deploy: release $name exists already" >&2; exit 2; }
mkdir -p "$root/releases"
cp -R "$source_dir" "$release"
if [ -f "$release/package-lock.json" ] && [ "${SKIP_INSTALL:-}" != 1 ]; then
  (cd "$release" && npm ci --omit=dev --no-audit --no-fund)
fi

previous=$(readlink "$root/current" 2>/dev/null || true)
switch_to() { # atomic: a new symlink renamed over the old one
  ln -sfn "$1" "$root/current.next"
  mv -T "$root/current.next" "$root/current"
}
switch_to "releases/$name"
echo "deploy: current -> releases/$name; reloading"
if $reload_cmd; then
  echo "deploy: release $name is serving"
  exit 0
fi
echo "deploy: reload failed; the previous release keeps serving" >&2
if [ -n "$previous" ]; then
  switch_to "$previous"
  echo "deploy: current -> $previous again" >&2
fi
exit 1
