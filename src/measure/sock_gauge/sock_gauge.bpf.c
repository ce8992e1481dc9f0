// SPDX-License-Identifier: MIT OR GPL-2.0
//
// twlab's socket gauge: the TCP sockets of one endpoint, counted by state
// per network namespace as the kernel changes their state, so a sample
// reads one map entry instead of walking the kernel's socket hash.
//
// Built by `scripts/build-bpf.sh` with Debian's clang into
// sock_gauge.bpf.o beside this file; the object is committed and a test
// (tests/sock_gauge.rs) rebuilds it and checks the bytes match. Loaded by
// src/measure/sock_gauge.rs (aya), which relocates the struct fields below
// against the running kernel's BTF (CO-RE), so no kernel headers are needed
// here: each struct names only the fields the program reads.
//
// What it counts: full sockets, from the `inet_sock_set_state` tracepoint,
// which fires on every state change of a TCP socket (old and new state). A
// socket is counted in its new state and no longer in its old one; CLOSE
// is not counted (a closed socket is not in the hash a walk reads). A
// child socket is cloned from its listener and reported as LISTEN ->
// SYN_RECV: the listener stays counted.
// Time-wait sockets replace a full socket and no tracepoint reports them
// (the kernel functions that hash and unhash them could be traced with
// fentry, which some kernels refuse even to root: this machine's does):
// user space takes them from the namespace's own count, sockstat's `tw`.
// Only namespaces user space put into `gauges` are counted; in each, the
// endpoint's sockets are those whose local end is it (role 0, the server
// side, the listener included, also one bound to any address) or whose
// remote end is it (role 1, the client side).

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name

#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_LRU_HASH 9
#define BPF_ANY 0

#define TCP_ESTABLISHED 1
#define TCP_SYN_RECV 3
#define TCP_CLOSE 7
#define TCP_LISTEN 10
#define STATES 16

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value,
                                   __u64 flags) = (void *)2;
static long (*bpf_probe_read_kernel)(void *dst, __u32 size, const void *src) = (void *)113;

struct ns_common {
    unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
    struct ns_common ns;
} __attribute__((preserve_access_index));

typedef struct {
    struct net *net;
} possible_net_t;

struct sock_common {
    __u32 skc_daddr;
    __u32 skc_rcv_saddr;
    __u16 skc_dport;
    possible_net_t skc_net;
} __attribute__((preserve_access_index));

// The local port is read from inet_sport (network order), as the
// tracepoint's own `sport` is: the kernel clears skc_num (inet_num) when it
// releases the port, before it reports the move to CLOSE.
struct sock {
    struct sock_common __sk_common;
} __attribute__((preserve_access_index));

struct inet_sock {
    struct sock sk;
    __u16 inet_sport;
} __attribute__((preserve_access_index));

// One namespace's counts. Written by user space once (the endpoint, zero
// counts), then only added to here. Signed: a socket that changed state
// before the gauge was attached may be taken off a state it was never
// counted in; user space reads a negative count as 0.
struct gauge {
    __u32 addr;        // the endpoint's IPv4 address, network order
    __u16 port;        // its port, host order
    __u16 pad;
    __u32 pad2;
    __u32 pad3;
    __s64 live[2][STATES]; // full sockets by role and state
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 256);
    __type(key, __u32); // the namespace's inode number
    __type(value, struct gauge);
} gauges SEC(".maps");

// The distinct peers seen by the server side of a namespace: what
// `peers_seen` reports (many clients with addresses of their own).
struct peer {
    __u32 inum;
    __u32 addr;
};

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 65536);
    __type(key, struct peer);
    __type(value, __u8);
} peers SEC(".maps");

// The kernel runs no program inside itself on one CPU: a state change
// that interrupts `set_state` (a softirq's, during a system call's) is
// skipped for it, and counted in its `recursion_misses`. So a second
// program, `set_state_nested`, counts exactly those: `in_a` says that
// `set_state` is running on this CPU, and `rescued` how many changes the
// second program counted for it. The difference between the first
// program's misses and `rescued` is what neither counted (a change in the
// few instructions around the flag): user space reads it and recounts by
// walking when it grows.
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} in_a SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} rescued SEC(".maps");

// The gauge of `sk`'s namespace and the socket's role there, or 0.
static __attribute__((always_inline)) struct gauge *find(struct inet_sock *inet, int *role,
                                                         __u32 *inum_out, __u32 *peer_out)
{
    struct sock_common *sk = &inet->sk.__sk_common;
    struct net *net = 0;
    __u32 inum = 0;
    if (bpf_probe_read_kernel(&net, sizeof(net), &sk->skc_net.net) || !net)
        return 0;
    if (bpf_probe_read_kernel(&inum, sizeof(inum), &net->ns.inum))
        return 0;
    struct gauge *g = bpf_map_lookup_elem(&gauges, &inum);
    if (!g)
        return 0;
    __u32 daddr = 0, saddr = 0;
    __u16 dport = 0, sport = 0;
    bpf_probe_read_kernel(&daddr, sizeof(daddr), &sk->skc_daddr);
    bpf_probe_read_kernel(&saddr, sizeof(saddr), &sk->skc_rcv_saddr);
    bpf_probe_read_kernel(&dport, sizeof(dport), &sk->skc_dport);
    bpf_probe_read_kernel(&sport, sizeof(sport), &inet->inet_sport);
    __u16 port = g->port;
    __u16 port_be = (__u16)((port >> 8) | (port << 8));
    if (sport == port_be && (saddr == g->addr || saddr == 0)) {
        *role = 0;
        *peer_out = daddr;
    } else if (dport == port_be && daddr == g->addr) {
        *role = 1;
        *peer_out = 0;
    } else {
        return 0;
    }
    *inum_out = inum;
    return g;
}

struct raw_tp_args {
    __u64 args[3];
};

static __attribute__((always_inline)) void count(struct raw_tp_args *ctx)
{
    struct inet_sock *sk = (struct inet_sock *)ctx->args[0];
    __u32 old = (__u32)ctx->args[1];
    __u32 new = (__u32)ctx->args[2];
    int role = 0;
    __u32 inum = 0, peer = 0;
    struct gauge *g = find(sk, &role, &inum, &peer);
    if (!g)
        return;
    if (old < STATES && old != TCP_CLOSE &&
        !(old == TCP_LISTEN && new == TCP_SYN_RECV))
        __sync_fetch_and_add(&g->live[role & 1][old & (STATES - 1)], -1);
    if (new < STATES && new != TCP_CLOSE)
        __sync_fetch_and_add(&g->live[role & 1][new & (STATES - 1)], 1);
    if (role == 0 && new == TCP_ESTABLISHED && peer != 0) {
        struct peer key = {.inum = inum, .addr = peer};
        __u8 one = 1;
        bpf_map_update_elem(&peers, &key, &one, BPF_ANY);
    }
}

SEC("raw_tracepoint/inet_sock_set_state")
int set_state(struct raw_tp_args *ctx)
{
    __u32 zero = 0;
    __u64 *flag = bpf_map_lookup_elem(&in_a, &zero);
    if (!flag)
        return 0;
    *flag = 1;
    count(ctx);
    *flag = 0;
    return 0;
}

SEC("raw_tracepoint/inet_sock_set_state")
int set_state_nested(struct raw_tp_args *ctx)
{
    __u32 zero = 0;
    __u64 *flag = bpf_map_lookup_elem(&in_a, &zero);
    if (!flag || !*flag)
        return 0;
    // `set_state` is running under us on this CPU: the kernel skipped it
    // for this change.
    __u64 *n = bpf_map_lookup_elem(&rescued, &zero);
    if (n)
        __sync_fetch_and_add(n, 1);
    count(ctx);
    return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
