#!/usr/bin/env bash
# TLS and authentication against the fake cluster (HTTPS, test CA, bearer token). Before any
# task starts, mflow makes one request per namespace, so a kubeconfig that cannot work ends the
# run at once with exit 5 (Kubernetes API error) and a message that says what to fix:
#   a CA that did not sign the server's certificate  certificate verification failed
#   a token the server does not accept               authentication failed (HTTP 401)
# A 401 that only comes at Job creation (credentials revoked during the run) fails that task.
. "$(dirname "$0")/common.inc"
. "$SRC/test/e2e/kube.inc"

cat > flow.yaml <<YAML
name: tls
steps:
  start:
    run: echo "start ran" >> "$T/marks"
    next: end
  end:
    run: echo "end ran" >> "$T/marks"
YAML
good=$KUBECONFIG
# `quick CODE SECONDS CMD...`: CMD exits with CODE within SECONDS.
quick() {
  local want=$1 limit=$2 t0; shift 2
  t0=$(date +%s)
  expect_code "$want" "$@" || { cat err.txt >&2; return 1; }
  local took=$(( $(date +%s) - t0 ))
  [ "$took" -le "$limit" ] || { echo "took ${took}s, expected at most ${limit}s: $*" >&2; return 1; }
}

# The unrelated CA minted by mkcerts.sh: the handshake is refused, no request gets through.
"$FAKE/kubeconfig.sh" --server "$URL" --ca "$T/kube/certs/other-ca.crt" --token e2e-token \
  --name wrong-ca > wrong-ca.config
KUBECONFIG=$T/wrong-ca.config quick 5 10 "$MFLOW" run flow.yaml --with kubernetes > out.txt 2> err.txt
contains err.txt "TLS certificate verification of $URL failed"
contains err.txt "certificate verify failed: unable to get local issuer certificate"
contains err.txt "fix certificate-authority in the kubeconfig"
contains err.txt "wrong-ca"          # the context (and file) whose CA is wrong
not grep -q "task starting" err.txt
grep -q "TLS handshake failed" "$T/kube/state/requests.log"
# kubectl, an independent client, refuses the same kubeconfig.
not kubectl --kubeconfig wrong-ca.config get jobs > /dev/null 2>&1

# A token the server does not know: 401, reported as an authentication failure.
"$FAKE/kubeconfig.sh" --server "$URL" --ca "$T/kube/certs/ca.crt" --token not-the-token \
  --name wrong-token > wrong-token.config
KUBECONFIG=$T/wrong-token.config quick 5 10 "$MFLOW" run flow.yaml --with kubernetes > out.txt 2> err.txt
contains err.txt "authentication failed: the credentials of context \"wrong-token\""
contains err.txt "HTTP 401"
not grep -q "task starting" err.txt
test "$(stat_value "['jobs']['created']")" = 0
test ! -e marks

# The right kubeconfig: the same flow runs, so the CA and the token were the only problem.
KUBECONFIG=$good quick 0 60 "$MFLOW" run flow.yaml --with kubernetes > out.txt 2> err.txt
test "$(cat marks)" = "start ran
end ran"
rm marks

# Credentials revoked after the preflight: the Job create answers 401. A static token cannot
# be refreshed, so the task fails (exit 1) saying authentication failed; nothing was created.
fake POST /_fake/stats/reset > /dev/null
fake POST /_fake/faults '{"verb": "create", "resource": "jobs", "action": "401", "count": -1}' > /dev/null
KUBECONFIG=$good quick 1 30 "$MFLOW" run flow.yaml --with kubernetes > out.txt 2> err.txt
contains err.txt "cannot create jobs"
contains err.txt "HTTP 401"
contains err.txt "authentication failed"
test "$(stat_value "['requests']['create jobs']")" = 1   # a 401 with a static token is not retried
test "$(stat_value "['jobs']['created']")" = 0
test ! -e marks
fake DELETE /_fake/faults > /dev/null
