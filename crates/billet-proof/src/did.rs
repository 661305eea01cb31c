//! `did:key` for Ed25519: multibase base58btc (`z`) of the multicodec
//! prefix `0xed 0x01` followed by the 32-byte public key.

use ed25519_dalek::VerifyingKey;

use crate::ProofError;

pub fn did_key(key: &VerifyingKey) -> String {
    let mut bytes = vec![0xed, 0x01];
    bytes.extend_from_slice(key.as_bytes());
    format!("did:key:z{}", bs58::encode(bytes).into_string())
}

pub fn verifying_key_of(did: &str) -> Result<VerifyingKey, ProofError> {
    let bad = |why: &str| ProofError::BadDid(did.to_string(), why.to_string());
    let z = did
        .strip_prefix("did:key:z")
        .ok_or_else(|| bad("expected did:key:z…"))?;
    let bytes = bs58::decode(z)
        .into_vec()
        .map_err(|e| bad(&format!("not base58btc: {e}")))?;
    let key: [u8; 32] = match bytes.as_slice() {
        [0xed, 0x01, rest @ ..] => rest
            .try_into()
            .map_err(|_| bad("an Ed25519 key is 32 bytes"))?,
        _ => return Err(bad("not an Ed25519 key (multicodec 0xed01)")),
    };
    VerifyingKey::from_bytes(&key).map_err(|e| bad(&e.to_string()))
}
