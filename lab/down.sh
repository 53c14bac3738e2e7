#!/usr/bin/env bash
# Tears the lab down and always succeeds: kills every process inside a lab namespace (by PID:
# Samba's helpers re-parent to PID 1), deletes the namespaces (the workstations' mounts die
# with their mount namespaces), removes the per-run state (keeps host keys), then checks
# that no namespace, process or mount of the lab is left and says so.
source "$(dirname "$0")/lib.sh"
set +e
for round in 1 2 3 4 5 6 7 8 9 10; do
  pids=$(for ns in $(lab_namespaces); do ip netns pids "$ns"; done)
  [ -z "$pids" ] && break
  sig=TERM; [ $round -gt 3 ] && sig=KILL
  kill -s $sig $pids 2>/dev/null
  sleep 0.3
done
for ns in $(lab_namespaces); do ip netns del "$ns" 2>/dev/null; done
rm -rf "$LAB_DIR/hosts" "$LAB_DIR/dc" "$LAB_DIR/lab.env" "$LAB_DIR/secrets" "$LAB_DIR/access" "$LAB_DIR"/dhcp-*

left=0
[ -n "$(lab_namespaces)" ] && { say "namespaces left: $(lab_namespaces | tr '\n' ' ')"; left=1; }
# any process whose mounts or command line mention the lab folder (an overlay still mounted
# somewhere, a server still running)
# (the list is made before grep starts, so grep's own command line is not in it)
procs=(/proc/[0-9]*/mountinfo /proc/[0-9]*/cmdline)
m=$(grep -lsaF "$LAB_DIR/" "${procs[@]}" | head -n3 | tr '\n' ' ')
[ -n "$m" ] && { say "processes of the lab left: $m"; left=1; }
if [ $left = 0 ]; then say "down: no lab namespace, process or mount left"; else say "down: leftovers (see above)"; fi
exit 0
