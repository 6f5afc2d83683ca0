//! Z85 (RFC 32), the text encoding of CURVE keys.

const Z85: &[u8; 85] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// Z85 (ZeroMQ RFC 32): 4 bytes become 5 printable characters. The length
/// must be a multiple of 4 (keys are 32 bytes, 40 characters).
pub fn z85_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() / 4 * 5);
    for chunk in data.chunks(4) {
        let mut word = [0u8; 4];
        word[..chunk.len()].copy_from_slice(chunk);
        let mut v = u32::from_be_bytes(word);
        let mut digits = [0u8; 5];
        for d in digits.iter_mut().rev() {
            *d = Z85[(v % 85) as usize];
            v /= 85;
        }
        out.extend(digits.iter().map(|&c| char::from(c)));
    }
    out
}

/// Decodes Z85; `None` if the length is not a multiple of 5, a character
/// is not in the alphabet, or a group overflows 32 bits.
pub fn z85_decode(text: &str) -> Option<Vec<u8>> {
    let b = text.as_bytes();
    if !b.len().is_multiple_of(5) {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() / 5 * 4);
    for group in b.chunks(5) {
        let mut v: u64 = 0;
        for &c in group {
            let d = Z85.iter().position(|&z| z == c)?;
            v = v * 85 + d as u64;
        }
        out.extend_from_slice(&u32::try_from(v).ok()?.to_be_bytes());
    }
    Some(out)
}

/// A 32-byte key from its Z85 text (40 characters).
pub fn z85_key(text: &str) -> std::result::Result<[u8; 32], String> {
    z85_decode(text)
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or_else(|| format!("{text:?} is not a Z85-encoded 32-byte key"))
}
