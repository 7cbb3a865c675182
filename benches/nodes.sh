# Shared by the benches that run the whole service here: a vidaud node on
# loopback with its own queues and databases, settings from config.toml
# overridden through the environment. Sourced after scripts/lib.sh.

# start_bench_node WORK NAME GROUP PORT MONGO_PORT [VAR=VALUE...]: starts
# target/release/vidaud (or $VIDAUD_BIN) as node NAME of GROUP (nodes of a group share
# queues and databases), listening on PORT, its admin socket at
# WORK/admin-NAME.sock, its pid in WORK/node-NAME.pid and its log in
# WORK/node-NAME.log. Extra VAR=VALUE settings override the defaults here.
# The id is quoted: the environment's values are read like TOML values, and
# a name like 1 would be a number.
start_bench_node() {
  local work=$1 name=$2 group=$3 port=$4 mongo=$5
  shift 5
  [[ -s "$work/jwt-secret" ]] || head -c 48 /dev/urandom | base64 -w0 >"$work/jwt-secret"
  env VIDAUD_AUTH__JWT_SECRET_FILE="$work/jwt-secret" \
    VIDAUD_AUTH__MYSQL_URL="mysql://root@127.0.0.1:3306/$group" \
    VIDAUD_STORAGE__MONGODB_URI="mongodb://127.0.0.1:$mongo" \
    VIDAUD_QUEUE__VIDEO_QUEUE="video-$group" VIDAUD_QUEUE__MP3_QUEUE="mp3-$group" \
    VIDAUD_QUEUE__DEAD_LETTER_QUEUE="dead-$group" \
    VIDAUD_HTTP__LISTEN="127.0.0.1:$port" VIDAUD_HTTP__PUBLIC_URL="http://127.0.0.1:$port" \
    VIDAUD_ADMIN__SOCKET="$work/admin-$name.sock" VIDAUD_NODE__ID="\"$name\"" \
    VIDAUD_BACKEND__KIND=cluster VIDAUD_NOTIFIER__ENABLED=false VIDAUD_LOG__LEVEL=warn \
    "$@" \
    nohup "${VIDAUD_BIN:-target/release/vidaud}" serve --config config.toml >"$work/node-$name.log" 2>&1 &
  echo $! >"$work/node-$name.pid"
  wait_port "$port" "vidaud node $name" 60
}

# drop_bench_group GROUP: removes a group's queues and database.
drop_bench_group() {
  local group=$1 queue
  for queue in "video-$group" "mp3-$group" "dead-$group"; do
    rabbitmqctl -q delete_queue "$queue" >/dev/null 2>&1 || true
  done
  mariadb -u root -e "DROP DATABASE IF EXISTS \`$group\`" 2>/dev/null || true
}
