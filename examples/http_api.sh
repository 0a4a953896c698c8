#!/usr/bin/env bash
# Post a task to Tickr's HTTP API with curl, and read its result back.
#
#   TICKR_REDIS_URL=redis://127.0.0.1:6379/0 bash examples/http_api.sh
#
# It starts `tickr web` (with a token file of one token) and `tickr worker` for the
# handlers of examples/http_handlers.py, submits a "greet" task, long-polls its result,
# and stops both.  Settings: TICKR_REDIS_URL (default: the local Redis), TICKR_NAMESPACE
# (default tickr), TICKR_WEB_PORT (default 8080), PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")"

python=${PYTHON:-python3}
port=${TICKR_WEB_PORT:-8080}
common=(--url "${TICKR_REDIS_URL:-redis://127.0.0.1:6379/0}" --namespace "${TICKR_NAMESPACE:-tickr}")
api="http://127.0.0.1:$port/api/v1"

# A token: the file keeps only its SHA-256; the client presents the secret.
secret=$("$python" -c 'import secrets; print(secrets.token_urlsafe(24))')
digest=$(printf %s "$secret" | "$python" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
tokens=$(mktemp)
cat > "$tokens" <<TOML
[[token]]
name = "example"
sha256 = "$digest"
scopes = ["tasks:submit", "tasks:read", "payload:read"]
TOML

"$python" -m tickr web "${common[@]}" --port "$port" --token-file "$tokens" --no-access-log --log-level warning &
web=$!
"$python" -m tickr worker http_handlers:mux "${common[@]}" --log-level warning &
worker=$!
trap 'kill "$web" "$worker" 2>/dev/null; wait; rm -f "$tokens"' EXIT

curl --silent --fail --retry 50 --retry-delay 1 --retry-connrefused "http://127.0.0.1:$port/readyz" > /dev/null
echo "tickr web is ready on port $port"

# Submit: 201 and the task as JSON.  An Idempotency-Key makes a retry of this request safe.
created=$(curl --silent --show-error --fail \
  -H "Authorization: Bearer $secret" \
  -H "Content-Type: application/json" \
  -H "Idempotency-Key: greet-ada-1" \
  -d '{"type": "greet", "payload": {"name": "Ada"}, "retention": 300}' \
  "$api/queues/default/tasks")
echo "submitted: $created"
task_id=$(printf %s "$created" | "$python" -c 'import json, sys; print(json.load(sys.stdin)["id"])')

# The result: this waits up to 30 s for the task to complete (202 if it is not done by then).
result=$(curl --silent --show-error --fail \
  -H "Authorization: Bearer $secret" \
  "$api/queues/default/tasks/$task_id/result?wait=30")
echo "result: $result"
