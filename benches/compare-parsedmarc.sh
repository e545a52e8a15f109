#!/usr/bin/env bash
# Side by side: parsedmarc 11.1.0 (offline) and dmarcdb on the same generated
# corpus, alternating runs; prints wall times, peak RSS and the ratios.
#
#   benches/compare-parsedmarc.sh                    # 2,000 reports x 20 records, 3 runs each
#   benches/compare-parsedmarc.sh --reports 10000    # 10,000 reports (parsedmarc takes minutes)
#   benches/compare-parsedmarc.sh --runs 5 --records 20 --seed 7
#
# parsedmarc is installed with pip into a temporary virtualenv under $TMPDIR
# (PARSEDMARC_VENV=/path reuses an existing venv that has parsedmarc 11.1.0).
# dmarcdb is built with `cargo build --release` (DMARCDB_BIN=/path uses that
# binary instead). The corpus is written by `dmarcdb generate` (a mix of
# .xml, .xml.gz, .zip and .eml from five reporters, RFC 7489 and RFC 9990).
#
# parsedmarc runs as `parsedmarc --offline -s -o OUT CORPUS_DIR` (its JSON
# and CSV output is how we check it read every report); dmarcdb as
# `dmarcdb -q ingest --json CORPUS_DIR` into a fresh database each run
# (DMARCDB_DB and an empty DMARCDB_CONFIG in the temporary directory).
# Peak RSS is GNU time's maximum resident set size. The script fails loudly
# if either tool processed fewer reports (or records) than were generated.
set -euo pipefail

reports=2000
records=20
runs=3
seed=1
keep=0
while [ $# -gt 0 ]; do
    case "$1" in
        --reports) reports="$2"; shift 2 ;;
        --records) records="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "compare-parsedmarc: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

die() {
    echo >&2
    echo "!!! compare-parsedmarc: $*" >&2
    exit 1
}

[ -x /usr/bin/time ] || die "/usr/bin/time (GNU time) is needed: apt-get install time"
command -v python3 >/dev/null || die "python3 is needed"

here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/compare-parsedmarc.XXXXXX")
if [ "$keep" = 1 ]; then
    echo "keeping $work"
else
    trap 'rm -rf "$work"' EXIT
fi

# dmarcdb
if [ -n "${DMARCDB_BIN:-}" ]; then
    bin=$DMARCDB_BIN
else
    (cd "$here" && cargo build --release --quiet)
    bin=$here/target/release/dmarcdb
fi
[ -x "$bin" ] || die "no dmarcdb binary at $bin"

# parsedmarc
if [ -n "${PARSEDMARC_VENV:-}" ]; then
    venv=$PARSEDMARC_VENV
else
    venv=$work/venv
    echo "installing parsedmarc 11.1.0 into $venv ..."
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check parsedmarc==11.1.0 \
        || die "pip install parsedmarc==11.1.0 failed"
fi
pd_version=$("$venv/bin/parsedmarc" --version 2>&1 | tail -n 1)
case "$pd_version" in
    *11.1.0*) ;;
    *) die "parsedmarc in $venv is '$pd_version', not 11.1.0" ;;
esac

# The corpus
corpus=$work/corpus
"$bin" -q generate --out "$corpus" --reports "$reports" --records "$records" \
    --seed "$seed" --json > "$work/generated.json"
want_records=$((reports * records))
summary=$(python3 -c 'import json,sys; w=json.load(open(sys.argv[1])); print("%d files, %.1f MB (%.1f MB of XML): %d xml, %d xml.gz, %d zip, %d eml" % (w["files"], w["bytes"]/1e6, w["xml_bytes"]/1e6, w["xml"], w["gz"], w["zip"], w["eml"]))' "$work/generated.json")
echo "corpus: $reports reports x $records records, seed $seed: $summary"
echo "runs: $runs of each, alternating (parsedmarc, dmarcdb, parsedmarc, ...)"
echo

empty_config=$work/empty.toml
: > "$empty_config"

# Appends "wall rss_kb" of one run to a file.
timed() {
    local out=$1
    shift
    /usr/bin/time -f "%e %M" -o "$work/time" "$@"
    tail -n 1 "$work/time" >> "$out"
}

run_parsedmarc() {
    local out=$work/pd-out
    rm -rf "$out"
    timed "$work/pd.times" "$venv/bin/parsedmarc" --offline -s -o "$out" "$corpus" \
        2> "$work/pd.stderr" || die "parsedmarc failed: $(tail -n 5 "$work/pd.stderr")"
    [ -f "$out/aggregate.json" ] || die "parsedmarc wrote no aggregate.json: $(tail -n 5 "$work/pd.stderr")"
    local got
    got=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len({r["report_metadata"]["report_id"] for r in d}), sum(len(r["records"]) for r in d))' "$out/aggregate.json")
    set -- $got
    [ "$1" -eq "$reports" ] || die "parsedmarc processed $1 reports of $reports generated (stderr: $(tail -n 3 "$work/pd.stderr"))"
    [ "$2" -eq "$want_records" ] || die "parsedmarc processed $2 records of $want_records generated"
}

run_dmarcdb() {
    local db=$work/db.sqlite
    rm -f "$db" "$db-wal" "$db-shm" "$db.lock"
    DMARCDB_DB=$db DMARCDB_CONFIG=$empty_config \
        timed "$work/dm.times" "$bin" -q ingest --json "$corpus" \
        > "$work/dm.json" 2> "$work/dm.stderr" || die "dmarcdb failed: $(tail -n 5 "$work/dm.stderr")"
    local got
    got=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["reports"], s["records"], s["invalid"])' "$work/dm.json")
    set -- $got
    [ "$1" -eq "$reports" ] || die "dmarcdb stored $1 reports of $reports generated"
    [ "$2" -eq "$want_records" ] || die "dmarcdb stored $2 records of $want_records generated"
    [ "$3" -eq 0 ] || die "dmarcdb kept $3 invalid inputs"
}

: > "$work/pd.times"
: > "$work/dm.times"
for i in $(seq 1 "$runs"); do
    run_parsedmarc
    echo "run $i: parsedmarc $(tail -n 1 "$work/pd.times" | awk '{printf "%.2f s, %.1f MB", $1, $2/1024}')"
    run_dmarcdb
    echo "run $i: dmarcdb    $(tail -n 1 "$work/dm.times" | awk '{printf "%.2f s, %.1f MB", $1, $2/1024}')"
done
echo

python3 - "$work/pd.times" "$work/dm.times" "$reports" "$records" "$pd_version" <<'EOF'
import statistics, sys
def load(p):
    rows = [l.split() for l in open(p) if l.strip()]
    return [float(r[0]) for r in rows], [float(r[1]) / 1024 for r in rows]
pw, pr = load(sys.argv[1])
dw, dr = load(sys.argv[2])
reports, records = int(sys.argv[3]), int(sys.argv[4])
m = statistics.median
print(f"{reports} reports x {records} records, median of {len(pw)} runs each:")
print(f"  {'tool':<18} {'wall s':>8} {'reports/s':>10} {'peak RSS MB':>12}   runs (wall s)")
for name, w, r in (("parsedmarc " + sys.argv[5].split()[-1], pw, pr), ("dmarcdb", dw, dr)):
    print(f"  {name:<18} {m(w):>8.2f} {reports / m(w):>10.0f} {m(r):>12.1f}   {' '.join(f'{x:.2f}' for x in w)}")
print(f"  ratio parsedmarc/dmarcdb: wall {m(pw) / m(dw):.1f}x, peak RSS {m(pr) / m(dr):.1f}x")
EOF
