//! Making a namespace track connections: the `twlab_ct` nf_tables table,
//! sent as one nf_tables netlink transaction.

use super::*;

// ---------------------------------------------------------------------------
// nf_tables over NETLINK_NETFILTER
// ---------------------------------------------------------------------------

pub(super) mod nft {
    //! The few nf_tables uapi numbers needed (include/uapi/linux/netfilter/
    //! nf_tables.h, nfnetlink.h, netfilter.h).
    pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
    pub const NFNL_MSG_BATCH_BEGIN: u16 = 16;
    pub const NFNL_MSG_BATCH_END: u16 = 17;
    pub const NFT_MSG_NEWTABLE: u16 = 0;
    pub const NFT_MSG_DELTABLE: u16 = 2;
    pub const NFT_MSG_NEWCHAIN: u16 = 3;
    pub const NFT_MSG_NEWRULE: u16 = 6;
    pub const NFPROTO_UNSPEC: u8 = 0;
    pub const NFPROTO_INET: u8 = 1;
    pub const NF_INET_PRE_ROUTING: u32 = 0;
    pub const NF_INET_LOCAL_OUT: u32 = 3;

    pub const NFTA_TABLE_NAME: u16 = 1;
    pub const NFTA_TABLE_FLAGS: u16 = 2;
    pub const NFTA_CHAIN_TABLE: u16 = 1;
    pub const NFTA_CHAIN_NAME: u16 = 3;
    pub const NFTA_CHAIN_HOOK: u16 = 4;
    pub const NFTA_CHAIN_TYPE: u16 = 7;
    pub const NFTA_HOOK_HOOKNUM: u16 = 1;
    pub const NFTA_HOOK_PRIORITY: u16 = 2;
    pub const NFTA_RULE_TABLE: u16 = 1;
    pub const NFTA_RULE_CHAIN: u16 = 2;
    pub const NFTA_RULE_EXPRESSIONS: u16 = 4;
    pub const NFTA_LIST_ELEM: u16 = 1;
    pub const NFTA_EXPR_NAME: u16 = 1;
    pub const NFTA_EXPR_DATA: u16 = 2;
    pub const NFTA_DATA_VALUE: u16 = 1;
    pub const NFTA_CT_DREG: u16 = 1;
    pub const NFTA_CT_KEY: u16 = 2;
    pub const NFT_CT_STATE: u32 = 0;
    pub const NFTA_BITWISE_SREG: u16 = 1;
    pub const NFTA_BITWISE_DREG: u16 = 2;
    pub const NFTA_BITWISE_LEN: u16 = 3;
    pub const NFTA_BITWISE_MASK: u16 = 4;
    pub const NFTA_BITWISE_XOR: u16 = 5;
    pub const NFTA_CMP_SREG: u16 = 1;
    pub const NFTA_CMP_OP: u16 = 2;
    pub const NFTA_CMP_DATA: u16 = 3;
    pub const NFT_CMP_NEQ: u32 = 1;
    pub const NFT_REG_1: u32 = 1;
    /// `ct state` bits: invalid | established | related | new.
    pub const CT_STATE_ALL4: u32 = 0x1 | 0x2 | 0x4 | 0x8;
    /// Priority `mangle`, what the old nft script said as `-150`.
    pub const PRIORITY: i32 = -150;
    pub const NLA_F_NESTED: u16 = 0x8000;
}
/// Builds a run of netlink messages with attributes, by hand.
pub(super) struct NlBuilder {
    pub(super) buf: Vec<u8>,
}
impl NlBuilder {
    fn new() -> Self {
        NlBuilder {
            buf: Vec::with_capacity(1024),
        }
    }

    fn align(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn patch_len32(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    /// One nfnetlink message: nlmsghdr + nfgenmsg + what `body` appends.
    fn message(
        &mut self,
        msg_type: u16,
        flags: u16,
        seq: u32,
        family: u8,
        res_id: u16,
        body: impl FnOnce(&mut Self),
    ) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&msg_type.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        // struct nfgenmsg { u8 nfgen_family; u8 version; __be16 res_id; }
        self.buf.push(family);
        self.buf.push(0);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        body(self);
        self.align();
        self.patch_len32(start);
    }

    fn attr(&mut self, kind: u16, data: &[u8]) {
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.align();
    }

    fn attr_str(&mut self, kind: u16, s: &str) {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        self.attr(kind, &data);
    }

    fn attr_be32(&mut self, kind: u16, v: u32) {
        self.attr(kind, &v.to_be_bytes());
    }

    fn nest(&mut self, kind: u16, body: impl FnOnce(&mut Self)) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | nft::NLA_F_NESTED).to_ne_bytes());
        body(self);
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn expr(&mut self, name: &str, data: impl FnOnce(&mut Self)) {
        self.nest(nft::NFTA_LIST_ELEM, |b| {
            b.attr_str(nft::NFTA_EXPR_NAME, name);
            b.nest(nft::NFTA_EXPR_DATA, data);
        });
    }
}
/// The nf_tables transaction described in the module docs.
/// Returns the bytes, the batch header's (seq, description) and those of
/// the messages that ask for an ack.
pub(super) fn conntrack_batch() -> (Vec<u8>, Step, Vec<Step>) {
    use nft::*;
    let table = CONNTRACK_TABLE;
    let mut b = NlBuilder::new();
    let mut expect = Vec::new();
    let ack = NLM_F_REQUEST | NLM_F_ACK;

    let begin = next_seq();
    b.message(
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        begin,
        NFPROTO_UNSPEC,
        NFNL_SUBSYS_NFTABLES,
        |_| {},
    );
    let header = (begin, format!("nf_tables: commit of table inet {table}"));

    let msg = |m: u16| (NFNL_SUBSYS_NFTABLES << 8) | m;
    let table_body = |b: &mut NlBuilder| {
        b.attr_str(NFTA_TABLE_NAME, table);
        b.attr_be32(NFTA_TABLE_FLAGS, 0);
    };
    // Create if missing, delete, create afresh: one copy of the ruleset.
    for (m, flags, what) in [
        (NFT_MSG_NEWTABLE, ack | NLM_F_CREATE, "add table"),
        (NFT_MSG_DELTABLE, ack, "delete table"),
        (NFT_MSG_NEWTABLE, ack | NLM_F_CREATE, "add table"),
    ] {
        let seq = next_seq();
        b.message(msg(m), flags, seq, NFPROTO_INET, 0, table_body);
        expect.push((seq, format!("nf_tables: {what} inet {table}")));
    }
    for (chain, hook) in [("pre", NF_INET_PRE_ROUTING), ("out", NF_INET_LOCAL_OUT)] {
        let seq = next_seq();
        b.message(
            msg(NFT_MSG_NEWCHAIN),
            ack | NLM_F_CREATE,
            seq,
            NFPROTO_INET,
            0,
            |b| {
                b.attr_str(NFTA_CHAIN_TABLE, table);
                b.attr_str(NFTA_CHAIN_NAME, chain);
                b.attr_str(NFTA_CHAIN_TYPE, "filter");
                b.nest(NFTA_CHAIN_HOOK, |b| {
                    b.attr_be32(NFTA_HOOK_HOOKNUM, hook);
                    b.attr_be32(NFTA_HOOK_PRIORITY, PRIORITY as u32);
                });
            },
        );
        expect.push((seq, format!("nf_tables: add chain inet {table} {chain}")));

        // ct state established,related,new,invalid counter
        let seq = next_seq();
        b.message(
            msg(NFT_MSG_NEWRULE),
            ack | NLM_F_CREATE | NLM_F_APPEND,
            seq,
            NFPROTO_INET,
            0,
            |b| {
                b.attr_str(NFTA_RULE_TABLE, table);
                b.attr_str(NFTA_RULE_CHAIN, chain);
                b.nest(NFTA_RULE_EXPRESSIONS, |b| {
                    b.expr("ct", |b| {
                        b.attr_be32(NFTA_CT_KEY, NFT_CT_STATE);
                        b.attr_be32(NFTA_CT_DREG, NFT_REG_1);
                    });
                    b.expr("bitwise", |b| {
                        b.attr_be32(NFTA_BITWISE_SREG, NFT_REG_1);
                        b.attr_be32(NFTA_BITWISE_DREG, NFT_REG_1);
                        b.attr_be32(NFTA_BITWISE_LEN, 4);
                        // Register data is in host byte order.
                        b.nest(NFTA_BITWISE_MASK, |b| {
                            b.attr(NFTA_DATA_VALUE, &CT_STATE_ALL4.to_ne_bytes())
                        });
                        b.nest(NFTA_BITWISE_XOR, |b| {
                            b.attr(NFTA_DATA_VALUE, &0u32.to_ne_bytes())
                        });
                    });
                    b.expr("cmp", |b| {
                        b.attr_be32(NFTA_CMP_SREG, NFT_REG_1);
                        b.attr_be32(NFTA_CMP_OP, NFT_CMP_NEQ);
                        b.nest(NFTA_CMP_DATA, |b| {
                            b.attr(NFTA_DATA_VALUE, &0u32.to_ne_bytes())
                        });
                    });
                    b.expr("counter", |_| {});
                });
            },
        );
        expect.push((
            seq,
            format!("nf_tables: add rule inet {table} {chain} (ct state)"),
        ));
    }
    let end = next_seq();
    b.message(
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        end,
        NFPROTO_UNSPEC,
        NFNL_SUBSYS_NFTABLES,
        |_| {},
    );
    (b.buf, header, expect)
}
/// Make conntrack track connections in namespace `ns`, without the `nft`
/// binary: load table `inet twlab_ct` (chains `pre`/`out` at prerouting and
/// output, priority -150, each `ct state established,related,new,invalid
/// counter`) with one nf_tables netlink transaction. Idempotent: an existing
/// `twlab_ct` table is replaced, atomically. See the module docs for why.
pub fn enable_conntrack(ns: &str) -> io::Result<()> {
    let ns_s = ns.to_string();
    in_named_netns(ns, move || {
        let sock = netlink_socket(protocols::NETLINK_NETFILTER)?;
        let (batch, header, awaited) = conntrack_batch();
        // The batch header is answered only when the commit fails (and then
        // before the per-message acks): describe it, but do not wait for it.
        transact(&sock, &batch, &awaited, &[header], "nf_tables transaction")
            .map_err(|e| ctx(e, format!("enable conntrack in netns {ns_s}")))
    })
}
