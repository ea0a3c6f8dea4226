//! The index of offers: files other nodes announced with an `offer` datagram (seed 004's
//! "dictionary of files offered by the other peers").
//!
//! Keyed by (node, path); an offer disappears with its node (bye or expiry). Bounded, since
//! anyone on the LAN can announce.

use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Most offers kept in all.
pub const MAX_OFFERS: usize = 4096;

/// One offered file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub node: String,
    /// The node's file server.
    pub addr: SocketAddr,
    pub path: String,
    pub size: u64,
    /// Served only after `auth` with the file's password.
    pub protected: bool,
}

impl Offer {
    /// `meshfs://ADDR/PATH`, what `meshfs get` takes.
    pub fn url(&self) -> String {
        format!("meshfs://{}/{}", self.addr, self.path)
    }
}

/// (node, path) → offer.
#[derive(Debug, Default)]
pub struct Offers {
    by_key: BTreeMap<(String, String), Offer>,
}

impl Offers {
    /// Add or refresh an offer; true when it is new or changed.
    pub fn add(&mut self, offer: Offer) -> bool {
        let key = (offer.node.clone(), offer.path.clone());
        if self.by_key.get(&key) == Some(&offer) {
            return false;
        }
        if !self.by_key.contains_key(&key) && self.by_key.len() >= MAX_OFFERS {
            return false;
        }
        self.by_key.insert(key, offer);
        true
    }

    /// Drop every offer of `node`.
    pub fn drop_node(&mut self, node: &str) {
        self.by_key.retain(|(n, _), _| n != node);
    }

    /// All offers, sorted by node then path.
    pub fn list(&self) -> Vec<Offer> {
        self.by_key.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(node: &str, path: &str) -> Offer {
        Offer {
            node: node.into(),
            addr: "10.0.0.7:4044".parse().unwrap(),
            path: path.into(),
            size: 3,
            protected: false,
        }
    }

    #[test]
    fn add_refresh_drop() {
        let mut o = Offers::default();
        assert!(o.add(offer("a", "x")));
        assert!(!o.add(offer("a", "x")));
        assert!(o.add(offer("b", "x")));
        assert_eq!(o.list()[0].url(), "meshfs://10.0.0.7:4044/x");
        o.drop_node("a");
        assert_eq!(o.len(), 1);
        for i in 0..MAX_OFFERS * 2 {
            o.add(offer("c", &format!("{i}")));
        }
        assert_eq!(o.len(), MAX_OFFERS);
    }
}
