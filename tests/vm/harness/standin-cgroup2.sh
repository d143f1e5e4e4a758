#!/bin/sh
# Harness self-test (busybox tier, no agent): the stand-in agent, started in its own cgroup as a
# service manager would, moves into a leaf, enables controllers for its children, creates a pod
# cgroup with limits and a container process in it, then tears it all down.
. ./lib.sh
svc=$CG/standin.service
mkdir -p $svc
check standin_check 'sh -c "echo 0 > $svc/cgroup.procs; exec ./bin/mkl-standin --check"'
empty() { [ -z "$(procs_tree $svc)" ]; }
check standin_cleaned 'wait_for 5 empty'
finish
