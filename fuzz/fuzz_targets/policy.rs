//! ACL policies arrive as HCL, JSON or base64 in request bodies: any text must parse or
//! be refused, and a parsed policy must answer questions without panicking.
#![no_main]
use arca::logical::Operation;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(policy) = arca::acl::Policy::parse("fuzz", text)
    {
        let acl = arca::acl::Acl::new(&[policy]);
        let _ = acl.capabilities("secret/data/app");
        let _ = acl.allowed(Operation::Update, "sys/mounts/kv", &Default::default());
    }
});
