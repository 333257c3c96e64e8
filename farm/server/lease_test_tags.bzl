"""Tags of the tests whose members renew real-time leases at SCHED_FIFO.

LEASE_PRIORITY_TAGS: for a test that runs farmd processes (or machines and
clients in its own process) on leases of 1-3 s. Bazel's linux-sandbox runs a
test in a user namespace, which refuses SCHED_FIFO and nice to the lease
threads and the CM (PrioritizeLeaseThread, cm_channel.h); at normal priority a
loaded host (load 12-16 on 2 cores) delays renewals past the lease and the CM
removes live machines, failing the test (farm/README.md, "Leases under CPU
load"). "no-sandbox" runs it as the user Bazel runs as, so a test tagged so
writes only under TEST_TMPDIR, binds port 0 and stops what it started, also
when it fails (ChildProcess: SIGTERM when destroyed, SIGKILL when the test
dies; a shell test's EXIT trap).

Example:
    load("//farm/server:lease_test_tags.bzl", "LEASE_PRIORITY_TAGS")
    cc_test(name = "farmd_x_test", tags = LEASE_PRIORITY_TAGS + ["no_tsan"], ...)
"""

LEASE_PRIORITY_TAGS = ["no-sandbox"]
