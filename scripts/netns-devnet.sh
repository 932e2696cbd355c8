#!/usr/bin/env bash
# A devnet of separate hosts on one Linux box: N network namespaces joined by a bridge, one
# validator node per namespace with its own address, listening on 0.0.0.0; only node 0 is given
# as bootstrap, the others find each other through the Kademlia DHT. Needs root (ip netns).
#
#   scripts/netns-devnet.sh up N      create the namespaces and start N nodes (in the background)
#   scripts/netns-devnet.sh status    head, peers and mempool of every node
#   scripts/netns-devnet.sh rpc I METHOD [PARAMS_JSON]   one JSON-RPC call to node I
#   scripts/netns-devnet.sh down [N]  stop the nodes and delete every namespace of this devnet
#
# Layout (all of it inside namespaces this script creates; the host's own network is untouched):
#   ${PREFIX}-hub      holds bridge br0 with ${SUBNET}.1/24 (where `status` and `rpc` run from)
#   ${PREFIX}-node<i>  eth0 = ${SUBNET}.(10+i)/24, a veth whose other end is on br0
# Node i listens for libp2p on ${SUBNET}.(10+i):9000 and for JSON-RPC (dashboard) on :9001.
#
# Environment: GRAPEVINE_NETNS_PREFIX (default gvnet), GRAPEVINE_NETNS_SUBNET (default 10.77.0),
# GRAPEVINE_NETNS_DIR (default .netns-devnet: genesis, devnet.json, data, logs, pids),
# GRAPEVINE_NETNS_SLOT_MS (default 1000).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="${GRAPEVINE_NETNS_PREFIX:-gvnet}"
SUBNET="${GRAPEVINE_NETNS_SUBNET:-10.77.0}"
DIR="${GRAPEVINE_NETNS_DIR:-$ROOT/.netns-devnet}"
SLOT_MS="${GRAPEVINE_NETNS_SLOT_MS:-1000}"
HUB="${PREFIX}-hub"
P2P_PORT=9000
RPC_PORT=9001
NODE="${NODE:-$(command -v node)}"

die() { echo "netns-devnet: $*" >&2; exit 1; }
address() { echo "${SUBNET}.$((10 + $1))"; }

require_root() {
  [ "$(id -u)" = 0 ] || die "needs root: network namespaces are created with 'ip netns add' (try sudo)"
  command -v ip >/dev/null || die "needs iproute2 (the ip command)"
}

# JSON-RPC from the hub namespace (it has an address on the bridge); Node's fetch, no curl needed.
rpc() {
  local i="$1" method="$2" params="${3:-[]}"
  ip netns exec "$HUB" "$NODE" -e '
    const [url, method, params] = process.argv.slice(1)
    fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params: JSON.parse(params) }), signal: AbortSignal.timeout(5000) })
      .then((r) => r.text()).then((t) => console.log(t), (e) => { console.error(String(e)); process.exit(1) })
  ' "http://$(address "$i"):${RPC_PORT}" "$method" "$params"
}

# Waits (up to 30 s) until node I answers with at least MIN_PEERS peers.
wait_ready() {
  local i="$1" min_peers="$2"
  for _ in $(seq 1 60); do
    local answer
    answer="$(rpc "$i" node_status 2>/dev/null || true)"
    if [ -n "$answer" ] && "$NODE" -e 'process.exit((JSON.parse(process.argv[1]).result?.peers ?? -1) >= Number(process.argv[2]) ? 0 : 1)' "$answer" "$min_peers" 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  echo "netns-devnet: node${i} not ready after 30 s; see $DIR/node${i}/node.log" >&2
  return 1
}

up() {
  local count="$1"
  [[ "$count" =~ ^[0-9]+$ ]] && [ "$count" -ge 1 ] && [ "$count" -le 200 ] || die "N must be between 1 and 200"
  require_root
  if ip netns list | grep -q "^${HUB}\b"; then die "${HUB} exists: run '$0 down' first"; fi
  mkdir -p "$DIR"
  # Undo whatever was created if any step fails.
  trap 'echo "netns-devnet: setup failed; cleaning up" >&2; down >/dev/null 2>&1 || true' ERR

  ip netns add "$HUB"
  ip -n "$HUB" link set lo up
  ip -n "$HUB" link add br0 type bridge
  ip -n "$HUB" addr add "${SUBNET}.1/24" dev br0
  ip -n "$HUB" link set br0 up
  local hosts=()
  for ((i = 0; i < count; i++)); do
    local ns="${PREFIX}-node${i}"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$HUB" link add "vb${i}" type veth peer name eth0 netns "$ns"
    ip -n "$HUB" link set "vb${i}" master br0 up
    ip -n "$ns" addr add "$(address "$i")/24" dev eth0
    ip -n "$ns" link set eth0 up
    hosts+=("$(address "$i")")
  done

  # Genesis for N validators (dev keys 0..N-1) and each node's peer id and address.
  local joined
  joined="$(IFS=,; echo "${hosts[*]}")"
  "$NODE" "$ROOT/scripts/grapevine.mjs" devnet --prepare-only --nodes "$count" --dir "$DIR" \
    --base-port "$P2P_PORT" --slot-ms "$SLOT_MS" --hosts "$joined" >/dev/null
  local bootstrap
  bootstrap="$("$NODE" -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).nodes[0].multiaddr)' "$DIR/devnet.json")"

  for ((i = 0; i < count; i++)); do
    local ns="${PREFIX}-node${i}" args=()
    # Only the first node is a bootstrap; everyone else learns the rest from the DHT.
    [ "$i" -gt 0 ] && args+=(--bootstrap "$bootstrap")
    mkdir -p "$DIR/node${i}"
    ip netns exec "$ns" "$NODE" "$ROOT/scripts/grapevine.mjs" node --genesis "$DIR/genesis.json" \
      --data-dir "$DIR/node${i}" --key "dev:${i}" --name "node${i}" \
      --listen "/ip4/0.0.0.0/tcp/${P2P_PORT}" --rpc "0.0.0.0:${RPC_PORT}" "${args[@]}" \
      >"$DIR/node${i}/node.log" 2>&1 </dev/null &
    echo $! >"$DIR/node${i}/pid"
    # One at a time: node 0 answering, then each newcomer connected to it before the next starts,
    # so a newcomer's first DHT walk finds every node already there (later ones dial it in turn).
    wait_ready "$i" "$([ "$i" = 0 ] && echo 0 || echo 1)"
  done
  trap - ERR
  echo "netns devnet of ${count} nodes up; node i at $(address 0)..$(address $((count - 1))), libp2p :${P2P_PORT}, RPC and dashboard :${RPC_PORT}"
  echo "  logs: $DIR/node<i>/node.log   status: $0 status   stop: $0 down"
  echo "  a shell on the bridge: ip netns exec ${HUB} bash   (then: curl http://$(address 0):${RPC_PORT}/)"
}

status() {
  require_root
  [ -f "$DIR/devnet.json" ] || die "no devnet in $DIR"
  local count
  count="$("$NODE" -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).nodes.length)' "$DIR/devnet.json")"
  for ((i = 0; i < count; i++)); do
    printf 'node%-3s %-12s ' "$i" "$(address "$i")"
    rpc "$i" node_status 2>/dev/null | "$NODE" -e '
      let t = ""; process.stdin.on("data", (d) => (t += d)).on("end", () => {
        try { const r = JSON.parse(t).result; console.log(`height ${r.height}  head ${r.headHash.slice(2, 10)}  peers ${r.peers}  mempool ${r.mempoolSize}`) }
        catch { console.log("not answering") }
      })' || echo "not answering"
  done
}

down() {
  require_root
  # Our own node processes, by the pids we recorded.
  if [ -d "$DIR" ]; then
    local pids=()
    for file in "$DIR"/node*/pid; do
      [ -f "$file" ] || continue
      local pid
      pid="$(cat "$file")"
      if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; pids+=("$pid"); fi
      rm -f "$file"
    done
    for _ in $(seq 1 50); do
      local alive=0
      for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
      [ "$alive" = 0 ] && break
      sleep 0.2
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  fi
  # Every namespace of this devnet, whatever N was (deleting one removes its veth end too).
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^${PREFIX}-(hub|node[0-9]+)$" || true); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    ip netns del "$ns"
  done
  echo "netns devnet down"
}

case "${1:-}" in
  up) up "${2:-5}" ;;
  down) down ;;
  status) status ;;
  rpc) require_root; [ $# -ge 3 ] || die "usage: $0 rpc I METHOD [PARAMS_JSON]"; rpc "$2" "$3" "${4:-[]}" ;;
  *) die "usage: $0 up N | status | rpc I METHOD [PARAMS_JSON] | down" ;;
esac
