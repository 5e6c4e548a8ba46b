//! ACL policies, pure: parsing Vault's policy language ([`Policy`]), compiling policies
//! into an [`Acl`], and answering "may this operation on this path proceed?" with
//! Vault's matching and priority rules. No storage, no clocks, no randomness.

// The main type of the `acl` module is the `Acl`, so its file is `acl/acl.rs`.
#[allow(clippy::module_inception)]
mod acl;
pub mod capability;
pub mod default_policy;
pub mod policy;

#[cfg(test)]
mod matrix_tests;

pub use acl::{Acl, AclResult, Denial, TemplateIdentity};
pub use capability::{Capability, CapabilitySet};
pub use default_policy::{
    DEFAULT_POLICY, DEFAULT_POLICY_NAME, RESPONSE_WRAPPING_POLICY, RESPONSE_WRAPPING_POLICY_NAME,
};
pub use policy::{PathRules, Permissions, Policy, PolicyError, ROOT_POLICY_NAME};
