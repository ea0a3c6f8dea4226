//! The index of offers: files other nodes announced with an `offer` datagram (seed 004's
//! "dictionary of files offered by the other peers").
//!
//! Keyed by (node, path); an offer disappears with its node (bye or expiry), or when it was
//! not repeated for as long as a silent node is kept (nodes repeat their offers with every
//! hello). Bounded, since anyone on the LAN can announce.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

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
    /// Each offer with when it was last announced.
    by_key: BTreeMap<(String, String), (Offer, Instant)>,
}

impl Offers {
    /// Add or refresh an offer heard at `now`; true when it is new or changed.
    pub fn add(&mut self, offer: Offer, now: Instant) -> bool {
        let key = (offer.node.clone(), offer.path.clone());
        if let Some((known, seen)) = self.by_key.get_mut(&key)
            && *known == offer
        {
            *seen = now;
            return false;
        }
        if !self.by_key.contains_key(&key) && self.by_key.len() >= MAX_OFFERS {
            return false;
        }
        self.by_key.insert(key, (offer, now));
        true
    }

    /// Drop offers not announced for longer than `after`; returns how many.
    pub fn expire(&mut self, now: Instant, after: Duration) -> usize {
        let before = self.by_key.len();
        self.by_key
            .retain(|_, (_, seen)| now.saturating_duration_since(*seen) <= after);
        before - self.by_key.len()
    }

    /// Drop every offer of `node`.
    pub fn drop_node(&mut self, node: &str) {
        self.by_key.retain(|(n, _), _| n != node);
    }

    /// All offers, sorted by node then path.
    pub fn list(&self) -> Vec<Offer> {
        self.by_key.values().map(|(o, _)| o.clone()).collect()
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
        let t0 = Instant::now();
        let mut o = Offers::default();
        assert!(o.add(offer("a", "x"), t0));
        assert!(!o.add(offer("a", "x"), t0));
        assert!(o.add(offer("b", "x"), t0));
        assert_eq!(o.list()[0].url(), "meshfs://10.0.0.7:4044/x");
        o.drop_node("a");
        assert_eq!(o.len(), 1);
        for i in 0..MAX_OFFERS * 2 {
            o.add(offer("c", &format!("{i}")), t0);
        }
        assert_eq!(o.len(), MAX_OFFERS);
    }

    #[test]
    fn offers_not_repeated_expire() {
        let t0 = Instant::now();
        let mut o = Offers::default();
        o.add(offer("a", "old"), t0);
        o.add(offer("a", "kept"), t0);
        assert!(
            !o.add(offer("a", "kept"), t0 + Duration::from_secs(60)),
            "a refresh"
        );
        assert_eq!(
            o.expire(t0 + Duration::from_secs(91), Duration::from_secs(90)),
            1
        );
        assert_eq!(o.list()[0].path, "kept");
    }
}
