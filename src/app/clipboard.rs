//! The terminal's clipboard: OSC 52 (`ESC ] 52 ; c ; <base64> BEL`), which most terminals
//! honour, over SSH too (tmux forwards it with `set-clipboard on`). Pure: the bytes only; the
//! event loop writes them.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648 §4), with padding.
pub fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The escape sequence that puts `text` on the clipboard ("c" selection).
pub fn osc52(text: &str) -> Vec<u8> {
    let mut out = b"\x1b]52;c;".to_vec();
    out.extend_from_slice(base64(text.as_bytes()).as_bytes());
    out.push(0x07);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        // All 64 symbols, '+' and '/' included.
        assert_eq!(base64(&[0xfb, 0xff, 0xbf]), "+/+/");
    }

    #[test]
    fn osc52_is_exactly_the_sequence_around_the_base64_of_the_text() {
        let url = "https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize?client_id=04b07795&state=Qm9y";
        let bytes = osc52(url);
        assert_eq!(&bytes[..7], b"\x1b]52;c;");
        assert_eq!(bytes.last(), Some(&0x07));
        let payload = std::str::from_utf8(&bytes[7..bytes.len() - 1]).unwrap();
        assert_eq!(payload, base64(url.as_bytes()));
        assert_eq!(
            osc52("GKQ7-XR2M"),
            b"\x1b]52;c;R0tRNy1YUjJN\x07".to_vec(),
            "the code only: no newline, no other bytes"
        );
    }
}
