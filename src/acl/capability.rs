//! Vault's capabilities and a small set of them.
//!
//! A [`CapabilitySet`] is what one path rule grants; the ACL unions sets of rules with
//! the same pattern, and `deny` in a set overrides everything else in it.

use crate::logical::Operation;

/// One capability a path rule can grant, spelled as in Vault's policy language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    Deny,
    Create,
    Read,
    Update,
    Patch,
    Delete,
    List,
    Sudo,
    Subscribe,
    Recover,
}

impl Capability {
    /// Every capability, in the order of their bits.
    pub const ALL: [Capability; 10] = [
        Capability::Deny,
        Capability::Create,
        Capability::Read,
        Capability::Update,
        Capability::Patch,
        Capability::Delete,
        Capability::List,
        Capability::Sudo,
        Capability::Subscribe,
        Capability::Recover,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Deny => "deny",
            Capability::Create => "create",
            Capability::Read => "read",
            Capability::Update => "update",
            Capability::Patch => "patch",
            Capability::Delete => "delete",
            Capability::List => "list",
            Capability::Sudo => "sudo",
            Capability::Subscribe => "subscribe",
            Capability::Recover => "recover",
        }
    }

    /// Vault's names are case-sensitive: `"Read"` is not a capability.
    pub fn parse(name: &str) -> Option<Capability> {
        Capability::ALL
            .into_iter()
            .find(|capability| capability.as_str() == name)
    }

    /// The capability an operation needs.
    pub fn for_operation(operation: Operation) -> Capability {
        match operation {
            Operation::Read => Capability::Read,
            Operation::List => Capability::List,
            Operation::Create => Capability::Create,
            Operation::Update => Capability::Update,
            Operation::Patch => Capability::Patch,
            Operation::Delete => Capability::Delete,
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A set of capabilities (a bitmap, like Vault's `CapabilitiesBitmap`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CapabilitySet(u16);

impl CapabilitySet {
    pub const EMPTY: CapabilitySet = CapabilitySet(0);

    pub fn only(capability: Capability) -> Self {
        CapabilitySet(capability.bit())
    }

    pub fn contains(self, capability: Capability) -> bool {
        self.0 & capability.bit() != 0
    }

    pub fn insert(&mut self, capability: Capability) {
        self.0 |= capability.bit();
    }

    pub fn union(self, other: CapabilitySet) -> CapabilitySet {
        CapabilitySet(self.0 | other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn is_deny(self) -> bool {
        self.contains(Capability::Deny)
    }

    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL
            .into_iter()
            .filter(move |capability| self.contains(*capability))
    }

    /// The names as `sys/capabilities` reports them: sorted alphabetically, and
    /// `["deny"]` when the set denies or grants nothing.
    pub fn names_sorted(self) -> Vec<String> {
        if self.is_deny() || self.is_empty() {
            return vec![Capability::Deny.as_str().to_string()];
        }
        let mut names: Vec<String> = self.iter().map(|c| c.as_str().to_string()).collect();
        names.sort();
        names
    }
}

impl FromIterator<Capability> for CapabilitySet {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        let mut set = CapabilitySet::EMPTY;
        for capability in iter {
            set.insert(capability);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_like_vault() {
        for capability in Capability::ALL {
            assert_eq!(Capability::parse(capability.as_str()), Some(capability));
        }
        assert_eq!(Capability::parse("Read"), None);
        let set: CapabilitySet = [Capability::Update, Capability::Create, Capability::Read]
            .into_iter()
            .collect();
        assert_eq!(set.names_sorted(), vec!["create", "read", "update"]);
        assert_eq!(CapabilitySet::EMPTY.names_sorted(), vec!["deny"]);
    }
}
