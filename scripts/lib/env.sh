# shellcheck shell=bash
# Shared by scripts/stack.sh and scripts/load-voters.sh (sourced, not run).
#
# Loads the stack configuration: variables already in the environment win,
# then KEY=VALUE lines of $REPO_ROOT/.env (or $STACK_ENV_FILE), then the
# defaults below. .env is parsed, not sourced, so it can hold no code.

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Set NAME to VALUE only if NAME is not set yet (environment wins).
_env_default() {
  if [[ -z "${!1+x}" ]]; then
    export "$1=$2"
  fi
}

load_stack_env() {
  local file=${STACK_ENV_FILE:-$REPO_ROOT/.env} line key val
  if [[ -f "$file" ]]; then
    while IFS= read -r line || [[ -n "$line" ]]; do
      line=${line%$'\r'}
      [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
      line=${line#"${line%%[![:space:]]*}"}   # strip leading blanks
      line=${line#export }
      if [[ ! "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]]; then
        echo "warning: $file: ignoring line: $line" >&2
        continue
      fi
      key=${BASH_REMATCH[1]}
      val=${BASH_REMATCH[2]}
      # strip one pair of surrounding quotes
      if [[ "$val" =~ ^\"(.*)\"$ || "$val" =~ ^\'(.*)\'$ ]]; then
        val=${BASH_REMATCH[1]}
      fi
      _env_default "$key" "$val"
    done <"$file"
  fi

  _env_default RABBITMQ_HOST 127.0.0.1
  _env_default RABBITMQ_PORT 5672
  _env_default RABBITMQ_USER guest
  _env_default RABBITMQ_PASS guest
  _env_default RABBITMQ_VHOST /
  _env_default REDIS_HOST 127.0.0.1
  _env_default REDIS_PORT 6379
  _env_default REDIS_DB 0
  _env_default REDIS_PASSWORD ""
  _env_default POSTGRES_HOST 127.0.0.1
  _env_default POSTGRES_PORT 5432
  _env_default POSTGRES_DB election
  _env_default POSTGRES_USER election
  _env_default POSTGRES_PASSWORD election
}

# redis-cli against the configured server; the password goes through the
# environment (REDISCLI_AUTH), never the command line.
rcli() {
  if [[ -n "${REDIS_PASSWORD:-}" ]]; then
    REDISCLI_AUTH=$REDIS_PASSWORD redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"
  else
    redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"
  fi
}
