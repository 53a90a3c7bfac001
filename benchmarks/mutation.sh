#!/usr/bin/env bash
# Mutation testing over the counting core and the operational metrics (docs/TESTING.md).
# Configuration: [tool.mutmut] in pyproject.toml (files mutated, tests run). Needs mutmut in
# the environment (pip install mutmut; measured with mutmut 3.8.1): PYTHON names the
# interpreter (default python3, e.g. PYTHON=.venv/bin/python). About 7 minutes on 2 cores.
#   benchmarks/mutation.sh            run, then list the survivors and the score
#   benchmarks/mutation.sh show NAME  the diff of one mutant
set -euo pipefail
cd "$(dirname "$0")/.."
# mutmut runs the tests against its mutated copy in mutants/: PYTHONPATH must not point at src/.
unset PYTHONPATH
py="${PYTHON:-python3}"
if [ "${1:-}" = "show" ]; then
    exec "$py" -m mutmut show "$2"
fi
rm -rf mutants
log="$(mktemp)"
# mutmut's progress line is long; its outcome is the summary below.
"$py" -m mutmut run --max-children "${MUTMUT_CHILDREN:-2}" >"$log" 2>&1 || {
    tail -c 2000 "$log"; exit 1; }
"$py" -m mutmut results | sed 's/^ *//' | sort > mutants/survivors.txt
"$py" -m mutmut export-cicd-stats >/dev/null
"$py" - <<'PY'
import json, pathlib
stats = json.loads(pathlib.Path("mutants/mutmut-cicd-stats.json").read_text())
tested = stats["total"] - stats.get("skipped", 0)
caught = stats["killed"] + stats.get("timeout", 0)
print(f"mutants: {stats['total']}, killed {stats['killed']}, timeout {stats.get('timeout', 0)}, "
      f"survived {stats['survived']}, no tests {stats.get('no_tests', 0)}; "
      f"score {100 * caught / tested:.1f}%")
PY
echo "survivors (benchmarks/mutation.sh show NAME for the diff):"
cat mutants/survivors.txt
