#!/usr/bin/env bash
# The fault campaign (issue 15): parc's reliability figures, measured the same way each time,
# as one table — case, tries, survived, data lost. Exits non-zero if anything was lost or
# did not survive.
#
#   scripts/faults.sh            # the full profile (about 25 min on 2 cores: 10 without the
#                                # lab), as root
#   scripts/faults.sh --short    # the short one (what scripts/test.sh runs through cargo test)
#   scripts/faults.sh --no-lab   # the full profile without the lab run (R1 in the lab, secrets)
#
#   PARC_FAULTS_SEED=N           # replay a campaign: kill points, flipped bits, network loop
#   PARC_FAULTS_PROPTEST_CASES=N # cases per parser property (full: 20000; the hour-long run:
#                                # see the header of tests/parser_props_io.rs)
#
# The cases: R1 crash anywhere, R2 corruption and a full store (tests/faults/main.rs); R3 the
# network cut, lossy or the agent killed mid-deploy (tests/faults_net.rs); bad input on the
# network (tests/net_abuse.rs: the endpoint's HTTP and TFTP, the agent's wire); the parsers
# (tests/parser_props*.rs); in the full profile, the lab's room (tests/e2e_room.rs: parc
# master SIGKILLed during install, capture and deploy on real VMs and resumed; the secrets
# watched in every command line and file). Root: the full store mounts a tmpfs, R3 makes
# namespaces, the lab its VMs. See docs/faults.md.
set -uo pipefail
cd "$(dirname "$0")/.."

profile=full
lab=yes
case "${1:-}" in
  --short) profile=short lab=no ;;
  --no-lab) lab=no ;;
  "") ;;
  *) echo "usage: scripts/faults.sh [--short|--no-lab]" >&2; exit 2 ;;
esac
seed=${PARC_FAULTS_SEED:-$(date +%s)}
if [ "$profile" = full ]; then
  rounds=15000
  cases=${PARC_FAULTS_PROPTEST_CASES:-20000}
  release=--release
else
  rounds=3000
  cases=${PARC_FAULTS_PROPTEST_CASES:-256}
  release=
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "faults: run as root (the full-store case mounts a tmpfs)" >&2
  exit 2
fi

log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
echo "fault campaign: $profile profile, seed $seed (PARC_FAULTS_SEED=$seed replays it)"

echo "== R1, R2, store full (tests/faults)"
PARC_FAULTS=$profile PARC_FAULTS_SEED=$seed cargo test $release -q --test faults 2>&1 |
  tee "$log/faults"
faults_status=${PIPESTATUS[0]}

echo "== R3 network: link cut, loss, agent killed mid-deploy (tests/faults_net)"
cargo test $release -q --test faults_net -- --nocapture 2>&1 | tee "$log/r3"
r3_status=${PIPESTATUS[0]}

echo "== bad input on the network (tests/net_abuse, $rounds rounds)"
PARC_ABUSE_SEED=$seed PARC_ABUSE_ROUNDS=$rounds cargo test $release -q --test net_abuse \
  -- --nocapture 2>&1 | tee "$log/net"
net_status=${PIPESTATUS[0]}

echo "== parsers (tests/parser_props, tests/parser_props_io, $cases cases per property)"
PROPTEST_CASES=$cases cargo test $release --test parser_props --test parser_props_io 2>&1 |
  tee "$log/parsers"
parsers_status=${PIPESTATUS[0]}

lab_status=0
if [ "$lab" = yes ]; then
  echo "== R1 in the lab and the secrets (tests/e2e_room: real VMs, about 15 min)"
  cargo test -q --test e2e_room -- --nocapture 2>&1 | tee "$log/lab"
  lab_status=${PIPESTATUS[0]}
fi

# The table: the campaign's own rows, then one row per other target.
rows=$(awk '/^case +tries/ { on = 1; next } on && /^[^ ]/ && NF >= 4 && $0 !~ /^faults:/ { print } /^faults:/ { on = 0 }' "$log/faults")
r3=$(sed -nE 's/^faults_net: ([0-9]+) tries, ([0-9]+) survived, ([0-9]+) lost.*/\1 \2 \3/p' "$log/r3" | tail -n1)
net_requests=$(sed -nE 's/^net_abuse: ([0-9]+) requests.*/\1/p' "$log/net" | tail -n1)
net_line=$(grep -E '^net_abuse: ' "$log/net" | tail -n1)
props=$(grep -cE '^test .* \.\.\. ok$' "$log/parsers")
props_failed=$(grep -cE '^test .* \.\.\. FAILED$' "$log/parsers")

echo
echo "fault campaign: $profile profile, seed $seed"
printf '%-40s %6s %9s %10s\n' case tries survived "data lost"
printf '%s\n' "$rows"
read -r r3_tries r3_survived r3_lost <<<"${r3:-? FAILED ?}"
printf '%-40s %6s %9s %10s\n' "R3 network (cut, loss, kill)" "$r3_tries" "$r3_survived" "$r3_lost"
if [ "$net_status" -eq 0 ]; then
  printf '%-40s %6s %9s %10s\n' "Bad input on the network" "${net_requests:-0}" "${net_requests:-0}" 0
else
  printf '%-40s %6s %9s %10s\n' "Bad input on the network" "${net_requests:-?}" FAILED "?"
fi
total_cases=$(( (props + props_failed) * cases ))
if [ "$parsers_status" -eq 0 ]; then
  printf '%-40s %6s %9s %10s\n' "Parsers ($props properties)" "$total_cases" "$total_cases" 0
else
  printf '%-40s %6s %9s %10s\n' "Parsers ($props_failed of $((props + props_failed)) failed)" "$total_cases" FAILED "?"
fi
[ -n "$net_line" ] && echo "    $net_line"
if [ "$lab" = yes ]; then
  kills=$(grep -c 'SIGKILLed after' "$log/lab")
  scans=$(sed -nE 's/^e2e: secrets: .* ([0-9]+) hits in ([0-9]+) process command lines.*/\2/p' "$log/lab" | tail -n1)
  hits=$(sed -nE 's/^e2e: secrets: .* ([0-9]+) hits in.*/\1/p' "$log/lab" | tail -n1)
  if [ "$lab_status" -eq 0 ]; then
    printf '%-40s %6s %9s %10s\n' "R1 crash in the lab (SIGKILL, real VMs)" "$kills" "$kills" 0
    printf '%-40s %6s %9s %10s\n' "Secrets (command lines, files)" "${scans:-?}" "${scans:-?}" "${hits:-?}"
  else
    printf '%-40s %6s %9s %10s\n' "R1 crash in the lab (SIGKILL, real VMs)" "$kills" FAILED "?"
  fi
  grep -E '^e2e: .*(SIGKILLed after|secrets:)' "$log/lab" | sed 's/^/    /'
else
  printf '%-40s %6s %9s %10s\n' "R1 in the lab, secrets" - "NOT RUN" -
fi

status=0
for s in "$faults_status" "$r3_status" "$net_status" "$parsers_status" "$lab_status"; do
  [ "$s" -eq 0 ] || status=1
done
echo "faults: $([ "$status" -eq 0 ] && echo "nothing lost" || echo "SOMETHING WAS LOST OR DID NOT SURVIVE")"
exit "$status"
