//! GPT-2's reversible byte-to-unicode mapping.
//!
//! Byte-level BPE works on raw bytes, but vocabulary files store tokens as
//! text. GPT-2 maps every byte to a printable character: printable Latin-1
//! bytes map to themselves, the other 68 to U+0100 onwards (space becomes
//! 'Ġ', newline 'Ċ'). Tokens are kept as bytes internally; this mapping is
//! only used at the file boundary.

use std::sync::OnceLock;

struct Tables {
    /// The 256 bytes in GPT-2's order: printable ones first, then the rest.
    order: [u8; 256],
    to_char: [char; 256],
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let mut order = [0u8; 256];
        let mut to_char = ['\0'; 256];
        let mut next = 0;
        for b in (0..=255u8).filter(|&b| printable(b)) {
            order[next] = b;
            to_char[b as usize] = char::from(b);
            next += 1;
        }
        for (shifted, b) in (0..=255u8).filter(|&b| !printable(b)).enumerate() {
            order[next] = b;
            to_char[b as usize] = char::from_u32(256 + shifted as u32).expect("valid scalar");
            next += 1;
        }
        Tables { order, to_char }
    })
}

/// The bytes in GPT-2's vocabulary order (ids 0..256 of GPT-2's vocabulary).
pub fn byte_order() -> &'static [u8; 256] {
    &tables().order
}

/// Encodes raw token bytes as GPT-2 vocabulary text.
pub fn bytes_to_text(bytes: &[u8]) -> String {
    let to_char = &tables().to_char;
    bytes.iter().map(|&b| to_char[b as usize]).collect()
}

/// Decodes GPT-2 vocabulary text back to raw bytes; `None` if a character
/// is outside the 256-character alphabet.
pub fn text_to_bytes(text: &str) -> Option<Vec<u8>> {
    text.chars().map(char_to_byte).collect()
}

fn char_to_byte(c: char) -> Option<u8> {
    let code = c as u32;
    let candidate = match code {
        0..=255 => code as u8,
        256..=323 => {
            // The shifted bytes, in increasing byte order.
            let shifted = (code - 256) as usize;
            *tables().order.get(188 + shifted)?
        }
        _ => return None,
    };
    (tables().to_char[candidate as usize] == c).then_some(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_is_a_bijection_with_known_points() {
        let all: Vec<u8> = (0..=255).collect();
        let text = bytes_to_text(&all);
        assert_eq!(text.chars().count(), 256);
        assert_eq!(text_to_bytes(&text).unwrap(), all);
        assert_eq!(bytes_to_text(b" "), "\u{120}"); // 'Ġ'
        assert_eq!(bytes_to_text(b"\n"), "\u{10A}"); // 'Ċ'
        assert_eq!(bytes_to_text(b"a!"), "a!");
        assert_eq!(byte_order()[0], b'!');
        assert_eq!(text_to_bytes("\u{400}"), None);
        // A raw control character is not part of the alphabet.
        assert_eq!(text_to_bytes("\n"), None);
    }
}
