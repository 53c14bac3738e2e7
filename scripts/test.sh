#!/usr/bin/env bash
# The README's second command: the whole test suite, from a fresh machine.
#
# Runs every test target: unit tests, the broken-workspace corpus, the CLI and engine tests,
# the parser property tests and the lab tests. The lab tests need root; they install what
# they need themselves (apt-get: Samba AD, OpenSSH, debootstrap, …) and cache the
# debootstrap tree under $PARC_CACHE (default .cache/, git-ignored).
# The last line is the total over all targets: "summary: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/pxe-deps.sh || exit 1

# What the image tests use on the host (the lab installs its own packages).
scripts/ensure-packages.sh fdisk e2fsprogs util-linux mount zstd iproute2 debootstrap || exit 1
# The console's browser test (tests/console_browser.rs) drives a headless Chromium.
scripts/ensure-packages.sh chromium || exit 1
# The PostgreSQL tests (tests/journal_pg.rs, audit_pg.rs, fleet_pg.rs) start a throwaway cluster from it.
scripts/ensure-packages.sh postgresql || exit 1

# The VM tests put the debug parc-agent in the boot environment (sha2 and zstd are optimised
# even in dev builds, see Cargo.toml); PARC_PXE_AGENT=PATH makes them use another build.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --all-features --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# Standard harness lines ("test result: ok. 12 passed; 0 failed; …") and the lab harnesses'
# own summary lines ("lab_ssh: 21 cases + teardown check, 0 failed; …").
awk '
  /^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
  /^[a-z_]+: [0-9]+ cases/ { n = $2; split($0, a, ", "); for (k in a) if (a[k] ~ /^[0-9]+ failed/) { split(a[k], b, " "); f += b[1]; n -= b[1] } p += n }
  END { printf "summary: %d passed, %d failed\n", p, f }
' "$log"
exit "$status"
