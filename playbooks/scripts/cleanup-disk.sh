#!/bin/sh
# Free disk space by removing old rotated logs, compressed logs and core dumps.
#
#   cleanup-disk.sh [--apply] [--days N] DIR...
#
# Without --apply it only prints what it would delete (and the total size), so the
# playbook can show the list in Slack before anyone approves the real run.
# Safety: find itself deletes (no file names pass through the shell, so odd names
# cannot redirect a delete), it never follows symlinks or crosses filesystems,
# only touches regular files matching the patterns below, and refuses / and
# relative paths.
set -eu

apply=0
days=7
usage() { echo "usage: $0 [--apply] [--days N] DIR..." >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --apply) apply=1; shift ;;
    --days) [ $# -ge 2 ] || usage; days="$2"; shift 2 ;;
    --help|-h) usage ;;
    --) shift; break ;;
    -*) echo "unknown option: $1" >&2; usage ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || usage
case "$days" in ''|*[!0-9]*) echo "--days must be a whole number, got: $days" >&2; exit 2 ;; esac
for dir in "$@"; do
  case "$dir" in
    /) echo "refusing to clean /" >&2; exit 2 ;;
    /*) ;;
    *) echo "refusing relative path: $dir" >&2; exit 2 ;;
  esac
done

if [ "$apply" -eq 1 ]; then verb="deleted"; else verb="would delete"; fi

for dir in "$@"; do
  if [ ! -d "$dir" ]; then
    echo "skip $dir (not a directory)" >&2
    continue
  fi
  # Rotated (app.log.1, app.log.2.gz), archived (*.gz, *.old) logs and core dumps.
  if [ "$apply" -eq 1 ]; then
    find "$dir" -xdev -type f -mtime +"$days" \
      \( -name '*.log.[0-9]*' -o -name '*.gz' -o -name '*.old' -o -name 'core' -o -name 'core.[0-9]*' -o -name '*.crash' \) \
      -printf '%s\t%p\n' -delete
  else
    find "$dir" -xdev -type f -mtime +"$days" \
      \( -name '*.log.[0-9]*' -o -name '*.gz' -o -name '*.old' -o -name 'core' -o -name 'core.[0-9]*' -o -name '*.crash' \) \
      -printf '%s\t%p\n'
  fi
done | awk -F '\t' -v verb="$verb" -v apply="$apply" '
  { print verb " " $2 " (" $1 " bytes)"; n++; total += $1 }
  END {
    if (apply == 1) printf "deleted %d files, %d bytes\n", n, total
    else printf "would delete %d files, %d bytes (dry run; pass --apply to delete)\n", n, total
  }'
