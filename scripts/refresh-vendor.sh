#!/bin/sh
# Refresh the vendored browser libraries of the Chat page from the npm registry.
# Pinned versions; change them here, run this, commit the result (and VERSIONS.txt).
#   marked     Markdown -> HTML          https://github.com/markedjs/marked
#   dompurify  HTML sanitizer            https://github.com/cure53/DOMPurify
set -eu
MARKED=18.2.1
DOMPURIFY=3.4.18
here=$(cd "$(dirname "$0")/.." && pwd)
dest="$here/synapse/server/static/vendor"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "marked@$MARKED" "dompurify@$DOMPURIFY" >/dev/null
mkdir marked dompurify
tar xzf "marked-$MARKED.tgz" -C marked
tar xzf "dompurify-$DOMPURIFY.tgz" -C dompurify
mkdir -p "$dest"
cp marked/package/lib/marked.umd.js "$dest/marked.umd.js"
cp marked/package/LICENSE "$dest/marked.LICENSE"
cp dompurify/package/dist/purify.min.js "$dest/purify.min.js"
cp dompurify/package/LICENSE "$dest/dompurify.LICENSE"
{
  echo "marked $MARKED (lib/marked.umd.js) sha256 $(sha256sum "$dest/marked.umd.js" | cut -d' ' -f1)"
  echo "dompurify $DOMPURIFY (dist/purify.min.js) sha256 $(sha256sum "$dest/purify.min.js" | cut -d' ' -f1)"
  echo "refreshed with scripts/refresh-vendor.sh"
} > "$dest/VERSIONS.txt"
cat "$dest/VERSIONS.txt"
