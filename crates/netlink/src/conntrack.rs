//! The conntrack flush over netfilter netlink.
//!
//! Built by hand: the message is a bare header and a 4-byte `nfgenmsg`,
//! and no netlink-packet crate compatible with netlink-packet-core 0.7
//! encodes ctnetlink requests (netlink-packet-netfilter covers nflog).

use crate::wire::{NLM_F_ACK, NLM_F_REQUEST};
use crate::{Channel, Error};

/// `IPCTNL_MSG_CT_DELETE` with no tuple: flushes the conntrack table, every
/// family (`nfgen_family` AF_UNSPEC).
pub fn flush_bytes() -> Vec<u8> {
    const NFNL_SUBSYS_CTNETLINK: u16 = 1;
    const IPCTNL_MSG_CT_DELETE: u16 = 2;
    let mut b = Vec::with_capacity(20);
    b.extend_from_slice(&20u32.to_ne_bytes());
    b.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE).to_ne_bytes());
    b.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    // struct nfgenmsg: family, version (NFNETLINK_V0), res_id (be16).
    b.extend_from_slice(&[0, 0, 0, 0]);
    b
}

/// Flushes the conntrack table.
pub fn flush() -> Result<(), Error> {
    Channel::netfilter()?.request(flush_bytes()).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::u16_at;

    #[test]
    fn conntrack_flush_message() {
        let b = flush_bytes();
        assert_eq!(b.len(), 20);
        assert_eq!(u16_at(&b, 4), Some(0x0102));
        assert_eq!(u16_at(&b, 6), Some(0x5));
    }
}
