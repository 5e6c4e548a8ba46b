//! The value of one staged snapshot entry (under
//! [`RESTORE_STAGING`](super::key_space::RESTORE_STAGING)): the entry's key and value
//! together, so the staging key stays short whatever the entry's key is.
//!
//! Layout: `[1] version | [4] key length, big-endian | key (UTF-8) | value`. Written by
//! the restore on the active node, read by every node's state machine when the restore
//! is swapped in; a value that does not decode makes the swap refuse, changing nothing.

const STAGED_ENTRY_VERSION: u8 = 1;
const HEADER_BYTES: usize = 1 + 4;

/// One snapshot entry as a staging value.
pub fn encode(key: &str, value: &[u8]) -> Vec<u8> {
    let key_length = u32::try_from(key.len()).expect("storage keys are far below 4 GiB");
    let mut bytes = Vec::with_capacity(HEADER_BYTES + key.len() + value.len());
    bytes.push(STAGED_ENTRY_VERSION);
    bytes.extend_from_slice(&key_length.to_be_bytes());
    bytes.extend_from_slice(key.as_bytes());
    bytes.extend_from_slice(value);
    bytes
}

/// The entry a staging value holds, or why it is not one.
pub fn decode(bytes: &[u8]) -> Result<(String, Vec<u8>), String> {
    let Some((&version, rest)) = bytes.split_first() else {
        return Err("empty staged entry".to_string());
    };
    if version != STAGED_ENTRY_VERSION {
        return Err(format!("staged entry version {version} is unknown"));
    }
    let Some((length, rest)) = rest.split_first_chunk::<4>() else {
        return Err("staged entry shorter than its header".to_string());
    };
    let key_length = u32::from_be_bytes(*length) as usize;
    if key_length > rest.len() {
        return Err(format!(
            "staged entry key of {key_length} bytes runs past the {} bytes present",
            rest.len()
        ));
    }
    let (key, value) = rest.split_at(key_length);
    let key = std::str::from_utf8(key)
        .map_err(|_| "staged entry key is not UTF-8".to_string())?
        .to_string();
    Ok((key, value.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_round_trips_and_damage_is_refused() {
        let bytes = encode("logical/abc/secret", b"\x00ciphertext");
        assert_eq!(
            decode(&bytes).unwrap(),
            ("logical/abc/secret".to_string(), b"\x00ciphertext".to_vec())
        );
        assert_eq!(
            decode(&encode("k", b"")).unwrap(),
            ("k".to_string(), Vec::new())
        );
        assert!(decode(&[]).is_err());
        assert!(decode(&bytes[..3]).is_err());
        let mut other_version = bytes.clone();
        other_version[0] = 9;
        assert!(decode(&other_version).is_err());
        let mut long_key = bytes.clone();
        long_key[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&long_key).is_err());
    }
}
