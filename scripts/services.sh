#!/usr/bin/env bash
# Local servers for tests and the demo, all on 127.0.0.1, no Docker:
#   Kafka 4.x (KRaft, single node, jars from Maven Central via services/kafka/pom.xml)
#   VictoriaMetrics (Debian `victoria-metrics`; accepts InfluxDB /api/v2/write)
#   InfluxDB 1.x   (Debian `influxdb`; InfluxQL for the dashboards)
#   Alertmanager   (Debian `prometheus-alertmanager`; `drift-monitor alerts forward` posts to it)
#
# Usage: scripts/services.sh up|down|status [kafka|vm|influx|alertmanager ...]
#   up      install what is missing (apt-get, mvn), start what is not answering,
#           wait until ready, create Kafka topics and the InfluxDB database.
#           Idempotent: a server that already answers on its port is left alone.
#   down    stop the servers this script started (pid files), TERM then KILL.
#   status  say which servers answer (exit 1 if any is down).
# With no service names, all four are handled.
#
# Environment (defaults in brackets):
#   SERVICES_DIR          data, logs, pid files            [<repo>/.services]
#   KAFKA_PORT            Kafka PLAINTEXT listener          [9092]
#   KAFKA_CONTROLLER_PORT Kafka KRaft CONTROLLER listener   [9093]
#   KAFKA_SASL_PORT       Kafka SASL_SSL listener (SCRAM-SHA-512, TLS) [9094]
#   KAFKA_SASL_USER       SCRAM user created for it         [drift]
#   KAFKA_HEAP_OPTS       broker JVM heap                   [-Xms256m -Xmx1g]
#   KAFKA_CLUSTER_ID      cluster id used by the one-time storage format
#   DRIFT_MONITOR_PREDICTIONS_TOPIC [predictions]   (4 partitions)
#   DRIFT_MONITOR_DLQ_TOPIC         [predictions-dlq] (1 partition)
#   DRIFT_MONITOR_ALERTS_TOPIC      [drift-alerts]  (1 partition)
#   VM_PORT               VictoriaMetrics HTTP              [8428]
#   INFLUX_PORT           InfluxDB 1.x HTTP                 [8086]
#   INFLUX_RPC_PORT       InfluxDB 1.x backup/restore RPC   [8088]
#   INFLUX_DB             database created in InfluxDB 1.x  [drift]
#   ALERTMANAGER_PORT     Alertmanager HTTP (API v2)        [9095]
#   SERVICES_WAIT_SECS    readiness timeout per server      [90]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVICES_DIR="${SERVICES_DIR:-$ROOT/.services}"
KAFKA_HOME="$ROOT/services/kafka"
KAFKA_LIB="$KAFKA_HOME/lib"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_SASL_PORT="${KAFKA_SASL_PORT:-9094}"
KAFKA_SASL_USER="${KAFKA_SASL_USER:-drift}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
# Fixed id (output of `kafka.tools.StorageTool random-uuid`); only used when formatting.
KAFKA_CLUSTER_ID="${KAFKA_CLUSTER_ID:-dPWWMU7BQlOCmUGrLhFyDA}"
PREDICTIONS_TOPIC="${DRIFT_MONITOR_PREDICTIONS_TOPIC:-predictions}"
DLQ_TOPIC="${DRIFT_MONITOR_DLQ_TOPIC:-predictions-dlq}"
ALERTS_TOPIC="${DRIFT_MONITOR_ALERTS_TOPIC:-drift-alerts}"
VM_PORT="${VM_PORT:-8428}"
INFLUX_PORT="${INFLUX_PORT:-8086}"
INFLUX_RPC_PORT="${INFLUX_RPC_PORT:-8088}"
INFLUX_DB="${INFLUX_DB:-drift}"
ALERTMANAGER_PORT="${ALERTMANAGER_PORT:-9095}"
WAIT_SECS="${SERVICES_WAIT_SECS:-90}"
JAVA="${JAVA:-java}"
# Short-lived Kafka CLI JVMs: start fast, stay small.
TOOL_JVM_OPTS=(-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto)

KAFKA_DIR="$SERVICES_DIR/kafka"
KAFKA_TLS_DIR="$KAFKA_DIR/tls"
KAFKA_SASL_DIR="$KAFKA_DIR/sasl"
KAFKA_SASL_ENV="$KAFKA_DIR/sasl-ssl.env"
VM_DIR="$SERVICES_DIR/victoria-metrics"
INFLUX_DIR="$SERVICES_DIR/influxdb"
AM_DIR="$SERVICES_DIR/alertmanager"

log() { printf '[services] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

port_open() { # port -> 0 if something accepts TCP on 127.0.0.1:port
  timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}
http_code() { # url -> HTTP status code (000 if nothing answers)
  curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true
}
pid_alive() { # pidfile -> 0 if the pid in it is running
  [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}
# wait_for DESCRIPTION PIDFILE LOGFILE CMD... : poll CMD every 0.5 s until it
# succeeds; fail early if the process in PIDFILE dies, fail after WAIT_SECS.
wait_for() {
  local what="$1" pidfile="$2" logfile="$3"; shift 3
  local deadline=$((SECONDS + WAIT_SECS))
  until "$@"; do
    if [[ -n "$pidfile" && -e "$pidfile" ]] && ! pid_alive "$pidfile"; then
      log "$what: process exited; last lines of $logfile:"
      tail -n 30 "$logfile" >&2 || true
      die "$what did not start"
    fi
    if ((SECONDS >= deadline)); then
      log "$what: not ready after ${WAIT_SECS}s; last lines of $logfile:"
      tail -n 30 "$logfile" >&2 || true
      die "$what did not become ready"
    fi
    sleep 0.5
  done
}
# start_bg PIDFILE OUTFILE CMD... : run CMD detached (own session), record its pid.
start_bg() {
  local pidfile="$1" out="$2"; shift 2
  # Not a process-group leader here, so setsid execs in place: $! is CMD's pid.
  setsid nohup "$@" >>"$out" 2>&1 </dev/null 9>&- &
  echo $! >"$pidfile"
}
log_note() { # pidfile logfile -> where the log is, or that another process serves the port
  if pid_alive "$1"; then echo "pid $(cat "$1"), log $2"; else echo "not started by this script, log not here"; fi
}
# stop_pid NAME PIDFILE : TERM, wait up to 30 s, then KILL. Idempotent.
stop_pid() {
  local name="$1" pidfile="$2" pid
  if ! pid_alive "$pidfile"; then
    rm -f "$pidfile"
    log "$name: not running (no live pid file)"
    return 0
  fi
  pid="$(cat "$pidfile")"
  log "$name: stopping pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name: still alive after 30s, sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$pidfile"
  log "$name: stopped"
}

apt_install() { # package names; installs only what is asked, without starting services
  log "apt-get install $*"
  local policy=/usr/sbin/policy-rc.d added=0
  if [[ ! -e "$policy" ]]; then # keep the packages' init scripts from starting daemons
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && added=1
  fi
  local rc=0
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q --no-install-recommends "$@"; } >&2 || rc=$?
  ((added)) && rm -f "$policy"
  ((rc == 0)) || die "apt-get install $* failed"
}
ensure_packages() {
  local want=("$@") missing=()
  for svc in "${want[@]}"; do
    case "$svc" in
      kafka) command -v openssl >/dev/null || missing+=(openssl) ;;  # the SASL_SSL listener's CA
      vm) command -v victoria-metrics >/dev/null || missing+=(victoria-metrics) ;;
      influx) command -v influxd >/dev/null || missing+=(influxdb) ;;
      alertmanager) command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager) ;;
    esac
  done
  ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
}

# ---------------------------------------------------------------- Kafka
kafka_jars() {
  local stamp="$KAFKA_LIB/.pom.sha256" sum
  sum="$(sha256sum "$KAFKA_HOME/pom.xml" | cut -d' ' -f1)"
  [[ -f "$stamp" && "$(cat "$stamp")" == "$sum" ]] && return 0
  command -v mvn >/dev/null || die "mvn not found (needed once to fetch the Kafka jars)"
  log "kafka: resolving broker jars with Maven into $KAFKA_LIB"
  local tmp="$KAFKA_HOME/lib.tmp.$$"
  rm -rf "$tmp"
  local mvn_args=(-q -B -Dstyle.color=never -f "$KAFKA_HOME/pom.xml" dependency:copy-dependencies "-Dkafka.lib.dir=$tmp")
  # Offline first (works without network once ~/.m2 has everything), then online.
  if ! mvn -o "${mvn_args[@]}" >/dev/null 2>&1; then
    rm -rf "$tmp"
    mvn "${mvn_args[@]}" >&2 || { rm -rf "$tmp"; die "mvn failed to resolve the Kafka jars"; }
  fi
  echo "$sum" >"$tmp/.pom.sha256"
  rm -rf "$KAFKA_LIB"
  mv "$tmp" "$KAFKA_LIB"
}
kafka_tool() { # MAINCLASS args... (quiet logging to stderr)
  "$JAVA" "${TOOL_JVM_OPTS[@]}" "-Dlog4j2.configurationFile=$KAFKA_DIR/tools-log4j2.xml" \
    -cp "$KAFKA_LIB/*" "$@"
}
kafka_tls() { # once: a local CA, the broker's certificate (localhost, 127.0.0.1), a PKCS12 keystore
  local d="$KAFKA_TLS_DIR" tmp="$KAFKA_TLS_DIR.tmp.$$"
  [[ -s "$d/broker.p12" && -s "$d/ca.pem" && -s "$d/keystore.password" ]] && return 0
  command -v openssl >/dev/null || die "openssl not found (needed once for the SASL_SSL listener's certificates)"
  log "kafka: creating a local CA and the broker's TLS certificate in $d"
  mkdir -p "$KAFKA_DIR/logs"
  rm -rf "$tmp" && mkdir -p "$tmp" && chmod 700 "$tmp"
  if ! ( cd "$tmp" && umask 077 &&
      openssl rand -hex 24 >keystore.password &&
      openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -keyout ca.key -out ca.pem \
        -subj "/CN=drift-monitor local test CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
      openssl req -newkey rsa:2048 -nodes -sha256 -keyout broker.key -out broker.csr -subj "/CN=localhost" &&
      printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid,issuer" >broker.ext &&
      openssl x509 -req -sha256 -days 3650 -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
        -extfile broker.ext -out broker.pem &&
      openssl pkcs12 -export -name broker -in broker.pem -inkey broker.key -certfile ca.pem \
        -out broker.p12 -passout file:keystore.password &&
      rm -f broker.csr broker.ext ca.srl && chmod 644 ca.pem
    ) >"$KAFKA_DIR/logs/openssl.log" 2>&1; then
    tail -n 20 "$KAFKA_DIR/logs/openssl.log" >&2
    rm -rf "$tmp"
    die "kafka: openssl could not create the TLS files"
  fi
  rm -rf "$d" && mv "$tmp" "$d"
}
kafka_sasl_password() { # once: the SCRAM user's generated password
  local f="$KAFKA_SASL_DIR/$KAFKA_SASL_USER.password"
  [[ -s "$f" ]] && return 0
  mkdir -p "$KAFKA_SASL_DIR" && chmod 700 "$KAFKA_SASL_DIR"
  (umask 077 && openssl rand -hex 24 >"$f.tmp" && mv "$f.tmp" "$f") || die "kafka: cannot write $f"
}
# The SCRAM-SHA-512 credentials of $KAFKA_SASL_USER, set through the PLAINTEXT listener (no
# authorizer) once per formatted storage and password: the stamp remembers for which.
kafka_scram_user() {
  local pwfile="$KAFKA_SASL_DIR/$KAFKA_SASL_USER.password" stamp="$KAFKA_SASL_DIR/scram.stamp"
  local cfg="$KAFKA_SASL_DIR/scram.properties" want
  want="$(grep -h '^directory.id=' "$KAFKA_DIR/data/meta.properties" 2>/dev/null || true) $KAFKA_SASL_USER $(sha256sum <"$pwfile" | cut -d' ' -f1)"
  [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && return 0
  log "kafka: setting the SCRAM-SHA-512 credentials of user $KAFKA_SASL_USER"
  # From a file, not the command line, so that the password never shows in `ps` (a file
  # value takes no [brackets], unlike --add-config).
  (umask 077 && printf 'SCRAM-SHA-512=password=%s\n' "$(cat "$pwfile")" >"$cfg")
  if ! kafka_tool kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --alter \
      --entity-type users --entity-name "$KAFKA_SASL_USER" --add-config-file "$cfg" >/dev/null; then
    rm -f "$cfg"
    die "kafka: could not set the SCRAM credentials of $KAFKA_SASL_USER"
  fi
  rm -f "$cfg"
  echo "$want" >"$stamp"
}
kafka_write_sasl_env() { # the DRIFT_MONITOR_* settings of this directory's SASL_SSL listener
  (umask 077 && cat >"$KAFKA_SASL_ENV.tmp" <<EOF
# Written by scripts/services.sh: settings for the local broker's SASL_SSL listener.
# Use: set -a; . $KAFKA_SASL_ENV; set +a
DRIFT_MONITOR_BROKER=kafka://127.0.0.1:$KAFKA_SASL_PORT
DRIFT_MONITOR_KAFKA_SECURITY_PROTOCOL=SASL_SSL
DRIFT_MONITOR_KAFKA_SASL_MECHANISM=SCRAM-SHA-512
DRIFT_MONITOR_KAFKA_SASL_USERNAME=$KAFKA_SASL_USER
DRIFT_MONITOR_KAFKA_SASL_PASSWORD_FILE=$KAFKA_SASL_DIR/$KAFKA_SASL_USER.password
DRIFT_MONITOR_KAFKA_SSL_CAFILE=$KAFKA_TLS_DIR/ca.pem
EOF
  ) && mv "$KAFKA_SASL_ENV.tmp" "$KAFKA_SASL_ENV"
}
sasl_env_valid() { # the env file names a listener that answers and files that exist
  [[ -s "$KAFKA_SASL_ENV" ]] || return 1
  local port ca pw
  port="$(sed -n 's|^DRIFT_MONITOR_BROKER=kafka://127.0.0.1:||p' "$KAFKA_SASL_ENV")"
  ca="$(sed -n 's|^DRIFT_MONITOR_KAFKA_SSL_CAFILE=||p' "$KAFKA_SASL_ENV")"
  pw="$(sed -n 's|^DRIFT_MONITOR_KAFKA_SASL_PASSWORD_FILE=||p' "$KAFKA_SASL_ENV")"
  [[ -n "$port" && -s "$ca" && -s "$pw" ]] && port_open "$port"
}
# The SASL_SSL listener of a broker this script did not start from here (another SERVICES_DIR,
# e.g. a second checkout sharing the broker): its keystore location, from the broker's own
# config, says which directory holds its CA and SCRAM password; that directory's env file is copied.
kafka_sasl_of_running_broker() {
  sasl_env_valid && return 0
  local keystore owner
  keystore="$(kafka_tool kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
    --describe --entity-type brokers --entity-name 1 --all 2>/dev/null \
    | sed -n 's/^ *ssl\.keystore\.location=\([^ ]*\) .*/\1/p' | head -n 1)" || true
  owner="$(dirname "$(dirname "${keystore:-/nonexistent/x/y}")")"
  if [[ -n "$keystore" && -s "$owner/sasl-ssl.env" ]]; then
    [[ "$owner" == "$KAFKA_DIR" ]] || cp "$owner/sasl-ssl.env" "$KAFKA_SASL_ENV"
    if sasl_env_valid; then
      [[ "$owner" == "$KAFKA_DIR" ]] || log "kafka: SASL_SSL settings of the running broker copied from $owner"
      return 0
    fi
  fi
  rm -f "$KAFKA_SASL_ENV"
  log "kafka: WARNING the broker on 127.0.0.1:$KAFKA_PORT has no usable SASL_SSL listener (started before it was configured, or by a checkout whose TLS/SASL files are gone); restart it with this script (down kafka, then up kafka) to get one"
}
kafka_write_config() {
  mkdir -p "$KAFKA_DIR/data" "$KAFKA_DIR/logs"
  local keystore_password
  keystore_password="$(cat "$KAFKA_TLS_DIR/keystore.password")"
  ( umask 077; cat >"$KAFKA_DIR/server.properties" <<EOF
# Written by scripts/services.sh: single-node KRaft broker+controller on 127.0.0.1.
process.roles=broker,controller
node.id=1
# Kafka 4.x dynamic quorum: bootstrap servers + 'StorageTool format --standalone'
# (controller.quorum.voters must NOT be set together with --standalone).
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL
# SASL_SSL: SCRAM-SHA-512 users (credentials in the cluster metadata, set with
# kafka.admin.ConfigCommand), TLS with a certificate of the local CA in tls/.
# No authorizer: an authenticated user may do everything (tests need no ACLs).
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$KAFKA_TLS_DIR/broker.p12
ssl.keystore.password=$keystore_password
ssl.client.auth=none
log.dirs=$KAFKA_DIR/data
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.segment.bytes=16777216
log.retention.hours=168
num.network.threads=2
num.io.threads=4
EOF
  )
  cat >"$KAFKA_DIR/log4j2.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="server" fileName="${sys:kafka.logs.dir}/server.log"
                 filePattern="${sys:kafka.logs.dir}/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="50 MB"/></Policies>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="org.apache.kafka.clients" level="WARN"/>
    <Root level="INFO"><AppenderRef ref="server"/></Root>
  </Loggers>
</Configuration>
EOF
  cat >"$KAFKA_DIR/tools-log4j2.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders><Console name="stderr" target="SYSTEM_ERR"><PatternLayout pattern="%p %m (%c)%n"/></Console></Appenders>
  <Loggers><Root level="ERROR"><AppenderRef ref="stderr"/></Root></Loggers>
</Configuration>
EOF
}
kafka_format() { # once: a restart reuses the formatted storage
  # (After changing KAFKA_CONTROLLER_PORT the recorded quorum may not match:
  # `down`, then rm -rf .services/kafka/data, then `up`.)
  if [[ -f "$KAFKA_DIR/data/meta.properties" ]]; then return 0; fi
  log "kafka: formatting storage in $KAFKA_DIR/data (cluster id $KAFKA_CLUSTER_ID)"
  kafka_tool kafka.tools.StorageTool format --standalone \
    -t "$KAFKA_CLUSTER_ID" -c "$KAFKA_DIR/server.properties" >&2
}
kafka_list_topics() {
  timeout 60 "$JAVA" "${TOOL_JVM_OPTS[@]}" "-Dlog4j2.configurationFile=$KAFKA_DIR/tools-log4j2.xml" \
    -cp "$KAFKA_LIB/*" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "127.0.0.1:$KAFKA_PORT" --list
}
kafka_topics() { # creates the missing topics; $KAFKA_EXISTING is set by kafka_ready
  local existing="$KAFKA_EXISTING" spec name parts
  for spec in "$PREDICTIONS_TOPIC:4" "$DLQ_TOPIC:1" "$ALERTS_TOPIC:1"; do
    name="${spec%:*}"; parts="${spec##*:}"
    if grep -qxF -- "$name" <<<"$existing"; then continue; fi
    log "kafka: creating topic $name ($parts partitions)"
    kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
      --create --if-not-exists --topic "$name" --partitions "$parts" --replication-factor 1 >/dev/null
  done
}
KAFKA_EXISTING=""
kafka_ready() { port_open "$KAFKA_PORT" && KAFKA_EXISTING="$(kafka_list_topics 2>/dev/null)"; }
kafka_up() {
  kafka_jars
  kafka_tls
  kafka_sasl_password
  kafka_write_config
  local pidfile="$KAFKA_DIR/kafka.pid" out="$KAFKA_DIR/logs/kafka.out" starting=1
  if port_open "$KAFKA_PORT"; then
    log "kafka: already answering on 127.0.0.1:$KAFKA_PORT"
    pid_alive "$pidfile" || rm -f "$pidfile"
    starting=0
  elif pid_alive "$pidfile"; then
    log "kafka: pid $(cat "$pidfile") is starting; waiting"
  else
    command -v "$JAVA" >/dev/null || die "java not found (Java 17+ needed)"
    kafka_format
    log "kafka: starting on 127.0.0.1:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT)"
    # shellcheck disable=SC2086
    start_bg "$pidfile" "$out" "$JAVA" $KAFKA_HEAP_OPTS -XX:+UseG1GC -Djava.awt.headless=true \
      "-Dkafka.logs.dir=$KAFKA_DIR/logs" "-Dlog4j2.configurationFile=$KAFKA_DIR/log4j2.xml" \
      -cp "$KAFKA_LIB/*" kafka.Kafka "$KAFKA_DIR/server.properties"
  fi
  wait_for kafka "$pidfile" "$KAFKA_DIR/logs/server.log" port_open "$KAFKA_PORT"
  wait_for kafka "$pidfile" "$KAFKA_DIR/logs/server.log" kafka_ready
  kafka_topics
  log "kafka: ready on 127.0.0.1:$KAFKA_PORT; $(log_note "$pidfile" "$KAFKA_DIR/logs/server.log")"
  kafka_sasl_up "$pidfile" "$starting"
}
kafka_sasl_up() { # PIDFILE STARTING: the SCRAM user and the env file of the SASL_SSL listener
  local pidfile="$1" starting="$2"
  if ! pid_alive "$pidfile"; then  # a broker started elsewhere: use what it was given
    kafka_sasl_of_running_broker
    return 0
  fi
  ((starting)) && wait_for kafka-sasl-ssl "$pidfile" "$KAFKA_DIR/logs/server.log" port_open "$KAFKA_SASL_PORT"
  kafka_scram_user
  if port_open "$KAFKA_SASL_PORT"; then
    kafka_write_sasl_env
    log "kafka: SASL_SSL (SCRAM-SHA-512 user $KAFKA_SASL_USER) on 127.0.0.1:$KAFKA_SASL_PORT; settings in $KAFKA_SASL_ENV"
  else
    rm -f "$KAFKA_SASL_ENV"
    log "kafka: WARNING no SASL_SSL listener on 127.0.0.1:$KAFKA_SASL_PORT: the broker was started before it was configured; restart it (down kafka, then up kafka)"
  fi
}
kafka_down() { stop_pid kafka "$KAFKA_DIR/kafka.pid"; }

# ------------------------------------------------------- VictoriaMetrics
vm_ready() { [[ "$(http_code "http://127.0.0.1:$VM_PORT/health")" == 200 ]]; }
vm_up() {
  local pidfile="$VM_DIR/victoria-metrics.pid" out="$VM_DIR/victoria-metrics.log"
  mkdir -p "$VM_DIR/data"
  if vm_ready || port_open "$VM_PORT"; then
    log "victoria-metrics: already answering on 127.0.0.1:$VM_PORT"
    pid_alive "$pidfile" || rm -f "$pidfile"
  elif pid_alive "$pidfile"; then
    log "victoria-metrics: pid $(cat "$pidfile") is starting; waiting"
  else
    log "victoria-metrics: starting on 127.0.0.1:$VM_PORT"
    # latencyOffset=0s + disableCache: recent points are queryable as soon as
    # they are flushed instead of 30 s later. A point of an existing series shows
    # up after ~1 s; a NEW series only after ~8-10 s unless the reader first calls
    # GET /internal/force_flush (then < 1 s). Tests: write, force_flush, poll.
    start_bg "$pidfile" "$out" victoria-metrics \
      "-httpListenAddr=127.0.0.1:$VM_PORT" "-storageDataPath=$VM_DIR/data" \
      -retentionPeriod=1y -search.latencyOffset=0s -search.disableCache
  fi
  wait_for victoria-metrics "$pidfile" "$out" vm_ready
  log "victoria-metrics: ready on http://127.0.0.1:$VM_PORT; $(log_note "$pidfile" "$out")"
}
vm_down() { stop_pid victoria-metrics "$VM_DIR/victoria-metrics.pid"; }

# ------------------------------------------------------------ InfluxDB 1.x
influx_ready() { [[ "$(http_code "http://127.0.0.1:$INFLUX_PORT/ping")" == 204 ]]; }
influx_write_config() {
  mkdir -p "$INFLUX_DIR/meta" "$INFLUX_DIR/data" "$INFLUX_DIR/wal"
  cat >"$INFLUX_DIR/influxdb.conf" <<EOF
# Written by scripts/services.sh
reporting-disabled = true
bind-address = "127.0.0.1:$INFLUX_RPC_PORT"

[meta]
  dir = "$INFLUX_DIR/meta"

[data]
  dir = "$INFLUX_DIR/data"
  wal-dir = "$INFLUX_DIR/wal"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:$INFLUX_PORT"
  auth-enabled = false
  log-enabled = false

[logging]
  level = "info"
EOF
}
influx_up() {
  local pidfile="$INFLUX_DIR/influxd.pid" out="$INFLUX_DIR/influxd.log"
  influx_write_config
  if influx_ready || port_open "$INFLUX_PORT"; then
    log "influxdb: already answering on 127.0.0.1:$INFLUX_PORT"
    pid_alive "$pidfile" || rm -f "$pidfile"
  elif pid_alive "$pidfile"; then
    log "influxdb: pid $(cat "$pidfile") is starting; waiting"
  else
    log "influxdb: starting on 127.0.0.1:$INFLUX_PORT"
    start_bg "$pidfile" "$out" influxd -config "$INFLUX_DIR/influxdb.conf"
  fi
  wait_for influxdb "$pidfile" "$out" influx_ready
  curl -sf -m 10 -XPOST "http://127.0.0.1:$INFLUX_PORT/query" \
    --data-urlencode "q=CREATE DATABASE \"$INFLUX_DB\"" >/dev/null \
    || die "influxdb: CREATE DATABASE $INFLUX_DB failed"
  log "influxdb: ready on http://127.0.0.1:$INFLUX_PORT (database $INFLUX_DB); $(log_note "$pidfile" "$out")"
}
influx_down() { stop_pid influxdb "$INFLUX_DIR/influxd.pid"; }

# ------------------------------------------------------------ Alertmanager
alertmanager_ready() { [[ "$(http_code "http://127.0.0.1:$ALERTMANAGER_PORT/-/ready")" == 200 ]]; }
alertmanager_write_config() {
  mkdir -p "$AM_DIR/data"
  cat >"$AM_DIR/alertmanager.yml" <<'EOF'
# Written by scripts/services.sh: a local Alertmanager that keeps alerts and notifies nobody.
# Real routes (PagerDuty, Slack, e-mail) go under `receivers`; see README "Alertmanager".
route:
  receiver: "null"
  group_by: [alertname, model, version]
receivers:
  - name: "null"
EOF
}
alertmanager_up() {
  local pidfile="$AM_DIR/alertmanager.pid" out="$AM_DIR/alertmanager.log"
  alertmanager_write_config
  if alertmanager_ready || port_open "$ALERTMANAGER_PORT"; then
    log "alertmanager: already answering on 127.0.0.1:$ALERTMANAGER_PORT"
    pid_alive "$pidfile" || rm -f "$pidfile"
  elif pid_alive "$pidfile"; then
    log "alertmanager: pid $(cat "$pidfile") is starting; waiting"
  else
    log "alertmanager: starting on 127.0.0.1:$ALERTMANAGER_PORT"
    # --cluster.listen-address= : no gossip cluster (one local instance).
    start_bg "$pidfile" "$out" prometheus-alertmanager \
      "--config.file=$AM_DIR/alertmanager.yml" "--storage.path=$AM_DIR/data" \
      "--web.listen-address=127.0.0.1:$ALERTMANAGER_PORT" --cluster.listen-address=
  fi
  wait_for alertmanager "$pidfile" "$out" alertmanager_ready
  log "alertmanager: ready on http://127.0.0.1:$ALERTMANAGER_PORT; $(log_note "$pidfile" "$out")"
}
alertmanager_down() { stop_pid alertmanager "$AM_DIR/alertmanager.pid"; }

# -------------------------------------------------------------- commands
status() { # services... ; exit 1 if any is down
  local rc=0 s
  for s in "$@"; do
    case "$s" in
      kafka) if port_open "$KAFKA_PORT"; then echo "kafka            up    127.0.0.1:$KAFKA_PORT"
             else echo "kafka            down  127.0.0.1:$KAFKA_PORT"; rc=1; fi
             if sasl_env_valid; then echo "kafka SASL_SSL   up    $(sed -n 's|^DRIFT_MONITOR_BROKER=kafka://||p' "$KAFKA_SASL_ENV") (settings: $KAFKA_SASL_ENV)"
             else echo "kafka SASL_SSL   down  (no $KAFKA_SASL_ENV with a listener that answers)"; fi ;;
      vm) if vm_ready; then echo "victoria-metrics up    http://127.0.0.1:$VM_PORT"
          else echo "victoria-metrics down  http://127.0.0.1:$VM_PORT"; rc=1; fi ;;
      influx) if influx_ready; then echo "influxdb         up    http://127.0.0.1:$INFLUX_PORT"
              else echo "influxdb         down  http://127.0.0.1:$INFLUX_PORT"; rc=1; fi ;;
      alertmanager) if alertmanager_ready; then echo "alertmanager     up    http://127.0.0.1:$ALERTMANAGER_PORT"
                    else echo "alertmanager     down  http://127.0.0.1:$ALERTMANAGER_PORT"; rc=1; fi ;;
    esac
  done
  return $rc
}

main() {
  local cmd="${1:-}"; shift || true
  local svcs=("$@")
  ((${#svcs[@]})) || svcs=(kafka vm influx alertmanager)
  for s in "${svcs[@]}"; do
    case "$s" in kafka|vm|influx|alertmanager) ;; *) die "unknown service '$s' (kafka|vm|influx|alertmanager)" ;; esac
  done
  case "$cmd" in
    up|down)
      mkdir -p "$SERVICES_DIR"
      exec 9>"$SERVICES_DIR/.lock"
      flock -w 300 9 || die "another services.sh up/down holds $SERVICES_DIR/.lock" # one up/down at a time
      ;;
  esac
  case "$cmd" in
    up)
      ensure_packages "${svcs[@]}"
      for s in "${svcs[@]}"; do "${s}_up"; done
      echo "logs:"
      for s in "${svcs[@]}"; do
        case "$s" in
          kafka) echo "  kafka            $(log_note "$KAFKA_DIR/kafka.pid" "$KAFKA_DIR/logs/server.log")" ;;
          vm) echo "  victoria-metrics $(log_note "$VM_DIR/victoria-metrics.pid" "$VM_DIR/victoria-metrics.log")" ;;
          influx) echo "  influxdb         $(log_note "$INFLUX_DIR/influxd.pid" "$INFLUX_DIR/influxd.log")" ;;
          alertmanager) echo "  alertmanager     $(log_note "$AM_DIR/alertmanager.pid" "$AM_DIR/alertmanager.log")" ;;
        esac
      done
      ;;
    down) for s in "${svcs[@]}"; do "${s}_down"; done ;;
    status) status "${svcs[@]}" ;;
    *) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}
main "$@"
