#!/usr/bin/env bash
# Query/Retrieve benchmark: pacsbox vs Orthanc vs DCMTK dcmqrscp on a loaded archive.
# Adapted from /work/shared/bench/query_bench.sh (adds the pacsbox peer, DCMTK tools by
# absolute path, hyperfine for C-FIND latencies, UID-level match checks, phases).
#
#   query.sh [options]
#     -p "pacsbox orthanc dcmqrscp"  peers: peers.sh names, or ext:NAME:AET:PORT:PID:STORAGE_DIR (running, loaded)
#     -c q10k         load corpus (gen_corpus.py dir under $CORPUS_ROOT), stored via C-STORE, chunked by study
#     -R retr500L     retrieval corpus (one study, loaded after -c; C-MOVEd / C-GOT back)
#     -k 25           studies per load chunk (storescu process per chunk, 1 association)
#     -b 1800         load budget per peer in seconds (stops after the chunk that crosses it)
#     -n 20           C-FIND runs per query and peer (split in -N rounds, peer order rotated per round)
#     -N 2            rounds for the C-FIND latencies (interleaving)
#     -r 3            retrieve repetitions (peer order rotated)
#     -P "load query retrieve"   phases to run (also: wire = server-side C-FIND time, find_wire.py; inproc = on one pynetdicom
#                     association, INPROC_N=50 per query); without "load" the peers must be running and loaded
#     -K              keep the peers running at exit (to run the next phase later)
#     -o DIR          output dir (default $BENCH_ROOT/results/query-<stamp>; reuse it across phases)
#   Output: DIR/{load.tsv, hf-<query>-<round>.json, matches.tsv, retrieve.tsv, summary.md, log.txt}
#
# The pacsbox peer is $PACSBOX_BIN (default $BENCH_ROOT/bin/pacsbox-qr, a copy: others rebuild
# target/) started by peers.sh with --config $BENCH_ROOT/run/pacsbox-qr.toml, which declares the
# C-MOVE destination DEST (storescp, peers.sh "dest"). Latencies are the wall time of one
# findscu process (spawn + association + query + release), hyperfine -N; the echoscu row is the
# floor for that overhead. TCP_NODELAY=1 for every DCMTK client and server (Nagle trap, README).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export BENCH_ROOT=${BENCH_ROOT:-/var/tmp/pacsbench}
CORPUS_ROOT=${CORPUS_ROOT:-$BENCH_ROOT/corpus}
export PACSBOX_BIN=${PACSBOX_BIN:-$BENCH_ROOT/bin/pacsbox-qr}
PCFG=$BENCH_ROOT/run/pacsbox-qr.toml
export PACSBOX_ARGS="${PACSBOX_ARGS:-} --config $PCFG"
export DCMQR_MAX_STUDIES=${DCMQR_MAX_STUDIES:-2000}
PEERS="pacsbox orthanc dcmqrscp"; CORPUS=q10k; RETR=retr500L; BUDGET=1800; CHUNK=25; NRUN=20; NROUND=2
NRET=3; PHASES="load query retrieve"; KEEP=0; OUTD=""
while getopts "p:c:R:k:b:n:N:r:P:Ko:" o; do case $o in
  p) PEERS=$OPTARG;; c) CORPUS=$OPTARG;; R) RETR=$OPTARG;; k) CHUNK=$OPTARG;; b) BUDGET=$OPTARG;;
  n) NRUN=$OPTARG;; N) NROUND=$OPTARG;; r) NRET=$OPTARG;; P) PHASES=$OPTARG;; K) KEEP=1;; o) OUTD=$OPTARG;;
  *) sed -n '2,25p' "$0"; exit 2;; esac; done
export TCP_NODELAY=1
DEST_PORT=${DEST_PORT:-11115}
BIN=/usr/bin   # pynetdicom's Python findscu/storescu/... shadow DCMTK's in PATH
OUTD=${OUTD:-$BENCH_ROOT/results/query-$(date +%Y%m%d-%H%M%S)}; mkdir -p "$OUTD"
log() { echo "[$(date +%T)] $*" | tee -a "$OUTD/log.txt" >&2; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
has() { [[ " $PHASES " == *" $1 "* ]]; }

mkdir -p "$BENCH_ROOT/run"
DEST_PORT=$DEST_PORT "$HERE/peers.sh" qr-config >"$PCFG"

declare -A AET PORT PID SDIR
resolve() {  # peers.sh name, or ext:NAME:AET:PORT:PID:STORAGE_DIR (already running and loaded; never started/stopped/loaded here)
  local a b c d
  if [[ $1 == ext:* ]]; then IFS=: read -r _ _ a b c d <<<"$1"; else read -r a b c d < <("$HERE/peers.sh" info "$1"); d=$d/storage; fi
  AET[$1]=$a; PORT[$1]=$b; PID[$1]=$c; SDIR[$1]=$d
}
pname() { if [[ $1 == ext:* ]]; then cut -d: -f2 <<<"$1"; else echo "$1"; fi; }
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo -1; }
hwm() { awk '/VmHWM/{print $2}' "/proc/$1/status" 2>/dev/null || echo -1; }
cleanup() { "$HERE/peers.sh" stop dest; ((KEEP)) || for p in $PEERS; do [[ $p == ext:* ]] || "$HERE/peers.sh" stop "$p"; done; }
trap cleanup EXIT INT TERM
log "phases '$PHASES' peers '$PEERS' corpus $CORPUS retr $RETR pacsbox $PACSBOX_BIN ($(cat "$PACSBOX_BIN.source.txt" 2>/dev/null))"
log "load average $(cut -d' ' -f1-3 /proc/loadavg); index_scale running: $(pgrep -f index_scale >/dev/null && echo YES || echo no)"

# ---------------------------------------------------------------- load (real C-STORE path)
if has load; then
  echo -e "peer\tchunk\tinstances_total\tchunk_inst\tchunk_s\tinst_s\trss_kb\tdisk_kb" >"$OUTD/load.tsv"
  studies=("$CORPUS_ROOT/$CORPUS"/s*/)
  for p in $PEERS; do
    [[ $p == ext:* ]] && continue
    "$HERE/peers.sh" start "$p" | tee -a "$OUTD/log.txt"
    resolve "$p"; t_start=$(date +%s); total=0; ch=0
    for ((i = 0; i < ${#studies[@]}; i += CHUNK)); do
      part=("${studies[@]:i:CHUNK}"); n=$(find "${part[@]}" -name '*.dcm' | wc -l)
      t0=$(date +%s%N)
      timeout 1800 $BIN/storescu -aet BENCHSCU -aec "${AET[$p]}" +sd +r -nh 127.0.0.1 "${PORT[$p]}" "${part[@]}" >>"$OUTD/load-$p.log" 2>&1
      dt=$(ms_since "$t0"); total=$((total + n)); ch=$((ch + 1))
      echo -e "$p\t$ch\t$total\t$n\t$(awk "BEGIN{print $dt/1000}")\t$(awk "BEGIN{printf \"%.1f\", $n*1000/$dt}")\t$(rss "${PID[$p]}")\t$(du -sk "${SDIR[$p]}" | cut -f1)" | tee -a "$OUTD/load.tsv"
      (($(date +%s) - t_start < BUDGET)) || { log "$p: load budget ${BUDGET}s reached after $total instances"; break; }
    done
    timeout 600 $BIN/storescu -aet BENCHSCU -aec "${AET[$p]}" +sd +r -nh 127.0.0.1 "${PORT[$p]}" "$CORPUS_ROOT/$RETR"/s*/ >>"$OUTD/load-$p.log" 2>&1
    log "$p: loaded $total + $RETR; storescu error lines: $(grep -ciE 'error|fail' "$OUTD/load-$p.log"); RSS after load $(rss "${PID[$p]}") kB, HWM $(hwm "${PID[$p]}") kB"
    # restart on the populated storage: startup time and idle RSS
    "$HERE/peers.sh" stop "$p"; sync
    read -r _ _ _ _ st < <("$HERE/peers.sh" start "$p" --keep); resolve "$p"; sleep 2
    log "$p: restart with populated index: ${st} ms to C-ECHO; idle RSS $(rss "${PID[$p]}") kB"
    echo -e "$p\trestart\t$total\t0\t$(awk "BEGIN{print $st/1000}")\t-\t$(rss "${PID[$p]}")\t$(du -sk "${SDIR[$p]}" | cut -f1)" >>"$OUTD/load.tsv"
  done
fi
for p in $PEERS; do resolve "$p"; kill -0 "${PID[$p]}" 2>/dev/null || { log "$p is not running"; exit 1; }; done
if [[ " $PEERS " == *" pacsbox "* ]]; then
  curl -s "http://127.0.0.1:${PACSBOX_HTTP:-8080}/status.json" >"$OUTD/pacsbox-status-$(date +%H%M%S).json" || true
fi

# ---------------------------------------------------------------- query keys from the manifest
M=$CORPUS_ROOT/$CORPUS/manifest.tsv
PID_KEY=$(awk -F'\t' 'NR==24{print $3}' "$M")
read -r S_UID SE_UID < <(awk -F'\t' 'NR==57{split($8,a,","); print $2, a[2]}' "$M")
R_UID=$(awk -F'\t' 'NR==1{print $2}' "$CORPUS_ROOT/$RETR/manifest.tsv")
R_BYTES=$(find "$CORPUS_ROOT/$RETR" -name '*.dcm' -printf '%s\n' | awk '{s+=$1}END{print s}')
R_FILES=$(find "$CORPUS_ROOT/$RETR" -name '*.dcm' | wc -l)
DATE_RANGE=${DATE_RANGE:-20200101-20201231}
log "keys: PatientID=$PID_KEY study=$S_UID series=$SE_UID StudyDate=$DATE_RANGE retrieve study=$R_UID ($R_FILES files, $R_BYTES bytes)"
# expected from the manifest (load corpus + retrieval study)
{
  echo -e "query\texpected"
  echo -e "study_by_pid\t$(cat "$M" "$CORPUS_ROOT/$RETR/manifest.tsv" | awk -F'\t' -v k="$PID_KEY" '$3==k' | wc -l)"
  echo -e "study_by_name\t$(cat "$M" "$CORPUS_ROOT/$RETR/manifest.tsv" | awk -F'\t' '$4 ~ /^DOE/' | wc -l)"
  echo -e "study_by_date\t$(cat "$M" "$CORPUS_ROOT/$RETR/manifest.tsv" | awk -F'\t' -v r="$DATE_RANGE" 'BEGIN{split(r,a,"-")} $5>=a[1] && $5<=a[2]' | wc -l)"
  echo -e "image_in_series\t$(find "$CORPUS_ROOT/$CORPUS/$(awk -F'\t' 'NR==57{print $1}' "$M")/se02" -name '*.dcm' | wc -l)"
} >"$OUTD/expected.tsv"

QUERIES="echo study_by_pid study_by_name study_by_date image_in_series"
qargs() {  # query aet port -> the tool command line (no shell quoting needed: hyperfine -N)
  local q=$1 aet=$2 port=$3
  local F="$BIN/findscu -S -aet BENCHSCU -aec $aet"
  case $q in
    echo)            echo "$BIN/echoscu -aet BENCHSCU -aec $aet 127.0.0.1 $port" ;;
    study_by_pid)    echo "$F -k QueryRetrieveLevel=STUDY -k StudyInstanceUID -k PatientName -k PatientID=$PID_KEY -k StudyDate -k AccessionNumber -k StudyDescription 127.0.0.1 $port" ;;
    study_by_name)   echo "$F -k QueryRetrieveLevel=STUDY -k StudyInstanceUID -k PatientName=DOE* -k PatientID -k StudyDate -k AccessionNumber -k StudyDescription 127.0.0.1 $port" ;;
    study_by_date)   echo "$F -k QueryRetrieveLevel=STUDY -k StudyInstanceUID -k PatientName -k PatientID -k StudyDate=$DATE_RANGE -k AccessionNumber -k StudyDescription 127.0.0.1 $port" ;;
    image_in_series) echo "$F -k QueryRetrieveLevel=IMAGE -k StudyInstanceUID=$S_UID -k SeriesInstanceUID=$SE_UID -k SOPInstanceUID -k InstanceNumber -k SOPClassUID 127.0.0.1 $port" ;;
  esac
}

if has query; then
  # match check: run each query once per peer with -v, compare the returned UID sets
  echo -e "peer\tquery\tmatches\tuid_set_md5\tstatus_lines" >"$OUTD/matches.tsv"
  for q in $QUERIES; do [[ $q == echo ]] && continue; for p in $PEERS; do
    f=$OUTD/find-$(pname "$p")-$q.txt
    # shellcheck disable=SC2046
    timeout 120 $(qargs "$q" "${AET[$p]}" "${PORT[$p]}" | sed 's/findscu -S/findscu -v -S/') >"$f" 2>&1
    n=$(grep -ac "Find Response.*Pending" "$f")
    tag=$([[ $q == image_in_series ]] && echo "(0008,0018)" || echo "(0020,000d)")
    md5=$(grep -aF "$tag" "$f" | grep -aF '[' | sed 's/.*\[\([^]]*\)\].*/\1/; s/[[:space:][:cntrl:]]*$//' | sort | tee "$f.uids" | md5sum | cut -c1-8)
    echo -e "$(pname "$p")\t$q\t$n\t$md5\t$(grep -aE 'Find Response.*\((Success|Failure|Cancel|Refused|Error)|E: ' "$f" | tr '\n' ' ' | head -c 200)" | tee -a "$OUTD/matches.tsv"
  done; done
  # latencies: NROUND rounds, each a hyperfine over all peers (order rotated), NRUN/NROUND runs each
  per=$((NRUN / NROUND))
  read -ra peers_arr <<<"$PEERS"
  for ((r = 1; r <= NROUND; r++)); do
    rot=$(((r - 1) % ${#peers_arr[@]}))
    order=("${peers_arr[@]:rot}" "${peers_arr[@]:0:rot}")
    for q in $QUERIES; do
      cmds=(); names=()
      for p in "${order[@]}"; do cmds+=("$(qargs "$q" "${AET[$p]}" "${PORT[$p]}")"); names+=(-n "$(pname "$p")"); done
      log "round $r $q: ${order[*]} (load $(cut -d' ' -f1 /proc/loadavg), index_scale $(pgrep -f index_scale >/dev/null && echo RUNNING || echo no))"
      hyperfine -N -w 2 -r "$per" "${names[@]}" --export-json "$OUTD/hf-$q-$r.json" "${cmds[@]}" >>"$OUTD/hyperfine.log" 2>&1 \
        || log "hyperfine failed for $q round $r (see hyperfine.log)"
    done
  done
  for p in $PEERS; do log "$(pname "$p"): RSS after queries $(rss "${PID[$p]}") kB, HWM $(hwm "${PID[$p]}") kB"; done
fi

# ---------------------------------------------------------------- inproc: server-side C-FIND time
# One pynetdicom association per peer, each query INPROC_N times on it (peers interleaved per
# repetition): time from C-FIND request to final response, without tool start or association.
if has inproc; then
  args=(); for p in $PEERS; do args+=("$(pname "$p"):${AET[$p]}:${PORT[$p]}"); done
  python3 - "$OUTD" "${INPROC_N:-50}" "$PID_KEY" "$DATE_RANGE" "$S_UID" "$SE_UID" "${args[@]}" <<'PYEOF' | tee -a "$OUTD/inproc.md"
import sys, time, statistics as st
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND
outd, n, pid, dr, suid, seuid = sys.argv[1], int(sys.argv[2]), *sys.argv[3:7]
peers = [a.split(":") for a in sys.argv[7:]]
def q(kind):
    ds = Dataset()
    if kind == "image_in_series":
        ds.QueryRetrieveLevel = "IMAGE"; ds.StudyInstanceUID = suid; ds.SeriesInstanceUID = seuid
        ds.SOPInstanceUID = ""; ds.InstanceNumber = ""; ds.SOPClassUID = ""; return ds
    ds.QueryRetrieveLevel = "STUDY"
    for k in ("StudyInstanceUID", "PatientName", "PatientID", "StudyDate", "AccessionNumber", "StudyDescription"): setattr(ds, k, "")
    if kind == "study_by_pid": ds.PatientID = pid
    if kind == "study_by_name": ds.PatientName = "DOE*"
    if kind == "study_by_date": ds.StudyDate = dr
    return ds
ae = AE(ae_title="BENCHSCU"); ae.add_requested_context(FIND)
assocs = {name: ae.associate("127.0.0.1", int(port), ae_title=aet) for name, aet, port in peers}
import socket  # pynetdicom leaves Nagle on: with it, each C-FIND waits for a delayed ACK (~40 ms)
for a in assocs.values(): a.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
QS = ["study_by_pid", "study_by_name", "study_by_date", "image_in_series"]
t = {(k, name): [] for k in QS for name, _, _ in peers}; cnt = {}
for r in range(n + 3):
    for k in QS:
        order = peers[r % len(peers):] + peers[:r % len(peers)]
        for name, _, _ in order:
            t0 = time.perf_counter(); m = 0
            for status, ident in assocs[name].send_c_find(q(k), FIND):
                if status and status.Status in (0xFF00, 0xFF01): m += 1
            dt = (time.perf_counter() - t0) * 1000
            if r >= 3: t[(k, name)].append(dt)  # 3 warm-up rounds
            cnt[(k, name)] = m
for a in assocs.values(): a.release()
names = [p[0] for p in peers]
print(f"| query (in-process, {n} per peer, ms median (p95)) | " + " | ".join(names) + " | " + " | ".join(f"{a} ÷ {b}" for a in names if a.startswith("pacsbox") for b in names if not b.startswith("pacsbox")) + " |")
print("|---|" + "---|" * (len(names) + sum(1 for a in names if a.startswith("pacsbox") for b in names if not b.startswith("pacsbox"))))
for k in QS:
    med = {nm: st.median(t[(k, nm)]) for nm in names}
    p95 = {nm: sorted(t[(k, nm)])[int(round(0.95 * (n - 1)))] for nm in names}
    print(f"| {k} | " + " | ".join(f"{med[nm]:.2f} ({p95[nm]:.2f}) [{cnt[(k, nm)]}]" for nm in names) + " | " +
          " | ".join(f"{med[a] / med[b]:.3f}" for a in names if a.startswith("pacsbox") for b in names if not b.startswith("pacsbox")) + " |")
PYEOF
fi

# ---------------------------------------------------------------- wire: C-FIND as the server sees it
# find_wire.py: one raw association per peer, responses not decoded (only each Status read), so
# neither tool start nor client-side decoding hides the server. WIRE_N runs + 3 warm-up per query.
if has wire; then
  args=(); for p in $PEERS; do args+=("$(pname "$p")=${AET[$p]}:${PORT[$p]}"); done
  R="StudyInstanceUID=;PatientName=;PatientID=;StudyDate=;AccessionNumber=;StudyDescription="
  python3 "$HERE/find_wire.py" -n "${WIRE_N:-20}" -w 3 --json "$OUTD/wire.json" "${args[@]}" -- \
    "study_by_pid|STUDY|$R;PatientID=$PID_KEY" \
    "study_by_name|STUDY|$R;PatientName=DOE*" \
    "study_by_date|STUDY|$R;StudyDate=$DATE_RANGE" \
    "image_in_series|IMAGE|StudyInstanceUID=$S_UID;SeriesInstanceUID=$SE_UID;SOPInstanceUID=;InstanceNumber=;SOPClassUID=" \
    | tee -a "$OUTD/wire.md"
fi

# ---------------------------------------------------------------- retrieve: C-MOVE to DEST, C-GET, storescu->storescp reference
if has retrieve; then
  echo -e "peer\top\trun\ts\tfiles\tbytes\tMB_s" >"$OUTD/retrieve.tsv"
  read -ra peers_arr <<<"$PEERS ref"
  for ((r = 1; r <= NRET; r++)); do
    rot=$(((r - 1) % ${#peers_arr[@]}))
    for p in "${peers_arr[@]:rot}" "${peers_arr[@]:0:rot}"; do
      for op in move get; do
        [[ $p == ref && $op == get ]] && continue
        ddir=$BENCH_ROOT/run/dest/storage
        if [[ $op == get ]]; then ddir=$BENCH_ROOT/run/getscu; rm -rf "$ddir"; mkdir -p "$ddir"
        else "$HERE/peers.sh" start dest >/dev/null; fi
        sync; t0=$(date +%s%N)
        if [[ $p == ref ]]; then op=storescu
          timeout 600 $BIN/storescu -aet BENCHSCU -aec DEST +sd +r 127.0.0.1 "$DEST_PORT" "$CORPUS_ROOT/$RETR"/s*/ >"$OUTD/ret-$(pname "$p")-$op-$r.log" 2>&1
        elif [[ $op == move ]]; then
          timeout 600 $BIN/movescu -v -S -aet BENCHSCU -aec "${AET[$p]}" -aem DEST -k QueryRetrieveLevel=STUDY -k "StudyInstanceUID=$R_UID" 127.0.0.1 "${PORT[$p]}" >"$OUTD/ret-$(pname "$p")-$op-$r.log" 2>&1
        else
          timeout 600 $BIN/getscu -v -S -aet BENCHSCU -aec "${AET[$p]}" -od "$ddir" -k QueryRetrieveLevel=STUDY -k "StudyInstanceUID=$R_UID" 127.0.0.1 "${PORT[$p]}" >"$OUTD/ret-$(pname "$p")-$op-$r.log" 2>&1
        fi
        rc=$?; dt=$((($(date +%s%N) - t0) / 1000000))
        sleep 0.3; nf=$(find "$ddir" -type f | wc -l); nb=$(find "$ddir" -type f -printf '%s\n' | awk '{s+=$1}END{print s+0}')
        [[ $op == get ]] || "$HERE/peers.sh" stop dest
        ((rc == 0)) || log "$p $op run $r: exit code $rc"
        echo -e "$(pname "$p")\t$op\t$r\t$(awk "BEGIN{print $dt/1000}")\t$nf\t$nb\t$(awk "BEGIN{printf \"%.1f\", $R_BYTES/1e6/($dt/1000)}")" | tee -a "$OUTD/retrieve.tsv"
      done
    done
  done
fi

for p in $PEERS; do
  [[ $p == pacsbox ]] && { cp "$BENCH_ROOT/run/pacsbox/log" "$OUTD/pacsbox.log"; log "pacsbox log WARN/ERROR lines: $(grep -cE 'WARN|ERROR' "$OUTD/pacsbox.log")"; }
done

# ---------------------------------------------------------------- summary
python3 - "$OUTD" "$R_FILES" "$(for p in $PEERS; do pname "$p"; done | xargs)" <<'EOF' | tee "$OUTD/summary.md"
import csv, glob, json, os, sys, statistics as st
from collections import defaultdict
d, rfiles, peers = sys.argv[1], sys.argv[2], sys.argv[3].split()
QS = ["echo", "study_by_pid", "study_by_name", "study_by_date", "image_in_series"]
t = defaultdict(list)
for f in glob.glob(f"{d}/hf-*.json"):
    q = os.path.basename(f)[3:].rsplit("-", 1)[0]
    for r in json.load(open(f))["results"]:
        t[(q, r["command"])] += [x * 1000 for x in r["times"]]
m = {}
if os.path.exists(f"{d}/matches.tsv"):
    for r in csv.DictReader(open(f"{d}/matches.tsv"), delimiter="\t"):
        m[(r["query"], r["peer"])] = f'{r["matches"]}/{r["uid_set_md5"]}'
exp = {}
if os.path.exists(f"{d}/expected.tsv"):
    exp = {r["query"]: r["expected"] for r in csv.DictReader(open(f"{d}/expected.tsv"), delimiter="\t")}
def p95(xs):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]
if t:
    others = [p for p in peers if p != "pacsbox"]
    print("| query | expected | " + " | ".join(f"{p} median ms (p95) [matches/uid-md5]" for p in peers) + " | " +
          " | ".join(f"pacsbox ÷ {o} (median time)" for o in others) + " |")
    print("|---|---|" + "---|" * (len(peers) + len(others)))
    for q in QS:
        cells, med = [], {}
        for p in peers:
            xs = t.get((q, p))
            if not xs: cells.append("-"); continue
            med[p] = st.median(xs)
            cells.append(f"{med[p]:.1f} ({p95(xs):.1f}) [{m.get((q, p), '-')}] n={len(xs)}")
        rat = [f"{med['pacsbox'] / med[o]:.2f}" if "pacsbox" in med and o in med else "-" for o in others]
        print(f"| {q} | {exp.get(q, '-')} | " + " | ".join(cells) + " | " + " | ".join(rat) + " |")
    print()
if os.path.exists(f"{d}/retrieve.tsv"):
    rr = defaultdict(list); nf = defaultdict(list)
    for r in csv.DictReader(open(f"{d}/retrieve.tsv"), delimiter="\t"):
        nf[(r["peer"], r["op"])].append(r["files"])
        if int(r["files"]) > 0: rr[(r["peer"], r["op"])].append(float(r["MB_s"]))  # failed runs: files column only
    ref = st.median(rr[("ref", "storescu")]) if ("ref", "storescu") in rr else None
    print(f"| retrieve one study ({rfiles} files) | MB/s median (runs) | ÷ storescu→storescp | files received |")
    print("|---|---|---|---|")
    for (p, op), xs in sorted(rr.items()):
        if not xs: continue
        print(f"| {p} {op} | {st.median(xs):.1f} ({', '.join(f'{x:.1f}' for x in xs)}) | {st.median(xs) / ref:.2f} | {','.join(nf[(p, op)])} |" if ref else f"| {p} {op} | {st.median(xs):.1f} | - | {','.join(nf[(p, op)])} |")
EOF
log "results in $OUTD"
