#!/usr/bin/env bash
# ssh-lab.sh: a one-machine stand-in for the seed's two hosts.
#
# The seed ran Tomcat (Docker, host networking) on one machine and wrk on
# another, reached over SSH. This script makes "another machine" out of a
# network namespace on this one: `twlabdemo-client`, joined to this
# machine's own namespace by a veth pair, with its own sshd. Because the
# namespace has its own network stack, it has its own TIME_WAIT sockets,
# its own conntrack table and its own net.ipv4.* sysctls, like a second
# host; it shares this machine's filesystem and programs (wrk, conntrack,
# ss), so nothing has to be installed "there".
#
#   scripts/ssh-lab.sh up     [DIR]   # build it, write DIR/lab.yaml
#   scripts/ssh-lab.sh status [DIR]   # is it up, does ssh work
#   scripts/ssh-lab.sh down   [DIR]   # stop sshd, delete namespace and DIR
#
# DIR (default /var/tmp/twlab-ssh-lab) holds the keys, sshd's config,
# pidfile and log, known_hosts and lab.yaml. Then:
#
#   twlab run scenarios/tw_reuse_tomcat.yaml --lab DIR/lab.yaml
#
# Exit codes: 0 done, 1 `status` found it not (fully) up or a step failed,
# 2 usage, 3 refused (not root, a tool missing, the subnet taken).
#
# Names and addresses stay clear of everything else that builds namespaces
# here: twlab's embedded lab and `twlab clean` own `twlab-*` namespaces and
# 198.18.0.0/15 addresses below 198.18.20.0/24; twlab's sshd test fixture
# uses `twlabtest-ssh-*` in 198.18.20.0/24. This one is `twlabdemo-client`
# in 198.18.21.0/30.
set -euo pipefail

readonly NETNS=twlabdemo-client
readonly VETH_ROOT=twdemo0r # interface names are at most 15 characters
readonly VETH_NS=twdemo0n
readonly ROOT_ADDR=198.18.21.1
readonly NS_ADDR=198.18.21.2
readonly PREFIX=30
readonly SUBNET=198.18.21.0
readonly SSHD=/usr/sbin/sshd
# The same table and rules as twlab::conntrack::enable_argvs(): conntrack
# in a network namespace tracks nothing until some rule there uses it, and
# twlab adds no rule on a real host (it counts a host as it is), so the
# stand-in host gets what a host with a stateful firewall has.
readonly NFT_TABLE=twlab_ct

readonly DEFAULT_DIR=/var/tmp/twlab-ssh-lab
# Everything `up` writes into DIR (what `down` removes).
readonly DIR_FILES=(ssh_host_ed25519_key ssh_host_ed25519_key.pub id_ed25519
    id_ed25519.pub authorized_keys sshd_config sshd.pid sshd.log known_hosts
    lab.yaml)

die() {
    local code=$1
    shift
    printf 'ssh-lab: %s\n' "$*" >&2
    exit "$code"
}

say() {
    printf 'ssh-lab: %s\n' "$*"
}

usage() {
    cat >&2 <<EOF
usage: $0 up|down|status [DIR]     (DIR defaults to $DEFAULT_DIR)
EOF
    exit 2
}

# Refuse, before touching anything, what would fail half-way.
need_root() {
    [[ $(id -u) -eq 0 ]] ||
        die 3 "must run as root (it creates a network namespace, a veth pair and runs sshd): try sudo $0 $*"
}

# need_tool PATH_OR_NAME APT_PACKAGE
need_tool() {
    local tool=$1 package=$2
    if [[ $tool == /* ]]; then
        [[ -x $tool ]] || die 3 "$tool is missing: apt-get install -y $package"
    else
        command -v "$tool" >/dev/null 2>&1 || die 3 "$tool is missing: apt-get install -y $package"
    fi
}

# Dotted quad to a 32-bit integer.
ip_to_int() {
    local a b c d
    IFS=. read -r a b c d <<<"$1"
    echo $(((a << 24) | (b << 16) | (c << 8) | d))
}

# Do ADDR/LEN and our 198.18.21.0/30 share an address? Two prefixes
# overlap when they agree on the shorter one's bits.
overlaps_ours() {
    local len=$2 shorter mask theirs ours
    theirs=$(ip_to_int "$1")
    ours=$(ip_to_int "$SUBNET")
    shorter=$((len < PREFIX ? len : PREFIX))
    mask=$(((0xffffffff << (32 - shorter)) & 0xffffffff))
    (((theirs & mask) == (ours & mask)))
}

# Refuse when another interface of this machine's namespace already has an
# address in (or around) 198.18.21.0/30, or a route sends it elsewhere: the
# veth's routes would fight with it, and `down` could not tell whose it is.
check_subnet_free() {
    local _idx dev _family cidr _rest addr len
    while read -r _idx dev _family cidr _rest; do
        [[ $dev == "$VETH_ROOT" || $dev == "$VETH_ROOT@"* ]] && continue
        addr=${cidr%/*}
        len=${cidr#*/}
        if overlaps_ours "$addr" "$len"; then
            die 3 "$SUBNET/$PREFIX is already used: interface ${dev%@*} has $cidr (ip -4 addr show dev ${dev%@*}); free it or pick another machine"
        fi
    done < <(ip -o -4 addr show)
    # A route as specific as ours or more, through something else, would
    # take the traffic even with the address free (a broader route, such as
    # a default route, loses to the veth's /30 and does not matter).
    local dst rest
    while read -r dst rest; do
        [[ $dst == */* ]] || dst=$dst/32
        addr=${dst%/*}
        len=${dst#*/}
        ((len >= PREFIX)) || continue
        [[ " $rest " == *" dev $VETH_ROOT "* ]] && continue
        if overlaps_ours "$addr" "$len"; then
            die 3 "$SUBNET/$PREFIX is already routed elsewhere: ip route says '$dst $rest'"
        fi
    done < <(ip -4 route show table all type unicast 2>/dev/null | grep -E '^[0-9]' || true)
}

netns_exists() {
    [[ -e /run/netns/$NETNS ]]
}

link_exists() {
    [[ -e /sys/class/net/$1 ]]
}

# The PID in DIR/sshd.pid, printed only when that process is still sshd:
# a stale pidfile may name a PID that now belongs to something else, which
# must never be signalled.
sshd_pid() {
    local pidfile=$DIR/sshd.pid pid comm
    [[ -r $pidfile ]] || return 1
    read -r pid <"$pidfile" || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $comm == sshd ]] || return 1
    # And it is the sshd of this config, not the machine's own.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$DIR/sshd_config" || return 1
    echo "$pid"
}

# Does anything accept on NS_ADDR:22? From this namespace, through the veth,
# which checks the link as well as sshd.
port_answers() {
    timeout 1 bash -c "exec 3<>/dev/tcp/$NS_ADDR/22" 2>/dev/null
}

ssh_works() {
    ssh -i "$DIR/id_ed25519" \
        -o IdentitiesOnly=yes \
        -o UserKnownHostsFile="$DIR/known_hosts" \
        -o GlobalKnownHostsFile=/dev/null \
        -o StrictHostKeyChecking=yes \
        -o BatchMode=yes \
        -o ConnectTimeout=5 \
        "root@$NS_ADDR" true
}

nft_table_present() {
    ip netns exec "$NETNS" nft list table inet "$NFT_TABLE" >/dev/null 2>&1
}

setup_network() {
    if ! netns_exists; then
        ip netns add "$NETNS"
    fi
    ip -n "$NETNS" link set lo up
    if ! link_exists "$VETH_ROOT"; then
        # A leftover peer in the namespace (the root end deleted by hand)
        # would make the `peer name` clash.
        ip -n "$NETNS" link del "$VETH_NS" 2>/dev/null || true
        ip link add "$VETH_ROOT" type veth peer name "$VETH_NS" netns "$NETNS"
    fi
    # `replace` instead of `add`: a second `up` finds the address there.
    ip addr replace "$ROOT_ADDR/$PREFIX" dev "$VETH_ROOT"
    ip link set "$VETH_ROOT" up
    ip -n "$NETNS" addr replace "$NS_ADDR/$PREFIX" dev "$VETH_NS"
    ip -n "$NETNS" link set "$VETH_NS" up
}

setup_keys() {
    # Keys are made once and kept: a second `up` must not change the host
    # key under a known_hosts someone copied, nor the client key.
    if [[ ! -s $DIR/ssh_host_ed25519_key ]]; then
        rm -f "$DIR/ssh_host_ed25519_key" "$DIR/ssh_host_ed25519_key.pub"
        ssh-keygen -q -t ed25519 -N '' -C twlabdemo-host -f "$DIR/ssh_host_ed25519_key"
    fi
    if [[ ! -s $DIR/id_ed25519 ]]; then
        rm -f "$DIR/id_ed25519" "$DIR/id_ed25519.pub"
        ssh-keygen -q -t ed25519 -N '' -C twlabdemo-client -f "$DIR/id_ed25519"
    fi
    cp "$DIR/id_ed25519.pub" "$DIR/authorized_keys"
    # The namespace shares this machine's filesystem, so these paths are
    # the same for sshd "there" and for ssh here.
    cat >"$DIR/sshd_config" <<EOF
# Written by scripts/ssh-lab.sh: the sshd of the namespace $NETNS.
ListenAddress $NS_ADDR
Port 22
HostKey $DIR/ssh_host_ed25519_key
PidFile $DIR/sshd.pid
AuthorizedKeysFile $DIR/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
# DIR is root's, but /var/tmp above it is world-writable, which StrictModes
# would refuse.
StrictModes no
UsePAM no
# twlab forwards the Docker socket and its own control sockets over the
# connection.
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
# So that scp (which speaks sftp nowadays) works too, for people.
Subsystem sftp internal-sftp
LogLevel VERBOSE
EOF
}

start_sshd() {
    if sshd_pid >/dev/null; then
        # Already running; a HUP rereads the (rewritten) config.
        kill -HUP "$(sshd_pid)"
    else
        if port_answers; then
            die 1 "something already accepts on $NS_ADDR:22 but DIR/sshd.pid names no sshd of $DIR/sshd_config; run '$0 down $DIR' first"
        fi
        # sshd's privilege separation directory (tmpfs, may not exist when
        # the machine's own sshd never ran).
        mkdir -p /run/sshd
        chmod 755 /run/sshd
        rm -f "$DIR/sshd.pid"
        # Check the config first: its error is clearer than a silent exit.
        "$SSHD" -t -f "$DIR/sshd_config" ||
            die 1 "sshd refuses $DIR/sshd_config (above)"
        # Without -D sshd daemonizes and writes its pidfile; -E keeps its log.
        ip netns exec "$NETNS" "$SSHD" -f "$DIR/sshd_config" -E "$DIR/sshd.log"
    fi
    local i
    for ((i = 0; i < 100; i++)); do
        if port_answers; then
            return 0
        fi
        sleep 0.1
    done
    die 1 "sshd does not accept on $NS_ADDR:22 after 10 s; its log: $DIR/sshd.log: $(tail -n 5 "$DIR/sshd.log" 2>/dev/null)"
}

setup_conntrack() {
    # `add rule` appends a second copy each time: add the table only when
    # it is not there.
    nft_table_present && return 0
    local chain hook
    ip netns exec "$NETNS" nft add table inet "$NFT_TABLE"
    for chain in pre:prerouting out:output; do
        hook=${chain#*:}
        chain=${chain%%:*}
        ip netns exec "$NETNS" nft add chain inet "$NFT_TABLE" "$chain" \
            "{ type filter hook $hook priority -150; }"
        ip netns exec "$NETNS" nft add rule inet "$NFT_TABLE" "$chain" \
            ct state established,related,new,invalid counter
    done
}

write_files() {
    local host_pub
    host_pub=$(<"$DIR/ssh_host_ed25519_key.pub")
    # Only this file: twlab checks host keys strictly and never adds one.
    printf '%s %s\n' "$NS_ADDR" "$host_pub" >"$DIR/known_hosts"
    cat >"$DIR/lab.yaml" <<EOF
# Written by scripts/ssh-lab.sh: this machine is the server host (Docker,
# host networking), the namespace $NETNS is the client host over SSH.
hosts:
  server:
    address: $ROOT_ADDR
    docker: true
  client:
    ssh: root@$NS_ADDR
    identity: $DIR/id_ed25519
    known_hosts: $DIR/known_hosts
    address: $NS_ADDR
cooldown: 130s
EOF
}

cmd_up() {
    need_root up
    need_tool ip iproute2
    need_tool nft nftables
    need_tool "$SSHD" openssh-server
    need_tool ssh-keygen openssh-client
    need_tool ssh openssh-client
    need_tool timeout coreutils
    if netns_exists && sshd_pid >/dev/null && nft_table_present &&
        [[ -s $DIR/lab.yaml ]] && ssh_works 2>/dev/null; then
        say "already up ($NETNS, sshd $(sshd_pid) on $NS_ADDR:22)"
        usage_hint
        return 0
    fi
    check_subnet_free
    # DIR holds a private key: nobody else reads it.
    mkdir -p "$DIR"
    chmod 700 "$DIR"
    setup_network
    setup_keys
    write_files
    start_sshd
    setup_conntrack
    ssh_works || die 1 "sshd answers but 'ssh root@$NS_ADDR true' fails; see $DIR/sshd.log"
    say "up: namespace $NETNS ($NS_ADDR, sshd $(sshd_pid)), this machine $ROOT_ADDR on $VETH_ROOT"
    usage_hint
}

usage_hint() {
    cat <<EOF

  lab file:  $DIR/lab.yaml
  run:       twlab run scenarios/tw_reuse_tomcat.yaml --lab $DIR/lab.yaml
  a shell:   ssh -i $DIR/id_ed25519 -o UserKnownHostsFile=$DIR/known_hosts root@$NS_ADDR
  stop:      $0 down $DIR
EOF
}

cmd_down() {
    need_root down
    need_tool ip iproute2
    local pid i left
    if pid=$(sshd_pid); then
        kill -TERM "$pid"
        for ((i = 0; i < 50; i++)); do
            [[ -e /proc/$pid ]] || break
            sleep 0.1
        done
        # Still there after 5 s: it is ours (checked above), end it.
        [[ -e /proc/$pid ]] && kill -KILL "$pid" 2>/dev/null
        say "stopped sshd $pid"
    fi
    if netns_exists; then
        # Whatever still runs in the namespace came in through that sshd
        # (sessions, wrk started by a killed twlab run): it would keep the
        # namespace, and so the veth, alive after `ip netns del`.
        for ((i = 0; i < 50; i++)); do
            left=$(ip netns pids "$NETNS" 2>/dev/null | tr '\n' ' ')
            [[ -z ${left// /} ]] && break
            if ((i == 0)); then
                say "stopping what still runs in $NETNS: $left"
                # shellcheck disable=SC2086 # one PID a word
                kill -TERM $left 2>/dev/null || true
            elif ((i == 20)); then
                # shellcheck disable=SC2086
                kill -KILL $left 2>/dev/null || true
            fi
            sleep 0.1
        done
        ip netns del "$NETNS"
        say "deleted namespace $NETNS"
    fi
    # Deleting the namespace deletes its end of the pair, and with it ours,
    # but the kernel does that after `ip netns del` returns: wait for it
    # before deleting it by hand (which covers a namespace removed some
    # other way, and would fail with "Cannot find device" in the race).
    for ((i = 0; i < 50; i++)); do
        link_exists "$VETH_ROOT" || break
        sleep 0.1
    done
    if link_exists "$VETH_ROOT"; then
        if ! ip link del "$VETH_ROOT" 2>/dev/null && link_exists "$VETH_ROOT"; then
            die 1 "could not delete $VETH_ROOT"
        fi
    fi
    # Only the files `up` writes, then the directory: DIR is whatever the
    # caller named, and a mistyped path must not lose anything else.
    if [[ -d $DIR ]]; then
        local f
        for f in "${DIR_FILES[@]}"; do
            rm -f -- "${DIR:?}/$f"
        done
        if rmdir -- "$DIR" 2>/dev/null; then
            say "removed $DIR"
        else
            say "kept $DIR: it holds files ssh-lab.sh did not write: $(find "$DIR" -mindepth 1 -maxdepth 1 -printf '%f ')"
        fi
    fi
    say "down"
}

cmd_status() {
    local ok=0 pid
    if netns_exists; then
        say "namespace $NETNS: present"
    else
        say "namespace $NETNS: absent"
        ok=1
    fi
    if link_exists "$VETH_ROOT"; then
        say "veth $VETH_ROOT: $(ip -br addr show dev "$VETH_ROOT" | tr -s ' ')"
    else
        say "veth $VETH_ROOT: absent"
        ok=1
    fi
    if pid=$(sshd_pid); then
        say "sshd: running, PID $pid"
    else
        say "sshd: not running (no live sshd in $DIR/sshd.pid)"
        ok=1
    fi
    if netns_exists && [[ $(id -u) -eq 0 ]]; then
        if nft_table_present; then
            say "conntrack: nft table inet $NFT_TABLE present"
        else
            say "conntrack: nft table inet $NFT_TABLE absent (the namespace tracks no connections)"
            ok=1
        fi
    fi
    if [[ -r $DIR/id_ed25519 && -r $DIR/known_hosts ]] && command -v ssh >/dev/null 2>&1; then
        if ssh_works 2>/dev/null; then
            say "ssh root@$NS_ADDR: works"
        else
            say "ssh root@$NS_ADDR: fails (ssh -i $DIR/id_ed25519 -o UserKnownHostsFile=$DIR/known_hosts -o BatchMode=yes root@$NS_ADDR true)"
            ok=1
        fi
    else
        say "ssh root@$NS_ADDR: no key or known_hosts in $DIR"
        ok=1
    fi
    if ((ok == 0)); then
        say "up; lab file $DIR/lab.yaml"
    else
        say "not (fully) up; '$0 up $DIR' builds or repairs it"
    fi
    return "$ok"
}

main() {
    (($# >= 1 && $# <= 2)) || usage
    local cmd=$1
    DIR=${2:-$DEFAULT_DIR}
    # sshd and the lab file need absolute paths; `down` removes DIR, so
    # never a root or an empty path.
    DIR=$(realpath -m -- "$DIR")
    [[ $DIR != / && -n $DIR ]] || die 2 "DIR must not be /"
    [[ $DIR != *[[:space:]]* ]] || die 2 "DIR must not contain spaces (sshd_config and lab.yaml name it unquoted)"
    readonly DIR
    case $cmd in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) usage ;;
    esac
}

main "$@"
