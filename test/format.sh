#!/usr/bin/env bash
# Checks that every C source of the project is formatted as .clang-format
# says (deps/ holds build glue only). Prints the files that are not and the
# command that fixes them.
set -uo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.c' '*.h' | grep -v '^deps/')
bad=()
for f in "${files[@]}"; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [[ ${#bad[@]} -ne 0 ]]; then
  echo "not formatted as .clang-format says: ${bad[*]}" >&2
  echo "fix: clang-format -i ${bad[*]}" >&2
  exit 1
fi
echo "${#files[@]} files formatted"
