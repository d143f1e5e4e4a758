#!/bin/sh
# Harness self-test (both tiers): the payload's tools work in the guest, as the agent scenarios
# use them against /healthz and /pods: jq (the host's, run through the copied glibc loader) and
# HTTP on loopback (lib.sh's http, served here by busybox httpd).
. ./lib.sh
check tools_jq '[ "$(echo "{\"items\":[{\"a\":1},{\"a\":2}]}" | jq ".items | length")" = 2 ]'
mkdir -p /tmp/www; echo ok > /tmp/www/healthz
busybox httpd -f -p 127.0.0.1:10250 -h /tmp/www & httpd=$!
check tools_http_loopback 'wait_for 5 healthz_ok'
kill $httpd
finish
